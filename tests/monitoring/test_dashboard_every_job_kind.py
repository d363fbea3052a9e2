"""Every dashboard query against a real Prometheus for a job that runs DP and HE: the panels a
plaintext job leaves empty (ε, HE time) return data here. The POC monitoring test covers the
rest with a real job; this one feeds the exporter the round records such a job makes."""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from consortium.poc.prometheus import DASHBOARD, start_prometheus, stop_prometheus
from consortium.telemetry.exporter import RoundMetricsExporter

SITES = ["cleveland", "hungary", "switzerland", "va-long-beach"]


def record(rnd: int) -> dict:
    """A round record of a DP + HE job as the aggregator announces it (hungary flagged)."""
    return {"round": rnd, "sites": 4, "mean_train_loss": 0.6 - 0.05 * rnd, "pooled_score": 0.7 + 0.01 * rnd,
            "metric": "accuracy", "contributors": SITES, "rejected": {}, "started_at": 1000.0 + 10 * rnd,
            "finished_at": 1004.0 + 10 * rnd, "max_train_seconds": 1.5, "site_seconds": dict.fromkeys(SITES, 2.0),
            "site_train_loss": dict.fromkeys(SITES, 0.55), "site_update_bytes": dict.fromkeys(SITES, 120_000),
            "site_norms": {"cleveland": 1.0, "hungary": 50.0, "switzerland": 1.1, "va-long-beach": 0.9},
            "site_cosines": dict.fromkeys(SITES, 0.4), "alerts": {"hungary": "norm 50 is an outlier"},
            "epsilon": {s: 0.5 * (rnd + 1) for s in SITES}, "site_he_seconds": dict.fromkeys(SITES, 0.8),
            "combine_seconds": 0.05, "load_seconds": 0.02, "quarantined": {}, "incidents": []}


def query(base: str, expr: str) -> list:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_every_panel_returns_data_for_a_dp_and_he_job(tmp_path):
    if shutil.which("prometheus") is None:  # a missing tool fails the test: `make test` installs it first
        pytest.fail("prometheus not installed: run `make monitoring` (apt-get install prometheus)")
    exporter = RoundMetricsExporter("dp-he-job", port=0)
    exporter.serve()
    entry = None
    try:
        for rnd in range(3):
            exporter.observe_round(record(rnd), SITES)
        from conftest import free_port

        port = free_port()
        entry = start_prometheus(tmp_path / "prometheus", [f"127.0.0.1:{exporter.port}"], port, scrape_interval="1s")
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not query(base, 'consortium_site_he_seconds{fl_job="dp-he-job"}'):
            assert time.monotonic() < deadline, "Prometheus never scraped the exporter"
            time.sleep(0.5)
        time.sleep(2.5)  # two more scrapes: increase() over a range needs two samples of each series
        panels = json.loads(Path(DASHBOARD).read_text())["panels"]
        empty = [f"{p['title']}: {t['expr']}" for p in panels if p["type"] != "row" for t in p["targets"]
                 if not query(base, t["expr"].replace("$fl_job", "dp-he-job").replace("$__range", "10m"))]
        assert empty == []
        assert {r["metric"]["site"]: float(r["value"][1]) for r in query(base, "consortium_site_epsilon")} == dict.fromkeys(SITES, 1.5)
        assert float(query(base, "consortium_round_server_seconds")[0]["value"][1]) == pytest.approx(0.07)
    finally:
        if entry is not None:
            stop_prometheus(entry)
        exporter.close()
