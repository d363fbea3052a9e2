"""The closed allow-list: exact classes of their role, the catalogue's classes exactly, and one
resolver that checks membership before it imports anything."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from conftest import JOBS
from consortium.allowlist import (
    BLOCKED_PACKAGES,
    DEFAULT_ALLOW_LIST,
    DEFAULT_ALLOWED,
    ROLES,
    SITE_POLICY_CLASSES,
    ComponentRefused,
    entry_problem,
    path_arguments,
    resolve_component,
)

SHIPPED_CONFIGS = sorted(JOBS.glob("*/app/config/config_fed_*.json"))


def catalogue_paths(out: Path) -> dict[str, set[str]]:
    """Every class path of every job the recipe catalogue exports (into ``out``), with its roles."""
    from consortium.recipes.catalogue import export_jobs

    found: dict[str, set[str]] = {}
    for folder in export_jobs(out):
        for config in sorted(folder.glob("app/config/config_fed_*.json")):
            for arg in path_arguments(json.loads(config.read_text())):
                found.setdefault(arg.path, set()).add(arg.role)
    return found


def test_the_site_policy_classes_are_those_flares_site_log_streamer_writes_into_a_job():
    from nvflare.app_common.logging.site_log_streamer import _LOG_STREAMER_PATH

    assert SITE_POLICY_CLASSES == {_LOG_STREAMER_PATH}


def test_every_entry_is_an_exact_class_path_of_its_role():
    assert set(DEFAULT_ALLOW_LIST) == set(ROLES)
    for role, entries in DEFAULT_ALLOW_LIST.items():
        for path, why in entries.items():
            assert entry_problem(path) is None and why.strip()
            cls = resolve_component(path, role)
            assert isinstance(cls, type) and f"{cls.__module__}.{cls.__qualname__}" == path


def test_no_entry_is_a_module_so_flares_prefix_rule_admits_nothing_below_it():
    for path in DEFAULT_ALLOWED:
        with pytest.raises(ImportError):
            importlib.import_module(path)  # FLARE admits "<entry>.X" only if <entry> were a module


def test_the_list_is_exactly_what_the_catalogue_exports(tmp_path):
    found = catalogue_paths(tmp_path)
    assert set(found) | SITE_POLICY_CLASSES == DEFAULT_ALLOWED and not set(found) & SITE_POLICY_CLASSES
    for path, roles in found.items():
        listed = next(r for r, entries in DEFAULT_ALLOW_LIST.items() if path in entries)
        group = {"component": {"component", "aggregator", "persistor"}}
        assert all(listed in group.get(r, {r}) for r in roles), (path, roles, listed)


@pytest.mark.parametrize("config", SHIPPED_CONFIGS, ids=lambda p: f"{p.parts[-4]}/{p.name}")
def test_every_path_argument_of_every_shipped_job_resolves_to_a_listed_class(config):
    args = list(path_arguments(json.loads(config.read_text())))
    assert args, "a shipped config names classes"
    for arg in args:
        cls = resolve_component(arg.path, arg.role, where=f"{config}: {arg.where}")
        assert isinstance(cls, type) and arg.path in DEFAULT_ALLOWED


def test_a_shipped_job_naming_anything_outside_the_list_fails_the_enumeration(tmp_path):
    config = json.loads((JOBS / "heart_fedavg" / "app" / "config" / "config_fed_client.json").read_text())
    config["executors"][0]["executor"]["args"]["model_path"] = "torch.nn.Linear"  # a real nn.Module, not listed
    with pytest.raises(ComponentRefused, match=r"executors\[0\]\.executor\.args\.model_path = 'torch\.nn\.Linear' "
                                               r"refused: not on the class allow-list"):
        for arg in path_arguments(config):
            resolve_component(arg.path, arg.role, where=arg.where)


def test_the_walker_finds_nested_objects_model_paths_and_class_path_keys():
    config = {"components": [{"id": "p", "path": "a.B", "args": {"model": {"path": "c.D", "args": {"x": {"class_path": "e.F"}}}}}],
              "executors": [{"tasks": ["t"], "executor": {"path": "g.H", "args": {"model_path": "i.J"}}}],
              "task_result_filters": [{"tasks": ["t"], "filters": [{"path": "k.L"}]}], "workflows": [{"id": "w", "path": "m.N"}]}
    found = {(a.where, a.path, a.role) for a in path_arguments(config)}
    assert found == {("components[0].path", "a.B", "component"), ("components[0].args.model.path", "c.D", "model"),
                     ("components[0].args.model.args.x.class_path", "e.F", "component"),
                     ("executors[0].executor.path", "g.H", "executor"),
                     ("executors[0].executor.args.model_path", "i.J", "model"),
                     ("task_result_filters[0].filters[0].path", "k.L", "filter"), ("workflows[0].path", "m.N", "controller")}


@pytest.mark.parametrize(("path", "rule"), [
    ("consortium.", "package prefixes are not admitted"),
    ("consortium.__main__.main", "no '__main__'"),
    ("consortium.flare._private.X", "no private or dunder names"),
    ("consortium.cli.main.main", "consortium.cli is never a job component"),
    ("consortium.provisioning.X", "consortium.provisioning is never"),
    ("consortium.poc.X", "consortium.poc is never"),
    ("consortium.admin.X", "consortium.admin is never"),
    (42, "must be a non-empty string"),
])
def test_malformed_or_blocked_paths_are_refused_even_when_listed(path, rule):
    with pytest.raises(ComponentRefused, match=rule) as e:
        resolve_component(path, "component", allowed={path, "consortium."}, where="components[3].path")
    assert e.value.where == "components[3].path" and e.value.path == path
    assert str(e.value).startswith(f"components[3].path = {path!r} refused: ")


def test_blocked_packages_cover_the_command_line():
    assert {"consortium.cli", "consortium.provisioning", "consortium.poc", "consortium.admin"} <= set(BLOCKED_PACKAGES)


def test_a_listed_function_is_refused_as_not_a_class():
    with pytest.raises(ComponentRefused, match=r"'os\.system' refused: is a builtin_function_or_method, not a class"):
        resolve_component("os.system", "component", allowed={"os.system"})


def test_a_listed_class_that_is_no_flare_component_of_its_role_is_refused():
    with pytest.raises(ComponentRefused, match=r"is not a nvflare\.apis\.fl_component\.FLComponent"):
        resolve_component("collections.OrderedDict", "component", allowed={"collections.OrderedDict"})
    with pytest.raises(ComponentRefused, match=r"is not a torch\.nn\.modules\.module\.Module \(role model\)"):
        resolve_component("consortium.flare.executors.tabular.TabularExecutor", "model")
    with pytest.raises(ComponentRefused, match=r"\(role executor\)"):
        resolve_component("consortium.flare.aggregators.round.RoundAggregator", "executor")


def test_membership_is_checked_before_the_module_is_imported(tmp_path, monkeypatch):
    sentinel = tmp_path / "imported"
    (tmp_path / "evil_h1_module.py").write_text(
        f"import pathlib\npathlib.Path({str(sentinel)!r}).write_text('ran')\nclass X:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ComponentRefused, match="not on the class allow-list"):
        resolve_component("evil_h1_module.X", "component")
    assert not sentinel.exists() and "evil_h1_module" not in sys.modules
    # the defence off: a resolver that imports first runs the module's code
    with pytest.raises(ComponentRefused, match="is not a nvflare"):
        resolve_component("evil_h1_module.X", "component", allowed={"evil_h1_module.X"})
    assert sentinel.read_text() == "ran"
    sys.modules.pop("evil_h1_module", None)
