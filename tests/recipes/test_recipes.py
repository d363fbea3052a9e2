"""The recipes: jobs/ is their export, byte for byte; a configuration is checked when it is made,
naming the field and the value; an exported job is one `consortium job validate` admits."""

from __future__ import annotations

import filecmp
import json

import pytest

from conftest import JOBS, PROJECT_FILE
from consortium.jobs.validate import AllowList, check_job
from consortium.provisioning.project import Project
from consortium.recipes import HeartConfig, HeartRecipe, ImagingConfig, ImagingRecipe, Intervals
from consortium.recipes.catalogue import JOBS as RECIPES
from consortium.recipes.catalogue import export_jobs


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_every_committed_job_folder_is_the_export_of_its_recipe(tmp_path):
    export_jobs(tmp_path)

    assert sorted(p.name for p in JOBS.iterdir() if p.is_dir()) == sorted(RECIPES), "jobs/ and the recipes name different jobs"
    for name in RECIPES:
        assert _files(JOBS / name) == _files(tmp_path / name), f"jobs/{name}: other files than its export"
        for rel in _files(tmp_path / name):
            assert filecmp.cmp(JOBS / name / rel, tmp_path / name / rel, shallow=False), (
                f"jobs/{name}/{rel} differs from its recipe's export: run `make jobs` (consortium job export)")


def test_an_exported_variant_passes_the_consortiums_job_check(tmp_path):
    project = Project.load(PROJECT_FILE)
    recipe = HeartRecipe(HeartConfig(name="heart_fednova_short", algorithm="fednova", rounds=3,
                                     site_epochs={"cleveland": 4, "hungary": 2}))
    recipe.export(str(tmp_path))

    meta = check_job(tmp_path / "heart_fednova_short", sites=project.clients, allowed=AllowList.of_project(project))
    server = json.loads((tmp_path / "heart_fednova_short" / "app" / "config" / "config_fed_server.json").read_text())
    assert meta["name"] == "heart_fednova_short" and "scope" not in meta
    assert next(w for w in server["workflows"] if w["id"] == "scatter_and_gather")["args"]["num_rounds"] == 3
    assert next(c for c in server["components"] if c["id"] == "aggregator")["args"]["algorithm"] == "fednova"


def test_a_dp_job_asks_for_the_sites_dp_scope(tmp_path):
    RECIPES["heart_fedavg_dp_update"]().export(str(tmp_path))

    assert json.loads((tmp_path / "heart_fedavg_dp_update" / "meta.json").read_text())["scope"] == "dp"


@pytest.mark.parametrize("make, field, value", [
    (lambda: HeartConfig(rounds=0), "rounds", "0"),
    (lambda: HeartConfig(algorithm="fedsgd"), "algorithm", "'fedsgd'"),
    (lambda: HeartConfig(algorithm="fedprox"), "fedprox_mu", "None"),
    (lambda: HeartConfig(fedprox_mu=0.1), "fedprox_mu", "0.1"),
    (lambda: HeartConfig(name="heart fedavg"), "name", "'heart fedavg'"),
    (lambda: HeartConfig(update_privacy={"clip_norm": 1.0, "noise_multiplier": 1.0, "site_epsilon_budget": 8.0}),
     "standardisation", "None"),
    (lambda: HeartConfig(he=True, update_privacy={"clip_norm": 1.0, "noise_multiplier": 1.0, "site_epsilon_budget": 8.0},
                         standardisation={"mean": [0.0] * 13, "std": [1.0] * 13}), "he", "True"),
    (lambda: ImagingConfig(he=True, train_local_only=True), "train_local_only", "True"),
    (lambda: ImagingConfig(dims=4), "dims", "4"),
    (lambda: Intervals(poll=0), "poll", "0"),
])
def test_a_wrong_configuration_is_refused_naming_the_field_and_the_value(make, field, value):
    with pytest.raises(ValueError, match=rf"\.{field} = {value}"):
        make()


@pytest.mark.parametrize("make, words", [
    (lambda: HeartConfig(lr=-1.0), "local training: lr"),
    (lambda: HeartConfig(site_epochs={"cleveland": 0}), r"local training: site_epochs\['cleveland'\]"),
    (lambda: HeartConfig(standardisation={"mean": [0.0] * 13, "std": [1.0] * 13},
                         update_privacy={"clip_norm": -1.0, "noise_multiplier": 1.0, "site_epsilon_budget": 8.0}),
     "update_privacy: .*clip"),
])
def test_the_components_own_checks_run_when_the_configuration_is_made(make, words):
    with pytest.raises(ValueError, match=words):
        make()


def test_a_misspelt_class_fails_when_the_recipe_is_built():
    class Misspelt(ImagingRecipe):
        def model(self):
            return {"path": "consortium.learning.segmentation.SegmentationUNett", "args": {}}

    with pytest.raises(ValueError, match="SegmentationUNett"):
        Misspelt(ImagingConfig())


def test_a_site_norm_bound_follows_the_job_into_its_he_variant(tmp_path):
    """Under HE the server cannot see norms: each site's encrypt filter checks its own update's."""
    HeartRecipe(HeartConfig(name="heart_he_bound", he=True, max_update_norm=3.0)).export(str(tmp_path))
    client = json.loads((tmp_path / "heart_he_bound" / "app" / "config" / "config_fed_client.json").read_text())
    (encrypt,) = [f for entry in client["task_result_filters"] for f in entry["filters"] if f["path"].endswith("HEEncryptResult")]
    assert encrypt["args"]["max_update_norm"] == 3.0
