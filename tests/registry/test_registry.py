"""The model registry round trip (add, list, best, load, hash mismatch) and the jobs it writes
(rollback / resume) without FLARE processes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import JOBS
from consortium.admin.models import clear_stuck_record, continuation_job, list_lines
from consortium.registry import ModelRegistry, RegistryError

W = {"linear.weight": np.arange(13, dtype=np.float32).reshape(1, 13), "linear.bias": np.array([0.5], dtype=np.float32)}


def record(rnd, score=None, **extra):
    return {"round": rnd, "contributors": ["cleveland", "hungary"], "rejected": {"switzerland": "norm 1e4 > 10"},
            "metric": "accuracy", "pooled_score": score, **extra}


@pytest.fixture
def registry(tmp_path):
    reg = ModelRegistry(tmp_path / "run" / "models")
    reg.add(0, W, source="initial model")
    for v in (1, 2, 3):
        reg.add(v, {k: a + v for k, a in W.items()}, {"velocity/linear.bias": np.array([0.1 * v])}, record(v - 1))
        reg.set_score(v - 1, "accuracy", [0.5, 0.8, 0.7][v - 1])
    return reg


def test_every_version_is_listed_with_its_hash_contributors_and_score(registry):
    entries = registry.entries()
    assert [e.version for e in entries] == [0, 1, 2, 3]
    assert [e.score for e in entries] == [0.5, 0.8, 0.7, None]  # v3: not yet measured by the sites
    assert entries[2].contributors == ["cleveland", "hungary"] and entries[2].rejected == {"switzerland": "norm 1e4 > 10"}
    assert all(len(e.sha256) == 64 for e in entries) and len({e.sha256 for e in entries}) == 4
    lines = list_lines(registry.folder.parent)
    assert len(lines) == 4 and lines[1].startswith("v1") and "accuracy 0.800" in lines[1]


def test_best_is_the_highest_scored_version(registry):
    assert registry.best().version == 1


def test_a_version_loads_back_exactly_with_its_server_state(registry):
    weights, state, entry = registry.load(2)
    assert entry.has_state and set(weights) == set(W)
    np.testing.assert_array_equal(weights["linear.weight"], W["linear.weight"] + 2)
    np.testing.assert_allclose(state["velocity/linear.bias"], [0.2])


def test_a_corrupted_model_file_is_refused_by_its_hash(registry):
    path = registry.folder / registry.get(2).file
    data = bytearray(path.read_bytes())
    data[-40] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="SHA-256 .* does not match"):
        registry.load(2)
    assert registry.load(1)[2].version == 1  # the others are untouched


def test_an_unknown_version_names_the_versions_there_are(registry):
    with pytest.raises(RegistryError, match=r"no version 9 \(versions: 0..3\)"):
        registry.get(9)


def _run_folder(tmp_path, registry, job="heart_fednova", momentum=0.0) -> Path:
    """A run folder as the server leaves it: meta.json, app_server/config, models/."""
    run = registry.folder.parent
    shutil.copytree(JOBS / job / "app" / "config", run / "app_server" / "config")
    meta = json.loads((JOBS / job / "meta.json").read_text()) | {"job_id": "abc-123", "status": "RUNNING"}
    (run / "meta.json").write_text(json.dumps(meta))
    if momentum:
        p = run / "app_server" / "config" / "config_fed_server.json"
        c = json.loads(p.read_text())
        next(x for x in c["components"] if x["id"] == "aggregator")["args"]["server_momentum"] = momentum
        p.write_text(json.dumps(c))
    return run


def test_rollback_job_starts_from_the_version_with_its_hash_and_the_rounds_left(tmp_path, registry):
    run = _run_folder(tmp_path, registry, momentum=0.5)
    job = continuation_job(run, 2, tmp_path / "new")
    server = json.loads((job / "app" / "config" / "config_fed_server.json").read_text())
    persistor = next(c for c in server["components"] if c["id"] == "persistor")
    aggregator = next(c for c in server["components"] if c["id"] == "aggregator")
    sag = next(w for w in server["workflows"] if w["id"] == "scatter_and_gather")["args"]
    assert persistor["path"].endswith("ResumablePTPersistor") and persistor["args"]["resume_sha256"] == registry.get(2).sha256
    assert (job / "app" / persistor["args"]["resume_from"]).read_bytes() == (registry.folder / registry.get(2).file).read_bytes()
    assert aggregator["args"]["resume_from"] == persistor["args"]["resume_from"]  # the velocity comes along
    assert aggregator["args"]["server_momentum"] == 0.5
    assert (sag["start_round"], sag["num_rounds"]) == (2, 48)  # heart_fednova plans 50 rounds
    meta = json.loads((job / "meta.json").read_text())
    assert meta["name"] == "heart_fednova_v2" and "status" not in meta and "job_id" not in meta


def test_the_rollback_job_passes_the_job_check(tmp_path, registry, project):
    from consortium.jobs.validate import AllowList, check_job

    job = continuation_job(_run_folder(tmp_path, registry), 1, tmp_path / "new", rounds=3)
    assert check_job(job, sites=project.clients, allowed=AllowList.of_project(project))["name"] == "heart_fednova_v1"


def test_no_job_is_written_from_a_corrupted_version(tmp_path, registry):
    run = _run_folder(tmp_path, registry)
    (registry.folder / registry.get(3).file).write_bytes(b"not a model")
    with pytest.raises(RegistryError, match="does not match"):
        continuation_job(run, 3, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_an_encrypted_job_cannot_be_rolled_back(tmp_path, registry):
    run = _run_folder(tmp_path, registry, job="heart_fedprox_he")
    with pytest.raises(RegistryError, match="encrypted jobs keep no plaintext model"):
        continuation_job(run, 1, tmp_path / "new")


def test_a_stuck_running_record_is_marked_aborted_and_a_finished_one_left_alone(tmp_path):
    from nvflare.app_common.storages.filesystem_storage import FilesystemStorage

    storage = FilesystemStorage(root_dir=str(tmp_path / "jobs-storage"))
    storage.create_object("job-1", b"zip", {"status": "RUNNING", "name": "x"}, overwrite_existing=False)
    storage.create_object("job-2", b"zip", {"status": "FINISHED:COMPLETED", "name": "y"}, overwrite_existing=False)
    assert clear_stuck_record(tmp_path / "jobs-storage", "job-1", "server died") == "RUNNING"
    assert clear_stuck_record(tmp_path / "jobs-storage", "job-2", "server died") == "FINISHED:COMPLETED"
    assert storage.get_meta("job-1")["status"] == "FINISHED:ABORTED"
    assert storage.get_meta("job-2")["status"] == "FINISHED:COMPLETED"
    with pytest.raises(RegistryError, match="no job record job-3"):
        clear_stuck_record(tmp_path / "jobs-storage", "job-3", "server died")


def test_the_rollback_incident_command_writes_the_job(tmp_path, registry):
    from consortium.cli.main import main

    run = _run_folder(tmp_path, registry)
    assert main(["incident", "rollback", str(run), "2", "--rounds", "3", "--out", str(tmp_path / "rolled")]) == 0
    server = json.loads((tmp_path / "rolled" / "app" / "config" / "config_fed_server.json").read_text())
    sag = next(w for w in server["workflows"] if w["id"] == "scatter_and_gather")["args"]
    assert (sag["start_round"], sag["num_rounds"]) == (2, 3)
    assert main(["models", "rollback", str(run), "9", "--out", str(tmp_path / "nope")]) == 2  # no such version: an error, no job
    assert not (tmp_path / "nope").exists()
