"""The consortium's closed class allow-list, and the one resolver every class path in a job goes
through: FLARE's authorizer at the server and each site reads the same list from the kit's
``local/resources.json``; our executors, persistors and ``consortium job validate`` call
:func:`resolve_component`.

The list holds exact class paths only, by role: exactly the classes the shipped recipe catalogue
(:mod:`consortium.recipes.catalogue`, exported as ``jobs/``) names, plus
:data:`SITE_POLICY_CLASSES`; no package prefixes, no functions, nothing from ``consortium.cli``
/ ``provisioning`` / ``poc`` / ``admin`` and no ``__main__``. FLARE 2.9 checks a job app's own
config only (``authorize_build_component`` is set on the job's JSON configurator alone), so the
site-policy components (``privacy.json`` filters, the site and server audit trails, the app
validator) need no entry; but FLARE's ``SiteLogStreamer`` (every site's resources.json.default)
writes a ``JobLogStreamer`` into each deployed client config, which is then checked (found in
the POC: without the entry every job fails at the sites).

The rule, in order (:func:`resolve_component`): the value is a dotted path of public names, on
the list (membership, before anything is imported: importing a module runs it), not in a
blocked package; then imported, it must be a class, and an ``FLComponent`` of its role
(``nn.Module`` for a model). FLARE's own authorizer treats an entry ``X`` as admitting ``X.*``;
no entry here is a module, so ``X.anything`` names nothing importable.

Pure at import (no nvflare, no torch): they are imported only to check a class's type.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

ROLES = ("executor", "filter", "aggregator", "persistor", "controller", "component", "model")

DEFAULT_ALLOW_LIST: Mapping[str, Mapping[str, str]] = {
    "executor": {
        "consortium.flare.executors.tabular.TabularExecutor": "heart-disease training at a site",
        "consortium.flare.executors.segmentation.SegmentationExecutor": "imaging segmentation training at a site",
    },
    "filter": {
        "consortium.flare.filters.dp.GaussianUpdatePrivacy": "update-level DP, charged to the site ledger",
        "consortium.flare.he.site.HEEncryptResult": "encrypts a site's pre-weighted update (HE jobs)",
        "consortium.flare.he.site.HEDecryptTaskData": "decrypts the global model at a site (HE jobs)",
    },
    "aggregator": {
        "consortium.flare.aggregators.round.RoundAggregator": "FedAvg / FedNova with the round checks",
        "consortium.flare.he.server.EncryptedRoundAggregator": "the same over CKKS ciphertexts",
    },
    "persistor": {
        "consortium.flare.model_registry.ResumablePTPersistor": "FLARE's PT persistor, resumable from a registry version",
        "consortium.flare.he.server.EncryptedRoundPersistor": "keeps ciphertexts only (HE jobs)",
    },
    "controller": {
        "consortium.flare.workflows.scatter.ScatterAndGather": "FLARE's ScatterAndGather honouring task_check_period",
        "consortium.flare.workflows.scatter.CrossSiteModelEval": "FLARE's cross-site evaluation honouring task_check_period",
        "consortium.flare.workflows.standardisation.FederatedStandardisation": "pooled feature moments, no rows",
        "consortium.flare.he.server.HEGlobalEvaluation": "evaluates the encrypted global model at the sites",
    },
    "component": {
        "consortium.flare.he.server.EncryptedRoundShareableGenerator": "ciphertext model <-> task data (HE jobs)",
        "consortium.flare.listeners.metrics_exporter.RoundMetricsListener": "Prometheus round metrics on loopback",
        "consortium.flare.model_registry.ModelRegistryWriter": "every round's global model as a registry version",
        "consortium.flare.listeners.progress_writer.RoundProgressWriter": "the round records `submit` follows",
        "nvflare.app_common.shareablegenerators.full_model_shareable_generator.FullModelShareableGenerator":
            "FLARE: the plaintext model <-> task data conversion ScatterAndGather needs",
        "nvflare.app_opt.pt.file_model_locator.PTFileModelLocator":
            "FLARE: hands the persisted global model to cross-site evaluation",
        "nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator":
            "FLARE: writes cross-site evaluation results as JSON into the run folder",
        "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver":
            "FLARE: server side of the sites' TensorBoard streaming (imaging jobs)",
        "nvflare.app_opt.tracking.tb.tb_writer.TBWriter":
            "FLARE: a site's TensorBoard log writer (imaging jobs)",
        "nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent":
            "FLARE: forwards a site's analytics events to the server (imaging jobs)",
        "nvflare.app_common.logging.job_log_streamer.JobLogStreamer":
            "FLARE: written into every deployed client config by the site's own SiteLogStreamer "
            "(resources.json.default), so the job's error log reaches the server",
    },
    "model": {
        "consortium.learning.tabular.LogisticRegression": "the heart-disease model",
        "consortium.learning.segmentation.SegmentationUNet": "the imaging model (MONAI UNet)",
    },
}
# classes not named by any recipe that a site's own policy components write into a job's config
# after it is deployed (FLARE's authorizer then checks them like the job's own)
SITE_POLICY_CLASSES = frozenset({"nvflare.app_common.logging.job_log_streamer.JobLogStreamer"})
DEFAULT_ALLOWED: frozenset[str] = frozenset(p for entries in DEFAULT_ALLOW_LIST.values() for p in entries)
BLOCKED_PACKAGES = ("consortium.cli", "consortium.provisioning", "consortium.poc", "consortium.admin", "consortium.jobs",
                    "consortium.reports", "consortium.defaults")
# arguments other than "path" / "class_path" whose string value our code hands to an importer
PATH_ARGUMENTS = {"model_path": "model"}
_CLASS_PATH = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+$")


class ComponentRefused(ValueError):
    """A class path refused by the allow-list rule; names where it was found, the value and the rule."""

    def __init__(self, where: str, path, rule: str) -> None:
        super().__init__(f"{where} = {path!r} refused: {rule}")
        self.where, self.path, self.rule = where, path, rule


def entry_problem(path) -> str | None:
    """Why ``path`` cannot be an allow-list entry (None: it can): not a dotted path of public
    names (a prefix ending in '.', '__main__', a private name), or in a blocked package."""
    if not isinstance(path, str) or not path:
        return "a class path must be a non-empty string"
    if path.endswith("."):
        return "package prefixes are not admitted: name exact classes"
    if not _CLASS_PATH.match(path):
        return "not a dotted path of public names (no '__main__', no private or dunder names)"
    blocked = next((b for b in BLOCKED_PACKAGES if path == b or path.startswith(f"{b}.")), None)
    if blocked:
        return f"{blocked} is never a job component (it is the command line and the provisioning)"
    return None


def check_admitted(path, where: str, allowed: Collection[str] = DEFAULT_ALLOWED, source: str = "") -> None:
    """Membership only (nothing imported): ComponentRefused unless ``path`` is a well-formed entry
    of ``allowed``."""
    problem = entry_problem(path)
    if problem is not None:
        raise ComponentRefused(where, path, problem)
    if path not in allowed:
        of = f" ({source})" if source else ""
        raise ComponentRefused(where, path, f"not on the class allow-list{of}: only the exact classes listed there run")


def resolve_component(path, role: str, allowed: Collection[str] = DEFAULT_ALLOWED, where: str = "", source: str = "") -> type:
    """The class ``path`` names, admitted for ``role`` (one of :data:`ROLES`); ComponentRefused
    naming ``where``, the value and the rule otherwise. Membership is checked before any import."""
    where = where or f"{role} path"
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {ROLES}")
    check_admitted(path, where, allowed, source)
    module, _, name = path.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ComponentRefused(where, path, f"names no importable class ({e})") from None
    base = _base(role)
    if not isinstance(obj, type):
        raise ComponentRefused(where, path, f"is a {type(obj).__name__}, not a class: only {base.__name__} classes run")
    if not issubclass(obj, base):
        raise ComponentRefused(where, path, f"is not a {base.__module__}.{base.__name__} (role {role})")
    return obj


def resolve_listed(path: str, role: str = "component", where: str = "path") -> type:
    """The class ``path`` names on the consortium's default list (:func:`resolve_component` with
    :data:`DEFAULT_ALLOWED`): what the recipes and job checks resolve a class path through."""
    return resolve_component(path, role, DEFAULT_ALLOWED, where=where)


def build_model(path, args, where: str = "model_path", allowed: Collection[str] = DEFAULT_ALLOWED):
    """An instance of the model class ``path`` (resolved for role ``model``) built from ``args``."""
    if not isinstance(args, dict):
        raise ComponentRefused(where, path, f"its args must be a JSON object, got {args!r}")
    return resolve_component(path, "model", allowed, where=where)(**args)


def _base(role: str) -> type:
    if role == "model":
        import torch

        return torch.nn.Module
    if role == "executor":
        from nvflare.apis.executor import Executor

        return Executor
    if role == "filter":
        from nvflare.apis.filter import Filter

        return Filter
    if role == "controller":
        from nvflare.apis.impl.controller import Controller

        return Controller
    if role == "aggregator":
        from nvflare.app_common.abstract.aggregator import Aggregator

        return Aggregator
    if role == "persistor":
        from nvflare.app_common.abstract.model_persistor import ModelPersistor

        return ModelPersistor
    from nvflare.apis.fl_component import FLComponent

    return FLComponent


@dataclass(frozen=True)
class PathArgument:
    """One class path in a job config: where (``executors[0].executor.args.model_path``), the
    value, and the role it is resolved for."""

    where: str
    path: object
    role: str


_LIST_ROLES = {"executors": "executor", "workflows": "controller", "components": "component",
               "task_data_filters": "filter", "task_result_filters": "filter"}


def path_arguments(config, where: str = "") -> Iterator[PathArgument]:
    """Every class path in ``config`` (a job's config_fed_*.json): each ``path`` / ``class_path``
    of a component, nested ``{"path": ..., "args": ...}`` objects at any depth, and every
    argument in :data:`PATH_ARGUMENTS`; a nested object under ``model`` is a model."""
    yield from _walk(config, where, "component")


def _walk(node, where: str, role: str) -> Iterator[PathArgument]:
    if isinstance(node, dict):
        for key in ("path", "class_path"):
            if key in node:
                yield PathArgument(f"{where}.{key}" if where else key, node[key], role)
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if key in PATH_ARGUMENTS:
                yield PathArgument(here, value, PATH_ARGUMENTS[key])
            elif not where and key in _LIST_ROLES:
                yield from _walk(value, here, _LIST_ROLES[key])
            elif key == "model" and isinstance(value, dict):
                yield from _walk(value, here, "model")
            elif isinstance(value, dict | list) and key not in ("path", "class_path"):
                yield from _walk(value, here, "component" if key == "args" else role)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{where}[{i}]", role)
