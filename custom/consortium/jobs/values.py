"""Every value of a job config checked against a typed spec of the component it belongs to, so
that ``consortium job validate`` refuses what a site or the server would refuse late (or run wrongly).

Structure: ``components``, ``workflows``, ``executors`` and the filter lists are lists of objects;
a component is ``{"id", "path", "args"}`` (``args`` an object), an executor entry ``{"tasks",
"executor"}``, a filter entry ``{"tasks", "filters"}``. Each component whose ``path`` has a spec
(:data:`~consortium.jobs.specs.SPECS`) gets its args checked one by one: an argument the class
does not take is refused (FLARE would pass it to the constructor and the site would die late),
each value must have the spec's type and lie in its range, references name a component of the
same file, site names are sites of the consortium. The typed configs the components build
(:class:`~consortium.training_settings.LocalTrainingSettings`,
:class:`~consortium.privacy.update_privacy.UpdatePrivacyPolicy`,
:class:`~consortium.aggregation.config.AggregatorConfig`) then check how the values combine.

A path without a spec is left to the class allow-list (:mod:`consortium.jobs.validate`); nothing
named by the config is imported here. Every error names the file, the field and the value.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from consortium.jobs.rules import Context, Spec, check_entries, entries_of, object_of, strings
from consortium.jobs.specs import SPECS, TOP_LEVEL
from consortium.provisioning.project import ConfigurationError

__all__ = ["ConfigurationError", "check_config_values"]


def _component(node, where: str, ctx: Context, need_id: bool) -> None:
    object_of(node, where, ctx, keys=("id", "path", "args"))
    if need_id or "id" in node:
        if not (isinstance(node.get("id"), str) and node["id"]):
            ctx.fail(f"{where}.id", node.get("id"), "must be a non-empty string")
    if not (isinstance(node.get("path"), str) and node["path"]):
        ctx.fail(f"{where}.path", node.get("path"), "must be a dotted class path")
    args = node.get("args", {})
    if not isinstance(args, dict):
        ctx.fail(f"{where}.args", args, "must be a JSON object of the component's arguments")
    spec: Spec | None = SPECS.get(node["path"])
    if spec is not None:
        spec.check(args, f"{where}.args", ctx)


def check_config_values(path: Path, config: dict, sites: Sequence[str] | None) -> None:
    """Raise ConfigurationError naming ``path``, the field (e.g. ``workflows[0].args.num_rounds``)
    and the value when a value of ``config`` (a ``config_fed_server.json`` or
    ``config_fed_client.json``) has the wrong type or lies out of range; ``sites``: the
    consortium's site names (None: skip the checks that need them)."""
    if not isinstance(config, dict):
        raise ConfigurationError(f"{path}: the config must be a JSON object, got {type(config).__name__}")
    ctx = Context(Path(path), tuple(sites) if sites is not None else None, frozenset())
    lists = {key: entries_of(config, key, ctx) for key in ("components", "workflows", "executors",
                                                           "task_data_filters", "task_result_filters")}
    for i, c in enumerate(lists["components"]):
        if not (isinstance(c.get("id"), str) and c["id"]):
            ctx.fail(f"components[{i}].id", c.get("id"), "must be a non-empty string")
    ids = [c["id"] for c in lists["components"]]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        ctx.fail("components", twice, "names these ids twice; each component needs its own id")
    ctx = ctx.with_ids(frozenset(ids))
    for key, spec in TOP_LEVEL.items():
        if key in config:
            spec(config[key], key, ctx)
    for i, c in enumerate(lists["components"]):
        _component(c, f"components[{i}]", ctx, need_id=True)
    for i, w in enumerate(lists["workflows"]):
        _component(w, f"workflows[{i}]", ctx, need_id=True)
    for i, e in enumerate(lists["executors"]):
        where = f"executors[{i}]"
        object_of(e, where, ctx, keys=("tasks", "executor"), required=("tasks", "executor"))
        strings(e["tasks"], f"{where}.tasks", ctx)
        _component(e["executor"], f"{where}.executor", ctx, need_id=False)
    for key in ("task_data_filters", "task_result_filters"):
        for i, f in enumerate(lists[key]):
            where = f"{key}[{i}]"
            object_of(f, where, ctx, keys=("tasks", "filters"), required=("tasks", "filters"))
            strings(f["tasks"], f"{where}.tasks", ctx)
            for j, node in enumerate(check_entries(f["filters"], f"{where}.filters", ctx)):
                _component(node, f"{where}.filters[{j}]", ctx, need_id=False)
