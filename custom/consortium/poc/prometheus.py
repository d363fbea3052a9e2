"""Debian's Prometheus for the POC: a generated configuration that scrapes the job exporters and
loads ``monitoring/prometheus/consortium_rules.yml``, started on loopback, stopped by PID.

    consortium poc up --monitoring      # also starts Prometheus (http://127.0.0.1:9090)
    consortium poc down                 # stops it with the consortium
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from consortium.defaults import default_path
from consortium.poc.state import PocError, Proc, alive, terminate
from consortium.telemetry.prometheus_config import config_text, prometheus_config

RULES = default_path("monitoring/prometheus/consortium_rules.yml")
DASHBOARD = default_path("monitoring/grafana/consortium.json")
DEFAULT_EXPORTER_PORT = 9464  # the jobs' RoundMetricsListener port
DEFAULT_PROMETHEUS_PORT = 9090
INSTALL_HINT = ("Prometheus is not installed: on Debian/Ubuntu run `make monitoring` (as root: `apt-get install -y "
                "prometheus`), or put a `prometheus` binary (2.x) on PATH")


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        raise PocError(INSTALL_HINT)
    return path


def start_prometheus(folder: Path, targets: list[str], port: int, scrape_interval: str = "2s",
                     rules: Path = RULES, timeout: float = 60.0) -> Proc:
    """Write ``folder/prometheus.yml`` and start Prometheus on 127.0.0.1:``port`` with its data in
    ``folder/data``; returns once it answers ready."""
    binary = prometheus_binary()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(config_text(prometheus_config(targets, [rules], scrape_interval)))
    log = folder / "prometheus.log"
    cmd = [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
           f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=2d"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=folder,
                                start_new_session=True)
    entry = Proc("prometheus", proc.pid, psutil.Process(proc.pid).create_time())
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise PocError(f"Prometheus exited with code {proc.returncode} while starting; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                if r.status == 200:
                    return entry
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            stop_prometheus(entry)
            raise PocError(f"Prometheus did not answer on 127.0.0.1:{port} within {timeout:.0f} s; see {log}")
        time.sleep(0.3)


def stop_prometheus(entry: Proc, grace: float = 10.0) -> bool:
    """Stop the Prometheus process recorded in ``entry`` (by PID and start time); False when it was gone."""
    proc = alive(entry)
    if proc is None:
        return False
    terminate([proc], grace)
    return True
