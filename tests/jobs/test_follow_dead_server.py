"""Issue 21, section 3: following a job whose server dies says so, names `consortium job resume`, and
downloads nothing."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest


class _DeadSession:
    def get_job_meta(self, job_id):
        from nvflare.fuel.flare_api.api_spec import NoConnection

        raise NoConnection("cannot connect to server")

    def close(self):
        raise ConnectionError("gone")


def _state(tmp_path, procs=()):
    from consortium.poc.state import PocState

    return PocState(str(tmp_path), str(tmp_path / "kits"), "heart", 8002, "admin@x.org", ["a", "b"], list(procs))


def test_following_a_job_whose_server_stops_answering_says_so_and_names_resume(tmp_path):
    from consortium.jobs.submit import follow
    from consortium.poc.lifecycle import PocError

    with pytest.raises(PocError) as e:
        follow(_DeadSession(), _state(tmp_path), "job-42", 2, tmp_path / "results", timeout=5, echo=lambda _: None)

    text = str(e.value)
    assert "job job-42: the FLARE server is unreachable (NoConnection: cannot connect to server)" in text
    assert "`consortium job resume job-42`" in text
    assert not (tmp_path / "results").exists()


def test_a_dead_server_process_is_noticed_before_the_admin_api_is_asked(tmp_path):
    from consortium.jobs.submit import follow
    from consortium.poc.lifecycle import PocError
    from consortium.poc.state import Proc

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(proc.pid).create_time()
    proc.wait()

    class Unused:
        def get_job_meta(self, job_id):
            raise AssertionError("asked a dead server")

    with pytest.raises(PocError, match=r"unreachable; .*`consortium job resume job-7`"):
        follow(Unused(), _state(tmp_path, [Proc("server", proc.pid, created)]), "job-7", 2, tmp_path, echo=lambda _: None)
