"""The exporter as Prometheus scrapes it: every exported series is declared metadata, whatever the
size of the model, and nothing of the update's values appears."""

from __future__ import annotations

import threading
import time
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from consortium.aggregation.alerts import alerts
from consortium.telemetry.exporter import RoundMetricsExporter
from consortium.telemetry.series import SERIES

SITES = ["cleveland", "hungary", "switzerland", "va-long-beach"]


def record_from(updates: dict[str, np.ndarray], round_number: int) -> dict:
    norms = {s: float(np.linalg.norm(u)) for s, u in updates.items()}
    return {"round": round_number, "sites": len(updates), "mean_train_loss": 0.6 - 0.01 * round_number,
            "pooled_score": 0.75, "metric": "accuracy", "contributors": sorted(updates), "rejected": {},
            "site_norms": norms, "site_cosines": dict.fromkeys(updates, 0.5), "alerts": alerts(norms, {}, 3.5),
            "epsilon": {}, "max_train_seconds": 0.2, "finished_at": 100.0 + round_number, "started_at": 99.5 + round_number,
            "site_seconds": dict.fromkeys(updates, 0.3), "site_update_bytes": {s: u.nbytes for s, u in updates.items()}}


def scrape(exporter: RoundMetricsExporter) -> list:
    with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def exported(n_params: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    exporter = RoundMetricsExporter("job-1", port=0)
    exporter.serve()
    try:
        for r in range(3):
            updates = {s: rng.normal(size=n_params).astype(np.float32) for s in SITES}
            updates["hungary"] *= -50
            exporter.observe_round(record_from(updates, r), SITES)
        return scrape(exporter), updates
    finally:
        exporter.close()


def test_every_scraped_series_is_declared_with_its_labels_and_range():
    samples, _ = exported(14)
    assert samples
    for s in samples:
        base = s.name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
        spec = SERIES.get(base) or SERIES.get(base + "_total")
        assert spec is not None, s.name
        assert set(s.labels) - {"le"} == set(spec.labels), s
        if not s.name.endswith(("_bucket", "_count", "_sum")):
            assert spec.low <= s.value <= spec.high, s


def test_the_number_of_series_does_not_grow_with_the_model_and_no_update_value_leaks():
    small, _ = exported(14)
    large, last = exported(20_000)

    assert len(large) == len(small)  # per job and per site, never per parameter
    values = {round(float(v), 6) for u in last.values() for v in u}
    leaked = [s for s in large if round(s.value, 6) in values and s.value not in (0.0, 1.0)]
    assert leaked == []


def test_the_hungary_x50_update_shows_as_its_norm_and_alert():
    samples, _ = exported(14)
    alert = {s.labels["site"]: s.value for s in samples if s.name == "consortium_site_alert"}
    assert alert == {"cleveland": 0, "hungary": 1, "switzerland": 0, "va-long-beach": 0}


def test_the_exporter_serves_on_loopback_only():
    with pytest.raises(ValueError, match="loopback"):
        RoundMetricsExporter("j", host="0.0.0.0")


def _round_count(samples: list) -> float:
    return sum(s.value for s in samples if s.name == "consortium_round_duration_seconds_count")


def test_the_end_of_the_job_waits_until_prometheus_has_read_the_last_round():
    exporter = RoundMetricsExporter("job-1", port=0)
    exporter.serve()
    scrape(exporter)  # a Prometheus scrapes this job
    rng = np.random.default_rng(0)
    exporter.observe_round(record_from({s: rng.normal(size=14) for s in SITES}, 0), SITES)
    exporter.observe_round(record_from({s: rng.normal(size=14) for s in SITES}, 1), SITES)  # the last round
    read: list[float] = []

    def prometheus_later():
        time.sleep(0.3)
        for _ in range(2):
            read.append(_round_count(scrape(exporter)))

    t = threading.Thread(target=prometheus_later)
    t.start()
    closed = exporter.close(final_scrape_wait=20)  # returns once both scrapes were answered
    t.join(10)

    assert closed is True and read == [2, 2]  # without the wait the server would be gone before the first
    with pytest.raises(OSError):
        scrape(exporter)


def test_an_exporter_nobody_scrapes_closes_at_once_and_one_whose_prometheus_stopped_gives_up():
    quiet = RoundMetricsExporter("job-1", port=0)
    quiet.serve()
    quiet.observe_round(record_from({s: np.ones(14) for s in SITES}, 0), SITES)
    assert quiet.scrapes.answered == 0  # never scraped: nothing to wait for, so close does not wait
    closing = threading.Thread(target=lambda: closed.append(quiet.close(final_scrape_wait=1e9)), daemon=True)
    closed: list[bool] = []
    closing.start()
    closing.join(60)  # a hang guard only: with a wait of 1e9 s, a close that waited would never return
    assert closed == [True]

    abandoned = RoundMetricsExporter("job-2", port=0)
    abandoned.serve()
    scrape(abandoned)
    abandoned.observe_round(record_from({s: np.ones(14) for s in SITES}, 0), SITES)
    assert abandoned.close(final_scrape_wait=0.5) is False  # the caller logs that the last round is missing
