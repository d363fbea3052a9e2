"""Shared fixtures. The POC consortium is one per pytest-xdist worker that runs POC tests (see
:func:`poc_group`): started once, stopped at the end even when tests fail. FLARE tooling gets an
isolated HOME (one per worker) so runs never touch the user's ~/.nvflare."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILE = REPO / "provisioning" / "project.yml"
JOBS = REPO / "jobs"
PROFILES = REPO / "poc_workspace" / "scanner_profiles.json"
RESULTS = REPO / "benchmarks" / "results"


def flat(text: str) -> str:
    """Text with every run of whitespace (line breaks included) as one space: a figure quoted in
    wrapped prose is found whatever the wrapping."""
    return " ".join(text.split())


def readme_text() -> str:
    return flat((REPO / "README.md").read_text())


def job_with_rounds(name: str, tmp_path: Path, rounds: int) -> Path:
    """A copy of ``jobs/name`` (FLARE signs what it submits) running ``rounds`` rounds."""
    job = Path(shutil.copytree(JOBS / name, tmp_path / name))
    server = job / "app" / "config" / "config_fed_server.json"
    config = json.loads(server.read_text())
    next(w for w in config["workflows"] if w["id"] == "scatter_and_gather")["args"]["num_rounds"] = rounds
    server.write_text(json.dumps(config))
    return job


def server_trail_records(state) -> list[dict]:
    """The records of a POC server's audit trail (``<server ws>/audit/trail.jsonl``), oldest first."""
    path = state.server_dir() / "audit" / "trail.jsonl"
    return [json.loads(line)["record"] for line in path.read_text().splitlines()] if path.exists() else []


def wait_finished(sess, job_id: str, timeout: float = 180.0) -> dict:
    """A job's meta once FLARE says it FINISHED (any way); fails the test after ``timeout`` s."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        meta = sess.get_job_meta(job_id)
        if meta.get("status", "").startswith("FINISHED"):
            return meta
        assert time.monotonic() < deadline, meta.get("status")
        time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The tests on the POC run in two groups (``-n 2 --dist loadgroup`` in pyproject.toml), each on its
# own pytest-xdist worker, which starts its own POC (the session fixture is per worker) and runs the
# group in order; the simulator and unit tests go to whichever worker is free. A POC test costs
# 20-100 s waiting on FLARE: two chains of about equal length keep both cores busy to the end.
# "poc_a" is tests/e2e/test_poc_consortium.py; its tests that kill a site, then the server, run last,
# in this order, and the working-tree check after them. "poc_b" is the other tests/e2e/test_poc_*.py
# modules with the tests of POC_B (the audit trail test shares the job of ``completed_heart_job``,
# run once per worker).
# The groups are made from node ids by the scheduler below: xdist 3.8's own ``xdist_group`` marks are
# lost under pytest 9.2's structured node ids (pytest-dev/pytest-xdist#1386), so they are not used.
POC_MODULES = "tests/e2e/test_poc_"
POC_A_MODULE = "tests/e2e/test_poc_consortium.py"
POC_LAST = ("test_a_revoked_site_contributes_nothing_more_and_cannot_rejoin_after_a_restart",
            "test_a_site_that_dies_mid_job_leaves_a_completed_job_within_bounded_time",
            "test_a_job_whose_server_died_is_resumed_from_its_last_version",
            "test_the_tests_left_the_working_tree_as_they_found_it")
POC_B = ("test_every_site_s_audit_trail_of_the_jobs_so_far_verifies_and_a_tampered_copy_is_named",
         # to even the chains (one full run at load 10-17: poc_a 1585 s, poc_b 399 s of test time)
         "test_dp_jobs_charge_every_site_and_a_site_out_of_budget_refuses",
         "test_segmentation_job_with_site_generated_data_completes",
         "test_he_job_through_admin_api_keeps_only_ciphertexts_at_the_server")


def poc_group(nodeid: str) -> str | None:
    """The group of a test on the shared POC, from its node id; None for any other test."""
    path, _, name = nodeid.partition("::")
    if not path.startswith(POC_MODULES):
        return None
    return "poc_a" if path == POC_A_MODULE and name.split("[")[0] not in POC_B else "poc_b"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` with the groups of :func:`poc_group`: one unit of work per POC group
    (the largest go first, one to each worker), every other test a unit of its own."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class PocGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return poc_group(nodeid) or nodeid

    return PocGroups(config, log)


def pytest_collection_modifyitems(config, items):
    last = {name: i for i, name in enumerate(POC_LAST)}
    rank = {}
    for item in items:
        group = poc_group(item.nodeid)
        if "poc_consortium" in getattr(item, "fixturenames", ()) and group is None:
            raise pytest.UsageError(f"{item.nodeid} uses the shared POC: put it in a {POC_MODULES}*.py module")
        rank[id(item)] = last.get(getattr(item, "originalname", None), -1) if group else -1
    items.sort(key=lambda item: rank[id(item)])  # a stable sort: the others keep their order


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    old = {k: os.environ.get(k) for k in ("HOME", "NVFLARE_POC_WORKSPACE")}
    os.environ["HOME"] = str(home)
    os.environ["NVFLARE_POC_WORKSPACE"] = str(tmp_path_factory.mktemp("nvflare_poc"))
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def project():
    """project.yml, with FLARE's wait for a dead site's job outcome at 10 s instead of 30 s: the
    tests that kill or revoke a site wait for it once per job, and the mechanism is the same."""
    from consortium.provisioning.project import Project

    project = Project.load(PROJECT_FILE)
    settings = next(b for b in project.config["builders"] if b["path"].endswith("ServerSettingsBuilder"))
    settings["args"]["client_outcome_wait_timeout"] = 10
    return project


DRILLS = ["consortium.flare.filters.fault_drill.FaultDrill"]  # the fire drill the POC tests run (README: Fire drills)


# The shared POC's server is not called "server": every POC test (up, submit, follow, freeze, kill,
# restart, resume) then runs against a project whose server has another name (issue 22's latent bug:
# the POC state and the job watch took the server's kit folder to be "server").
POC_SERVER = "fl-hub"


def with_drills(project, folder: Path, server: str | None = None):
    """``project`` with a copy of its site policies that admits :data:`DRILLS` as ``extra_allowed``,
    as a consortium that runs fire drills opts in (the shipped policies do not admit them); with
    ``server``, its server participant renamed so."""
    import copy

    from consortium.provisioning.project import POLICIES_DIR, Project

    shutil.copytree(project.policies_dir, folder / POLICIES_DIR)
    allow_file = folder / POLICIES_DIR / "class_allow_list.json"
    allow = json.loads(allow_file.read_text())
    allow["extra_allowed"] = [*allow.get("extra_allowed", []), *DRILLS]
    allow_file.write_text(json.dumps(allow, indent=2) + "\n")
    config = copy.deepcopy(project.config)
    for p in config["participants"] if server else ():
        if p["type"] == "server":
            p["name"] = server
    return Project(folder / "project.yml", config)


@pytest.fixture(scope="session")
def poc_consortium(project, tmp_path_factory):
    """A running POC: server + four hospitals as real FLARE processes on a free loopback port, each
site with its imaging data generated from its scanner profile."""
    from consortium.poc import lifecycle as poc
    workspace = tmp_path_factory.mktemp("poc") / "workspace"
    state = poc.up(with_drills(project, tmp_path_factory.mktemp("drill_project"), server=POC_SERVER), workspace,
                   port=free_port(), profiles=PROFILES)
    assert state.server == POC_SERVER and state.server_dir().name == POC_SERVER
    try:
        yield state
    finally:
        try:
            poc.down(workspace)
        finally:
            poc.stop_processes(state, grace=5)


LEAD = "scientist@cleveland-clinic.org"  # a hospital's lead: may submit jobs


@pytest.fixture(scope="session")
def completed_heart_job(poc_consortium, tmp_path_factory) -> SimpleNamespace:
    """One cheap job run to the end on the shared POC, for every test that needs only that (the
    site and server audit trails of a job, its kept FLARE audit log, a shipped job admitted by the
    closed list): heart_fedavg for two rounds, submitted by :data:`LEAD` with FLARE's API. One job
    where these tests each ran their own (a job costs about 25 s however few its rounds). Its
    ``id`` and the ``meta`` FLARE gave it once FINISHED."""
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    with contextlib.redirect_stdout(io.StringIO()):
        sess = new_secure_session(LEAD, str(Path(poc_consortium.kits) / LEAD), timeout=10.0)
    try:
        job_id = sess.submit_job(str(job_with_rounds("heart_fedavg", tmp_path_factory.mktemp("completed_job"), 2)))
        meta = wait_finished(sess, job_id, timeout=240)
    finally:
        sess.close()
    return SimpleNamespace(id=job_id, meta=meta)


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A working folder three levels down, and temporary files under tmp_path too, so any
    write that escapes with ``../..`` still lands where the test can see it."""
    cwd = tmp_path / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    (tmp_path / "t" / "u").mkdir(parents=True)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "t" / "u"))
    return tmp_path
