"""The encrypted-aggregation variant of a plaintext job, derived from it so that the two cannot
drift apart: same model, executor settings, rounds and algorithm; HE components and site filters
instead of the plaintext aggregator, persistor and cross-site evaluation.

    python -m consortium.cli.he_jobs      # writes jobs/<name>_he for every job in HE_JOBS

A test re-derives every committed ``*_he`` job and fails when it differs.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

from consortium.defaults import default_path

HE_JOBS = ("heart_fedprox", "heart_fednova", "seg_fedavg")
FLARE_HE = "consortium.flare.he.server"
SITE_HE = "consortium.flare.he.site"


def _by_id(items: list[dict], ident: str) -> dict:
    return next(c for c in items if c.get("id") == ident)


def he_configs(meta: dict, server: dict, client: dict) -> tuple[dict, dict, dict]:
    """(meta, server config, client config) of the HE variant of a plaintext job."""
    meta, server, client = copy.deepcopy(meta), copy.deepcopy(server), copy.deepcopy(client)
    meta["name"] = f"{meta['name']}_he"
    agg = _by_id(server["components"], "aggregator")["args"]
    algorithm, tau_eff = agg.get("algorithm", "fedavg"), agg.get("tau_eff", "normalisers")
    if agg.get("rule", "mean") != "mean":
        raise ValueError(f"{meta['name']}: robust rule {agg['rule']!r} needs plaintext updates; under HE the server only adds")
    if agg.get("server_momentum"):
        raise ValueError(f"{meta['name']}: server momentum cannot run under HE (the server never holds the model)")
    model = _by_id(server["components"], "persistor")["args"]["model"]
    replaced = {
        "persistor": {"id": "persistor", "path": f"{FLARE_HE}.EncryptedRoundPersistor", "args": {"model": model}},
        "shareable_generator": {"id": "shareable_generator", "path": f"{FLARE_HE}.EncryptedRoundShareableGenerator", "args": {}},
        "aggregator": {"id": "aggregator", "path": f"{FLARE_HE}.EncryptedRoundAggregator",
                       "args": {"algorithm": algorithm, "tau_eff": tau_eff, "min_accepted": agg.get("min_accepted", 1)}},
    }
    server["components"] = [replaced.get(c["id"], c) for c in server["components"]
                            if c["id"] not in ("model_locator", "json_generator", "model_registry")]
    workflows = [w for w in server["workflows"] if w["id"] != "cross_site_eval"]
    sag = _by_id(workflows, "scatter_and_gather")["args"]
    sag.update(persist_every_n_rounds=1, snapshot_every_n_rounds=0)
    workflows.append({"id": "he_evaluation", "path": f"{FLARE_HE}.HEGlobalEvaluation",
                      "args": {"shareable_generator_id": "shareable_generator", "task_check_period": sag.get("task_check_period", 0.05)}})
    server["workflows"] = workflows
    for entry in client["executors"]:
        entry["tasks"] = [t for t in entry["tasks"] if t != "submit_model"]
        args = entry["executor"]["args"]
        if "train_local_only" in args:
            args["train_local_only"] = False  # its only use is cross-site evaluation, which would release it
    client["task_data_filters"] = [{"tasks": ["train", "validate"], "filters": [{"path": f"{SITE_HE}.HEDecryptTaskData", "args": {}}]}]
    # FLARE matches job filters by exact task name: every task the sites run passes the encrypt filter
    tasks = sorted({t for entry in client["executors"] for t in entry["tasks"]})
    encrypt = {"algorithm": algorithm, "tau_eff": tau_eff}
    if agg.get("max_update_norm") is not None:  # the server can no longer see norms: the sites check their own
        encrypt["max_update_norm"] = agg["max_update_norm"]
    client["task_result_filters"] = [{"tasks": tasks, "filters": [{"path": f"{SITE_HE}.HEEncryptResult", "args": encrypt}]}]
    return meta, server, client


def _read(job: Path) -> tuple[dict, dict, dict]:
    config = job / "app" / "config"
    return tuple(json.loads(p.read_text()) for p in (job / "meta.json", config / "config_fed_server.json",
                                                     config / "config_fed_client.json"))


def write_he_job(plain: Path, out: Path) -> Path:
    meta, server, client = he_configs(*_read(plain))
    (out / "app" / "config").mkdir(parents=True, exist_ok=True)
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server, indent=2) + "\n")
    (out / "app" / "config" / "config_fed_client.json").write_text(json.dumps(client, indent=2) + "\n")
    return out


def main() -> int:
    jobs = default_path("jobs")
    for name in HE_JOBS:
        print(write_he_job(jobs / name, jobs / f"{name}_he"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
