"""Monitoring and incidents on the shared POC consortium, in one incident drill on a 5-round job
(one job keeps the suite short): a real Prometheus scrapes the job's exporter, its HTTP API has
every site's series, every dashboard query returns data, a site sending x50 updates fires the norm
alert; the admin's freeze, quarantine and thaw act on the running job, each in the round records,
FLARE's audit trail and Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import JOBS, free_port
from consortium.admin.incidents import request
from consortium.jobs.submit import submit_and_follow
from consortium.operations.incidents import Action
from consortium.poc.prometheus import DASHBOARD, start_prometheus, stop_prometheus
from consortium.reports.job_report import load_results

pytestmark = pytest.mark.poc
SITES = ["cleveland", "hungary", "switzerland", "va-long-beach"]
NORM_ALERT = "ConsortiumUpdateNormAlert"


def job_variant(tmp_path: Path, rounds: int, exporter_port: int, faults: dict | None = None) -> Path:
    """heart_fedavg for ``rounds`` rounds, its exporter on ``exporter_port``, without the fixed norm
    bound (an x50 update is then accepted, and flagged), with the fire drill's ``faults``."""
    job = Path(shutil.copytree(JOBS / "heart_fedavg", tmp_path / "heart_fedavg"))
    server_file, client_file = (job / "app" / "config" / f for f in ("config_fed_server.json", "config_fed_client.json"))
    server, client = json.loads(server_file.read_text()), json.loads(client_file.read_text())
    by_id = {c["id"]: c for c in server["components"] + server["workflows"]}
    by_id["scatter_and_gather"]["args"]["num_rounds"] = rounds
    by_id["aggregator"]["args"]["max_update_norm"] = None
    by_id["metrics_exporter"]["args"]["port"] = exporter_port
    if faults:
        client["task_result_filters"] = [{"tasks": ["train"], "filters": [
            {"path": "consortium.flare.filters.fault_drill.FaultDrill", "args": {"faults": faults}}]}]
    server_file.write_text(json.dumps(server))
    client_file.write_text(json.dumps(client))
    return job


def api(base: str, path: str, **params) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read().decode())
    assert body["status"] == "success", body
    return body["data"]


@pytest.fixture(scope="module")
def prometheus(poc_consortium, tmp_path_factory):
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus not installed: run `make monitoring` (apt-get install -y prometheus)")
    exporter_port, port = free_port(), free_port()
    entry = start_prometheus(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{exporter_port}"], port, scrape_interval="1s")
    try:
        yield f"http://127.0.0.1:{port}", exporter_port
    finally:
        stop_prometheus(entry)


def _audit(folder: Path) -> list[str]:
    path = folder / "audit.log"
    return [line for line in path.read_text().splitlines() if "consortium incident" in line] if path.is_file() else []


@pytest.fixture(scope="module")
def monitored_job(poc_consortium, prometheus, tmp_path_factory):
    """The incident drill on a 5-round heart job, scraped throughout: hungary sends its update
    sign-flipped x50 every round; after the first round the admin freezes the job, waits until
    Prometheus fires the norm alert, quarantines hungary and thaws. Returns the job's result
    folder, the norm alerts /api/v1/alerts showed, and the rounds before and after the hold."""
    base, exporter_port = prometheus
    tmp = tmp_path_factory.mktemp("monitored")
    job = job_variant(tmp, 5, exporter_port, faults={"hungary": ["sign_flip_x50"]})
    alerts: list[dict] = []
    job_id: list[str] = []
    outcome: dict = {}
    done = threading.Event()

    def watch_alerts():
        while not done.is_set():
            alerts.extend(a for a in api(base, "/api/v1/alerts")["alerts"] if a["labels"]["alertname"] == NORM_ALERT)
            time.sleep(0.5)

    def run():
        try:
            outcome["folder"] = submit_and_follow(
                poc_consortium, job, tmp / "results", timeout=300,
                echo=lambda line: job_id.extend(re.findall(r"as job ([0-9a-f-]{36})", line)))
        except Exception as e:  # reported by the tests
            outcome["error"] = e

    start = time.time()
    threads = [threading.Thread(target=f, daemon=True) for f in (watch_alerts, run)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 180
        while not (job_id and (poc_consortium.server_dir() / job_id[0] / "progress.jsonl").is_file()):
            assert time.monotonic() < deadline and threads[1].is_alive(), outcome
            time.sleep(0.05)
        run_dir = poc_consortium.server_dir() / job_id[0]
        progress = run_dir / "progress.jsonl"
        request(poc_consortium, job_id[0], Action.FREEZE, reason="norm alert on hungary", echo=lambda _: None)
        while not _audit(run_dir):  # the server took the freeze before its next round
            assert time.monotonic() < deadline, "the freeze was never applied"
            time.sleep(0.05)
        held = len(progress.read_text().splitlines())
        while not any(a["state"] == "firing" for a in alerts) and time.monotonic() < deadline:
            time.sleep(0.2)  # the admin sees the alert in Prometheus
        time.sleep(2)
        rounds_while_frozen = len(progress.read_text().splitlines()) - held
        request(poc_consortium, job_id[0], Action.QUARANTINE, "hungary", reason="x50 updates", echo=lambda _: None)
        request(poc_consortium, job_id[0], Action.THAW, echo=lambda _: None)
        threads[1].join(240)
    finally:
        done.set()
        threads[0].join(5)
    assert "folder" in outcome, outcome
    return {"id": job_id[0], "folder": outcome["folder"], "start": start - 5, "end": time.time() + 1, "alerts": alerts,
            "held": held, "rounds_while_frozen": rounds_while_frozen}


def series(base: str, job: dict, expr: str) -> list[dict]:
    return api(base, "/api/v1/query_range", query=expr, start=job["start"], end=job["end"], step="1s")["result"]


@pytest.mark.parametrize("name", ["consortium_site_response_seconds", "consortium_site_contributed",
                                  "consortium_site_update_norm"])
def test_prometheus_has_latency_participation_and_norm_series_for_every_site(prometheus, monitored_job, name):
    found = series(prometheus[0], monitored_job, f'{name}{{fl_job="{monitored_job["id"]}"}}')
    assert sorted(s["metric"]["site"] for s in found) == SITES


def test_prometheus_has_the_round_latency_of_the_job(prometheus, monitored_job):
    found = series(prometheus[0], monitored_job, f'consortium_round_duration_seconds_count{{fl_job="{monitored_job["id"]}"}}')
    counts = [float(v) for _, v in found[0]["values"]] if found else []
    up = series(prometheus[0], monitored_job, "up")
    scrapes = [v for s in up for _, v in s["values"]]
    assert counts and counts == sorted(counts), scrapes  # one observation per round, never lost
    # every round, the last one included: the job's end waits until Prometheus has read it
    assert max(counts) == 5, f"round counts {counts}; scrapes up/down {scrapes}"


def test_the_x50_site_fires_the_norm_alert_in_prometheus(monitored_job):
    firing = {a["labels"]["site"] for a in monitored_job["alerts"] if a["state"] == "firing"}
    assert "hungary" in firing  # (an honest site may be flagged too once the poisoned model turns it around)
    records = load_results(monitored_job["folder"]).rounds
    assert all("hungary" in a for a in records["alerts"][:monitored_job["held"]])  # the round records' alert


def test_every_dashboard_query_returns_data(prometheus, monitored_job):
    panels = json.loads(Path(DASHBOARD).read_text())["panels"]
    failures = []
    for panel in (p for p in panels if p["type"] != "row"):
        for target in panel["targets"]:
            expr = target["expr"].replace("$fl_job", monitored_job["id"]).replace("$__range", "10m")  # a UUID: no regex escapes
            try:
                result = series(prometheus[0], monitored_job, expr)
            except Exception as e:  # an HTTP 400 for a query that does not parse
                failures.append(f"{panel['title']}: {expr}: {e}")
                continue
            # DP- and HE-only panels are empty for this plaintext job (tests/monitoring covers them)
            if not result and not panel["description"].startswith(("DP jobs only", "HE jobs only")):
                failures.append(f"{panel['title']}: {expr}: no data")
    assert failures == []
    for flag in ("consortium_dp_enabled", "consortium_he_enabled"):  # no epsilon or HE time to show, and it says so
        found = series(prometheus[0], monitored_job, f'{flag}{{fl_job="{monitored_job["id"]}"}}')
        assert {v for s in found for _, v in s["values"]} == {"0"}, flag



def test_a_freeze_holds_the_rounds_and_a_quarantine_refuses_the_site_from_the_next_round(monitored_job):
    held = monitored_job["held"]
    rounds = load_results(monitored_job["folder"]).rounds

    assert monitored_job["rounds_while_frozen"] == 0 and 1 <= held < 5 and len(rounds) == 5
    after = rounds.iloc[held:]
    assert [line.split(" by ")[0] for line in after["incidents"].iloc[0]] == ["freeze", "quarantine hungary", "thaw"]
    assert all("quarantined" in r["hungary"] and "x50 updates" in r["hungary"] for r in after["rejected"])
    assert all(c == [s for s in SITES if s != "hungary"] for c in after["contributors"])
    assert all("hungary" in c for c in rounds.iloc[:held]["contributors"])


def test_each_incident_control_is_in_flare_s_job_audit_trail(monitored_job):
    audit = _audit(monitored_job["folder"] / "workspace")
    assert [line.split("consortium incident: ")[1].split(" by ")[0] for line in audit] == ["freeze", "quarantine hungary", "thaw"]
    assert "by admin@consortium.org" in audit[0] and "norm alert on hungary" in audit[0]


def test_prometheus_shows_the_quarantine(prometheus, monitored_job):
    found = series(prometheus[0], monitored_job, f'consortium_site_quarantined{{fl_job="{monitored_job["id"]}",site="hungary"}}')
    assert found and found[0]["values"][-1][1] == "1"
