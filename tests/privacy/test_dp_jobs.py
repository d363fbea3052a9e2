"""The shipped DP jobs (``"scope": "dp"``) as configured: every task's result passes the DP filter,
σ is calibrated for the rounds the job runs, the job's budget admits its own releases, and nothing
leaves a site beside the filtered results (no local-only model, no analytics stream)."""

from __future__ import annotations

import inspect
import json

import pytest

from conftest import JOBS
from consortium.allowlist import resolve_listed
from consortium.training_settings import LocalTrainingSettings

DP_FILTER = "consortium.flare.filters.dp.GaussianUpdatePrivacy"
DP_JOBS = sorted(p.parent.name for p in JOBS.glob("*/meta.json") if json.loads(p.read_text()).get("scope") == "dp")


def configs(name: str) -> tuple[dict, dict]:
    folder = JOBS / name / "app" / "config"
    return tuple(json.loads((folder / f"config_fed_{s}.json").read_text()) for s in ("client", "server"))


def num_rounds(server: dict) -> int:
    return next(w for w in server["workflows"] if w["id"] == "scatter_and_gather")["args"]["num_rounds"]


def executor_args(client: dict) -> dict:
    """The executor's arguments as it runs: its constructor's defaults, then the job's values."""
    executor = client["executors"][0]["executor"]
    params = inspect.signature(resolve_listed(executor["path"])).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty} | executor["args"]


def dp_filter_args(client: dict) -> dict:
    (args,) = [f["args"] for group in client["task_result_filters"] for f in group["filters"] if f["path"] == DP_FILTER]
    return args


def test_the_dp_jobs_of_the_issue_are_found_by_their_scope():
    assert {"heart_fedavg_dp_update", "heart_fedprox_dp", "seg_fedavg_dp"} <= set(DP_JOBS)


@pytest.mark.parametrize("name", DP_JOBS)
def test_every_task_of_a_dp_job_passes_the_dp_filter(name):
    client, _ = configs(name)
    tasks = {t for e in client["executors"] for t in e["tasks"]}
    filtered = {t for group in client["task_result_filters"] for t in group["tasks"]
                if any(f["path"] == DP_FILTER for f in group["filters"])}

    assert tasks <= filtered


@pytest.mark.parametrize("name", DP_JOBS)
def test_nothing_but_filtered_results_leaves_a_dp_site(name):
    client, _ = configs(name)
    args = executor_args(client)

    assert not args.get("train_local_only", False)  # a local-only model is noiseless
    assert args.get("log_writer_id") is None  # experiment tracking: train loss and Dice, unfiltered
    assert not [c for c in client["components"] if c["path"].endswith("ConvertToFedEvent")]


@pytest.mark.parametrize("name", DP_JOBS)
def test_sigma_is_calibrated_for_the_rounds_the_job_runs_and_the_job_budget_admits_it(name):
    client, server = configs(name)
    args, dp_filter = client["executors"][0]["executor"]["args"], dp_filter_args(client)
    dp_sgd = LocalTrainingSettings.from_args({"dp_sgd": args["dp_sgd"]}).dp_sgd if "dp_sgd" in args else None
    target, planned = ((dp_sgd.target_epsilon, dp_sgd.planned_rounds) if dp_sgd is not None
                       else (dp_filter["target_epsilon"], dp_filter["planned_rounds"]))

    assert planned == num_rounds(server)
    assert dp_filter.get("job_epsilon_budget", target) >= target
    assert dp_filter["site_epsilon_budget"] >= target
    if dp_sgd is not None:
        assert dp_filter["delta"] == dp_sgd.delta and dp_filter["accountant"] == dp_sgd.accountant  # one ledger, one δ
