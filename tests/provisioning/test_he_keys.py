"""The HE jobs are derived from their plaintext jobs, and the consortium's keys are made once."""

from __future__ import annotations

import json

import pytest
import tenseal as ts

from conftest import JOBS, PROJECT_FILE
from consortium.cli.he_jobs import HE_JOBS, he_configs, write_he_job
from consortium.crypto.ckks import key_id_of
from consortium.provisioning.project import Project
from consortium.provisioning.provision import provision


@pytest.mark.parametrize("name", HE_JOBS)
def test_committed_he_job_is_the_derivation_of_its_plaintext_job(name, tmp_path):
    derived = write_he_job(JOBS / name, tmp_path / f"{name}_he")
    for rel in ("meta.json", "app/config/config_fed_server.json", "app/config/config_fed_client.json"):
        assert json.loads((JOBS / f"{name}_he" / rel).read_text()) == json.loads((derived / rel).read_text()), (
            f"jobs/{name}_he/{rel} is stale: run `python -m consortium.cli.he_jobs`")


def test_server_momentum_is_refused_under_he():
    server = {"components": [{"id": "aggregator", "args": {"server_momentum": 0.9}}], "workflows": []}
    with pytest.raises(ValueError, match="server momentum cannot run under HE"):
        he_configs({"name": "x"}, server, {"executors": []})


def test_keys_are_made_once_and_kept_in_the_provisioning_state(tmp_path):
    project = Project.load(PROJECT_FILE)
    first = provision(project, tmp_path / "ws", poc=False)
    again = provision(project, tmp_path / "ws", poc=False)  # e.g. after adding a site

    site, server = first / "hungary" / "startup", first / "server" / "startup"
    public = (server / "server_context.tenseal").read_bytes()
    assert (site / "server_context.tenseal").read_bytes() == public  # every site names the key as the server does
    for kit in (again / "hungary" / "startup", again / "server" / "startup"):  # re-provisioning keeps the key
        assert (kit / "server_context.tenseal").read_bytes() == public
    assert (again / "hungary" / "startup" / "client_context.tenseal").read_bytes() == (site / "client_context.tenseal").read_bytes()
    assert not ts.context_from(public).is_private()
    assert (server / "signature.json").is_file() and (site / "signature.json").is_file()  # FLARE signs kits that hold a context

    # what a site encrypts, the server adds and another site decrypts
    a = ts.context_from((site / "client_context.tenseal").read_bytes())
    b = ts.context_from((first / "cleveland" / "startup" / "client_context.tenseal").read_bytes())
    at_server = ts.ckks_vector_from(ts.context_from(public), ts.ckks_vector(a, [0.25, -2.0]).serialize())
    at_server += at_server
    assert ts.ckks_vector_from(b, at_server.serialize()).decrypt() == pytest.approx([0.5, -4.0], abs=1e-6)
    assert key_id_of(public) != key_id_of((provision(project, tmp_path / "other", poc=False) / "server" / "startup"
                                          / "server_context.tenseal").read_bytes())  # another consortium, another key
    for secret in (site / "client_context.tenseal", tmp_path / "ws" / project.name / "state" / "he_context.tenseal"):
        assert secret.stat().st_mode & 0o777 == 0o600, secret


def test_a_site_norm_bound_follows_the_job_into_its_he_variant():
    server = {"components": [{"id": "aggregator", "args": {"max_update_norm": 3.0}},
                             {"id": "persistor", "args": {"model": {}}}], "workflows": [{"id": "scatter_and_gather", "args": {}}]}
    client = {"executors": [{"tasks": ["train"], "executor": {"args": {}}}]}
    _, _, he_client = he_configs({"name": "x"}, server, client)
    assert he_client["task_result_filters"][0]["filters"][0]["args"]["max_update_norm"] == 3.0


def test_an_he_job_s_versions_are_its_ciphertext_files_checked_against_their_sha256(tmp_path):
    import hashlib

    from consortium.admin.models import list_lines

    folder = tmp_path / "workspace" / "encrypted_rounds"
    folder.mkdir(parents=True)
    lines = []
    for rnd in range(2):
        data = bytes([rnd]) * 100
        (folder / f"round_{rnd:04d}.ckks").write_bytes(data)
        lines.append(json.dumps({"version": rnd + 1, "round": rnd, "file": f"round_{rnd:04d}.ckks",
                                 "sha256": hashlib.sha256(data).hexdigest(), "contributors": ["a", "b"], "rejected": {}}))
    (folder / "index.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "round_0001.ckks").write_bytes(b"\x09" * 100)  # altered after it was recorded

    got = list_lines(tmp_path)
    assert got[0].startswith("v0001  round 0") and " ok  contributors ['a', 'b']" in got[0]
    assert "SHA-256 MISMATCH" in got[1]
