"""Fail closed at the server's start: a real FLARE server process (secure mode) refuses to run when
its server audit cannot do its job (its local policies are not the signed ones), and FLARE's own
start check refuses an edited audit declaration in startup/. Loopback only; every process started
here is stopped by its id."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import free_port
from consortium.provisioning.provision import provision

SERVER_TRAIN = "nvflare.private.fed.app.server.server_train"


@pytest.fixture(scope="module")
def server_kit(project, tmp_path_factory):
    prod = provision(project.with_port(free_port()), tmp_path_factory.mktemp("kits"), poc=True)
    return prod / "server"


def start_server(kit, timeout=90) -> tuple[int, str]:
    """Run the server as poc up does; (exit code, console). It is expected to exit by itself."""
    cmd = [sys.executable, "-u", "-m", SERVER_TRAIN, "-m", str(kit), "-s", "fed_server.json",
           "--set", "secure_train=true", "config_folder=config"]
    proc = subprocess.Popen(cmd, cwd=kit, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_server_whose_policy_was_edited_does_not_start(server_kit, tmp_path):
    kit = shutil.copytree(server_kit, tmp_path / "server")
    path = kit / "local" / "authorization.json"
    authz = json.loads(path.read_text())
    authz["permissions"]["member"]["submit_job"] = "any"
    path.write_text(json.dumps(authz))

    rc, out = start_server(kit)

    assert rc != 0
    assert f"server site policies are not the signed ones: {path}: changed since it was signed" in out
    assert not (kit / "audit" / "trail.jsonl").exists()


def test_flare_refuses_to_start_with_an_edited_audit_declaration(server_kit, tmp_path):
    kit = shutil.copytree(server_kit, tmp_path / "server")
    (kit / "startup" / "consortium_audit__p_resources.json").write_text(json.dumps({"components": []}))

    rc, out = start_server(kit)

    assert rc != 0
    assert "consortium_audit__p_resources.json" in out.split("The following files are not secure content.")[1]


def test_a_deleted_audit_declaration_is_named_by_the_kit_check(server_kit, tmp_path):
    # FLARE checks the startup files that are there, not the signed ones that were deleted
    from consortium.flare.kit_policies import policy_signature_problems

    kit = shutil.copytree(server_kit, tmp_path / "server")
    (kit / "startup" / "consortium_audit__p_resources.json").unlink()
    assert policy_signature_problems(kit) == [
        f"{kit / 'startup' / 'consortium_audit__p_resources.json'}: missing: the server would run without its audit component"]
