"""The execution environments refuse what they cannot run before anything starts."""

from __future__ import annotations

import pytest

from conftest import JOBS, PROJECT_FILE
from consortium.poc.lifecycle import PocError
from consortium.recipes import ConsortiumPocEnv, ConsortiumProdEnv, ConsortiumSimEnv, HeartConfig, HeartRecipe
from consortium.recipes.job import FolderJob


def test_the_poc_environment_needs_a_running_consortium_and_never_starts_one(tmp_path):
    env = ConsortiumPocEnv(workspace=tmp_path / "no-poc")

    with pytest.raises(PocError, match="no running POC in .*; start one with `consortium poc up`"):
        HeartRecipe(HeartConfig(rounds=1)).run(env)
    assert not (tmp_path / "no-poc").exists()


def test_the_prod_environment_needs_an_admin_startup_kit(tmp_path):
    with pytest.raises(ValueError, match="startup_kit_location path does not exist"):
        ConsortiumProdEnv(tmp_path / "admin@consortium.org", project=PROJECT_FILE)


def test_the_simulator_environment_simulates_the_projects_sites_and_checks_the_job_first(tmp_path):
    env = ConsortiumSimEnv(project=PROJECT_FILE, workspace=tmp_path / "ws")
    job = tmp_path / "heart_fedavg"
    job.mkdir()
    (job / "meta.json").write_text((JOBS / "heart_fedavg" / "meta.json").read_text())

    assert env.clients == ["cleveland", "hungary", "switzerland", "va-long-beach"]
    with pytest.raises(ValueError, match=r"heart_fedavg/app/config/config_fed_server.json: file missing"):
        env.simulate(FolderJob(job))  # named in the user's folder, before the simulator starts
    assert not (tmp_path / "ws").exists()
