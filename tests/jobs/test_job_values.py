"""Every value of a job config has a type and a range: what a site or the server would refuse late
(or run wrongly) is refused by ``consortium job validate``, naming the file, the field and the value."""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import math
import shutil
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from conftest import JOBS
from consortium.jobs.specs import SPECS
from consortium.jobs.values import check_config_values
from consortium.privacy.update_privacy import UpdatePrivacyPolicy
from consortium.provisioning.project import ConfigurationError
from consortium.training_settings import MAX_ROUNDS, LocalTrainingSettings

SITES = ["cleveland", "hungary", "switzerland", "va-long-beach"]
CONFIGS = sorted(JOBS.glob("*/app*/config/config_fed_*.json"))
SERVER = JOBS / "heart_fedavg" / "app" / "config" / "config_fed_server.json"
CLIENT = JOBS / "heart_fedavg" / "app" / "config" / "config_fed_client.json"
SEG_CLIENT = JOBS / "seg_fedavg" / "app" / "config" / "config_fed_client.json"
DP_CLIENT = JOBS / "heart_fedprox_dp" / "app" / "config" / "config_fed_client.json"


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _refusal(path: Path, config: dict, sites=SITES) -> str:
    with pytest.raises(ConfigurationError) as e:
        check_config_values(path, config, sites)
    return str(e.value)


def _by_id(entries: list, id: str) -> dict:
    return next(e for e in entries if e.get("id") == id)


def _sag(config: dict) -> dict:
    return _by_id(config["workflows"], "scatter_and_gather")["args"]


def _executor(config: dict) -> dict:
    return config["executors"][0]["executor"]["args"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parts[-4]}/{p.name}")
def test_every_shipped_config_passes(path):
    check_config_values(path, _load(path), SITES)


@pytest.mark.parametrize("rounds", [-3, "30", 3.5, 0, 10**12, True, None])
def test_num_rounds_must_be_a_whole_number_of_rounds_within_the_bound(rounds):
    config = _load(SERVER)
    _sag(config)["num_rounds"] = rounds
    where = f"workflows[{config['workflows'].index(_by_id(config['workflows'], 'scatter_and_gather'))}].args.num_rounds"

    message = _refusal(SERVER, config)

    assert message == f"{SERVER}: field {where} = {rounds!r} must be an integer in [1, {MAX_ROUNDS}]"


@pytest.mark.parametrize("lr", ["fast", 0, -0.1, float("nan"), float("inf"), True, None])
def test_an_executor_lr_that_is_not_a_positive_number_is_named(lr):
    config = _load(CLIENT)
    _executor(config)["lr"] = lr

    message = _refusal(CLIENT, config)

    assert message == f"{CLIENT}: field executors[0].executor.args.lr = {lr!r} must be a positive number"


def test_an_executor_that_is_not_an_object_is_refused_not_crashed_on():
    config = _load(CLIENT)
    config["executors"][0]["executor"] = "not-a-dict"

    assert _refusal(CLIENT, config).startswith(f"{CLIENT}: field executors[0].executor = 'not-a-dict' must be a JSON object")


@pytest.mark.parametrize("change, field, value", [
    (lambda c: c.__setitem__("components", {"persistor": {}}), "components", "{'persistor': {}}"),
    (lambda c: c["components"].append("persistor"), "components[8]", "'persistor'"),
    (lambda c: c["components"].append(dict(c["components"][0])), "field components = ['persistor']", "twice"),
    (lambda c: c["components"][0].__setitem__("id", ""), "components[0].id", "''"),
    (lambda c: c["components"][2].__setitem__("args", ["fedavg"]), "components[2].args", "['fedavg']"),
    (lambda c: c["components"][2].__setitem__("name", "RoundAggregator"), "components[2].name", "'RoundAggregator'"),
    (lambda c: c["components"][2]["args"].__setitem__("algorithm", "fedsgd"), "components[2].args.algorithm", "'fedsgd'"),
    (lambda c: c["components"][2]["args"].__setitem__("rule", "krum"), "components[2].args.rule", "'krum'"),
    (lambda c: c["components"][2]["args"].__setitem__("min_accepted", 5), "components[2].args.min_accepted", "5"),
    (lambda c: c["components"][2]["args"].__setitem__("max_update_norm", -1), "components[2].args.max_update_norm", "-1"),
    (lambda c: c["components"][0]["args"]["model"]["args"].__setitem__("in_features", "13"),
     "components[0].args.model.args.in_features", "'13'"),
    (lambda c: c["components"][0]["args"].__setitem__("load_weights_only", False),
     "components[0].args.load_weights_only", "False"),
    (lambda c: c["components"][0]["args"].__setitem__("source_ckpt_file_full_name", "/etc/model.pt"),
     "components[0].args.source_ckpt_file_full_name", "'/etc/model.pt'"),
    (lambda c: c["components"][0]["args"].__setitem__("resume_from", "../../x.npz"),
     "components[0].args.resume_from", "'../../x.npz'"),
    (lambda c: c["components"][5]["args"].__setitem__("pt_persistor_id", "persistr"),
     "components[5].args.pt_persistor_id", "'persistr'"),
    (lambda c: c["components"][7]["args"].__setitem__("port", 70000), "components[7].args.port", "70000"),
    (lambda c: _sag(c).__setitem__("min_clients", 5), ".args.min_clients", "5"),
    (lambda c: _sag(c).__setitem__("start_round", -1), ".args.start_round", "-1"),
    (lambda c: _sag(c).__setitem__("train_timeout", 0), ".args.max_round_retries", "1"),
    (lambda c: _sag(c).__setitem__("task_check_period", 0), ".args.task_check_period", "0"),
    (lambda c: _sag(c).__setitem__("rounds", 30), ".args.rounds", "30"),
    (lambda c: c["server"].__setitem__("heart_beat_timeout", "600"), "server.heart_beat_timeout", "'600'"),
])
def test_bad_server_values_are_named_with_file_field_and_value(change, field, value):
    config = _load(SERVER)
    change(config)

    message = _refusal(SERVER, config)

    assert message.startswith(f"{SERVER}: field ")
    assert field in message and value in message


@pytest.mark.parametrize("config_path, change, field, value", [
    (CLIENT, lambda c: _executor(c).__setitem__("site_epochs", {"narnia": 2}), "args.site_epochs", "'narnia'"),
    (CLIENT, lambda c: _executor(c).__setitem__("site_epochs", {"hungary": 0}), "site_epochs['hungary']", "0"),
    (CLIENT, lambda c: _executor(c).__setitem__("site_epochs", ["hungary"]), "args.site_epochs", "['hungary']"),
    (CLIENT, lambda c: _executor(c).__setitem__("epochs", 2.0), "args.epochs", "2.0"),
    (CLIENT, lambda c: _executor(c).__setitem__("batch_size", 0), "args.batch_size", "0"),
    (CLIENT, lambda c: _executor(c).__setitem__("momentum", 1.0), "args.momentum", "1.0"),
    (CLIENT, lambda c: _executor(c).__setitem__("learning_rate", 0.1), "args.learning_rate", "0.1"),
    (CLIENT, lambda c: _executor(c).__setitem__("standardisation", {"mean": [0.0], "std": [0.0]}),
     "standardisation.std[0]", "0.0"),
    (CLIENT, lambda c: c["executors"][0].__setitem__("tasks", "train"), "executors[0].tasks", "'train'"),
    (CLIENT, lambda c: c["executors"][0].pop("tasks"), "executors[0] lacks", "'tasks'"),
    (CLIENT, lambda c: c["executors"][0]["executor"].__setitem__("args", "lr=0.1"), "executor.args", "'lr=0.1'"),
    (DP_CLIENT, lambda c: _executor(c)["dp_sgd"].__setitem__("target_epsilon", "1"), "dp_sgd.target_epsilon", "'1'"),
    (DP_CLIENT, lambda c: _executor(c)["dp_sgd"].__setitem__("delta", 1.5), "dp_sgd.delta", "1.5"),
    (DP_CLIENT, lambda c: c["task_result_filters"][0]["filters"][0]["args"].__setitem__("accountant", "gdp"),
     "task_result_filters[0].filters[0].args.accountant", "'gdp'"),
    (DP_CLIENT, lambda c: c["task_result_filters"][0]["filters"][0]["args"].__setitem__("noise_seed", 0),
     "task_result_filters[0].filters[0].args.noise_seed", "0"),
    (DP_CLIENT, lambda c: c["task_result_filters"][0]["filters"][0]["args"].__setitem__("ledger_path", "/tmp/fresh.json"),
     "filters[0].args.ledger_path", "'/tmp/fresh.json'"),
    (DP_CLIENT, lambda c: c["task_result_filters"][0]["filters"][0]["args"].pop("clip_norm"), "filters[0].args", "clip_norm"),
    (DP_CLIENT, lambda c: c["task_result_filters"][0]["filters"][0]["args"].update(site_epsilon_budget=1e300, job_epsilon_budget=1e300),
     "_epsilon_budget", "1e+300"),  # Opacus' calibration to it does not finish
    (SEG_CLIENT, lambda c: _executor(c)["model_args"].__setitem__("dims", 4), "model_args.dims", "4"),
    (SEG_CLIENT, lambda c: _executor(c).__setitem__("log_writer_id", "tensorboard"), "args.log_writer_id", "'tensorboard'"),
    (SEG_CLIENT, lambda c: _executor(c).__setitem__("dp_sgd", {"max_grad_norm": 1.0, "noise_multiplier": 1.0}),
     "args.personalise_epochs", "60"),
])
def test_bad_site_values_are_named_with_file_field_and_value(config_path, change, field, value):
    config = _load(config_path)
    change(config)

    message = _refusal(config_path, config)

    assert message.startswith(f"{config_path}: field ")
    assert field in message and value in message


def test_a_config_that_is_not_an_object_is_named():
    assert _refusal(CLIENT, ["executors"]) == f"{CLIENT}: the config must be a JSON object, got list"


def test_the_dp_sgd_settings_that_do_not_combine_are_refused_by_the_sites_own_typed_config():
    config = _load(DP_CLIENT)
    _executor(config)["dp_sgd"]["noise_multiplier"] = 1.0  # and target_epsilon: DPSGDConfig needs exactly one

    message = _refusal(DP_CLIENT, config)

    assert "executors[0].executor.args.dp_sgd" in message and "exactly one of noise_multiplier and target_epsilon" in message


def test_without_the_consortium_the_checks_that_need_it_are_left_out():
    config, client = _load(SERVER), _load(CLIENT)
    _sag(config)["min_clients"] = 5
    _executor(client)["site_epochs"] = {"narnia": 2}

    check_config_values(SERVER, config, None)
    check_config_values(CLIENT, client, None)
    assert "min_clients = 5" in _refusal(SERVER, config, SITES)
    assert "'narnia'" in _refusal(CLIENT, client, SITES)


def test_a_class_the_specs_do_not_know_is_not_imported_here():
    config = _load(SERVER)
    config["components"].append({"id": "x", "path": "job_values_sentinel_module.Anything", "args": {"a": 1}})

    check_config_values(SERVER, config, SITES)  # its admission is the class allow-list's to refuse

    assert "job_values_sentinel_module" not in sys.modules


# -- the specs cover every argument ---------------------------------------------------------------
# a constructor that passes **kwargs on to a typed config takes that config's fields
KWARGS_CONFIG = {"TabularExecutor": LocalTrainingSettings, "SegmentationExecutor": LocalTrainingSettings,
                 "GaussianUpdatePrivacy": UpdatePrivacyPolicy}


def _constructor_args(cls: type) -> tuple[set[str], set[str]]:
    """The keyword arguments ``cls(...)`` takes and those without a default, following
    ``*args, **kwargs`` to the base class that receives them."""
    names, required = set(), set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]
        names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        required |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.default is p.empty}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names, required
        if cls.__name__ in KWARGS_CONFIG:
            config = KWARGS_CONFIG[cls.__name__]
            return names | {f.name for f in fields(config)}, required
    return names, required


def _shipped_paths() -> set[str]:
    paths = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("path"), str) and isinstance(node.get("args", {}), dict):
                paths.add(node["path"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    for path in CONFIGS:
        walk(_load(path))
    return paths


def test_every_component_of_the_shipped_jobs_has_a_spec():
    from consortium.jobs.specs import MODELS

    assert _shipped_paths() - set(SPECS) - set(MODELS) == set()


@pytest.mark.parametrize("path", sorted(set(SPECS) | {"consortium.learning.tabular.LogisticRegression",
                                                      "consortium.learning.segmentation.SegmentationUNet"}))
def test_each_spec_types_exactly_the_arguments_its_class_takes(path):
    from consortium.jobs.specs import MODELS

    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    spec = SPECS.get(path) or MODELS[path]

    takes, required = _constructor_args(cls)

    assert set(spec.args) == takes
    assert required <= spec.requires


def _numeric_leaves(node, where=""):
    """(location, key, setter) of every number in a config (not bools)."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    for k, v in items:
        here = f"{where}[{k}]" if isinstance(node, list) else (f"{where}.{k}" if where else k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            yield here, k, node
        else:
            yield from _numeric_leaves(v, here)


OUT_OF_RANGE = [-1, 0, -10**30, 10**30, 2**70, float("nan"), float("inf")]


def _cases():
    for path in CONFIGS:
        for where, _, _ in _numeric_leaves(_load(path)):
            yield pytest.param(path, where, id=f"{path.parts[-4]}/{path.name}:{where}")


def _mutated(path: Path, where: str, value) -> dict:
    config = _load(path)
    for here, key, parent in _numeric_leaves(config):
        if here == where:
            parent[key] = value
            return config
    raise AssertionError(where)


@pytest.mark.parametrize("path, where", list(_cases()))
def test_every_number_of_every_shipped_config_has_a_type_and_a_range(path, where):
    key = where.rsplit(".", 1)[-1].split("[")[0]
    for wrong_type in ("30", True):
        message = _refusal(path, _mutated(path, where, wrong_type))
        assert key in message and repr(wrong_type) in message, message
    refused = []
    for value in OUT_OF_RANGE:
        try:
            check_config_values(path, _mutated(path, where, value), SITES)
        except ConfigurationError as e:
            refused.append((value, str(e)))
    assert refused, f"{where}: no value of {OUT_OF_RANGE} is refused"
    assert all(str(path) in m and key in m for _, m in refused)
    assert any(isinstance(v, float) and math.isnan(v) for v, _ in refused), f"{where}: NaN passes"


def test_a_mutation_of_one_value_leaves_the_rest_of_the_config_untouched():
    config = _load(SERVER)
    before = copy.deepcopy(config)

    check_config_values(SERVER, config, SITES)

    assert config == before


# -- the jobs the consortium's commands write pass too ------------------------------------------------
def test_a_rollback_job_passes_with_its_resume_arguments(tmp_path):
    from consortium.admin.models import continuation_job
    from consortium.registry import ModelRegistry

    weights = {"linear.weight": np.zeros((1, 13), dtype=np.float32), "linear.bias": np.zeros(1, dtype=np.float32)}
    registry = ModelRegistry(tmp_path / "run" / "models")
    for v in (0, 1, 2):
        registry.add(v, weights, {"velocity/linear.bias": np.zeros(1)} if v else None,
                     {"round": v - 1, "contributors": SITES, "rejected": {}} if v else None)
    run = registry.folder.parent
    shutil.copytree(JOBS / "heart_fednova" / "app" / "config", run / "app_server" / "config")
    (run / "meta.json").write_text((JOBS / "heart_fednova" / "meta.json").read_text())

    job = continuation_job(run, 2, tmp_path / "new")

    server = job / "app" / "config" / "config_fed_server.json"
    config = _load(server)
    assert _by_id(config["components"], "persistor")["args"]["resume_sha256"] == registry.get(2).sha256
    check_config_values(server, config, SITES)
    _by_id(config["components"], "persistor")["args"].pop("resume_sha256")
    assert "resume_from and resume_sha256 go together" in _refusal(server, config)


@pytest.mark.parametrize("name", sorted(p.name for p in JOBS.iterdir() if p.name.endswith("_he")))
def test_every_shipped_encrypted_job_passes(name):
    folder = JOBS / name
    server = _load(folder / "app" / "config" / "config_fed_server.json")
    client = _load(folder / "app" / "config" / "config_fed_client.json")

    check_config_values(folder / "server", server, SITES)
    check_config_values(folder / "client", client, SITES)


def test_a_recipe_at_the_round_bound_exports_a_job_validate_accepts(tmp_path):
    from consortium.recipes import HeartConfig, HeartRecipe

    HeartRecipe(HeartConfig(rounds=MAX_ROUNDS)).export(str(tmp_path))

    server = tmp_path / "heart_fedavg" / "app" / "config" / "config_fed_server.json"
    check_config_values(server, _load(server), SITES)


def test_a_recipe_past_the_round_bound_is_refused_as_validate_would():
    from consortium.recipes import HeartConfig

    with pytest.raises(ValueError, match=rf"HeartConfig.rounds = {MAX_ROUNDS + 1}: must be at most {MAX_ROUNDS}"):
        HeartConfig(rounds=MAX_ROUNDS + 1)
