"""The consortium's Prometheus series, and the pure mapping of one round record onto them.

A round record is the dict the server's aggregator already makes
(:class:`~consortium.protocol.round_record.RoundSummary` plus the timings and per-site
reports the FLARE aggregator adds: ``started_at``, ``site_seconds``, ``site_train_loss``,
``site_update_bytes``, ``quarantined``). Nothing is computed here that the round already computed
(norms, cosines, alerts, ε come from the record); the mapping only counts (participation) and
subtracts two timestamps (latency). The one statistic of its own is the loss plateau: how many
rounds since the global training loss last improved by more than ``PLATEAU_REL_TOL``.

Metadata only: every value is a count, a ratio, seconds, bytes, a loss or score, an update's norm
or cosine, ε, or a 0/1 flag; labels are the FLARE job id, a site name, an outcome or the metric's
name. :func:`check_metadata` enforces it on whatever is about to be exported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    GAUGE = "gauge"  # set to the value
    COUNTER = "counter"  # increased by the value
    HISTOGRAM = "histogram"  # the value observed once


@dataclass(frozen=True)
class SeriesSpec:
    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str
    low: float = 0.0  # the range a value of this series can take; outside it is not metadata we export
    high: float = math.inf


JOB, SITE = "fl_job", "site"
OUTCOMES = ("contributed", "rejected", "absent")  # absent: no answer in time (straggler or dropout)
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
PLATEAU_REL_TOL = 1e-3

SERIES: dict[str, SeriesSpec] = {s.name: s for s in (
    # convergence
    SeriesSpec("consortium_round", Kind.GAUGE, (JOB,), "last completed round", 0, 1e6),
    SeriesSpec("consortium_train_loss", Kind.GAUGE, (JOB,), "sample-weighted mean training loss of the round", -1e6, 1e6),
    SeriesSpec("consortium_site_train_loss", Kind.GAUGE, (JOB, SITE), "a site's local training loss in the round", -1e6, 1e6),
    SeriesSpec("consortium_validation_score", Kind.GAUGE, (JOB, "metric"), "pooled validation score of the round's received model", 0, 1),
    SeriesSpec("consortium_rounds_without_loss_improvement", Kind.GAUGE, (JOB,),
               f"rounds since the training loss last fell by more than {PLATEAU_REL_TOL:g} (relative)", 0, 1e6),
    # participation
    SeriesSpec("consortium_sites_expected", Kind.GAUGE, (JOB,), "sites the round was sent to", 0, 1e4),
    SeriesSpec("consortium_round_contributors", Kind.GAUGE, (JOB,), "sites whose update was combined", 0, 1e4),
    SeriesSpec("consortium_participation_ratio", Kind.GAUGE, (JOB,), "contributors / sites expected", 0, 1),
    SeriesSpec("consortium_site_contributed", Kind.GAUGE, (JOB, SITE), "1 when the site's update was combined in the last round", 0, 1),
    SeriesSpec("consortium_site_rounds_total", Kind.COUNTER, (JOB, SITE, "outcome"),
               "rounds by the site's outcome: contributed, rejected, absent (straggler or dropout)", 0, 1e6),
    SeriesSpec("consortium_site_response_seconds", Kind.GAUGE, (JOB, SITE), "seconds from the round's start to the site's result", 0, 1e6),
    # system health
    SeriesSpec("consortium_round_duration_seconds", Kind.HISTOGRAM, (JOB,), "round latency: start to the new global model", 0, 1e6),
    SeriesSpec("consortium_round_last_duration_seconds", Kind.GAUGE, (JOB,), "the last round's latency", 0, 1e6),
    SeriesSpec("consortium_round_train_seconds", Kind.GAUGE, (JOB,), "the slowest site's local training time in the round", 0, 1e6),
    SeriesSpec("consortium_site_update_bytes", Kind.GAUGE, (JOB, SITE), "bytes of the site's update payload (array bytes)", 0, 1e13),
    SeriesSpec("consortium_round_update_bytes", Kind.GAUGE, (JOB,), "bytes of all updates received in the round", 0, 1e14),
    SeriesSpec("consortium_round_server_seconds", Kind.GAUGE, (JOB,),
               "the server's time to read, check and combine the round's updates (under HE: deserialising and adding ciphertexts)", 0, 1e6),
    # encryption (HE jobs)
    SeriesSpec("consortium_he_enabled", Kind.GAUGE, (JOB,), "1 when the sites report HE time (an encrypted-aggregation job)", 0, 1),
    SeriesSpec("consortium_site_he_seconds", Kind.GAUGE, (JOB, SITE),
               "the site's CKKS time in the round: decrypting the round sum and encrypting its update", 0, 1e6),
    # security
    SeriesSpec("consortium_site_update_norm", Kind.GAUGE, (JOB, SITE), "L2 norm of the site's accepted update", 0, 1e12),
    SeriesSpec("consortium_site_update_cosine", Kind.GAUGE, (JOB, SITE), "cosine of the site's update to the last global update", -1, 1),
    SeriesSpec("consortium_site_alert", Kind.GAUGE, (JOB, SITE), "1 when the round's anomaly check flagged the site", 0, 1),
    SeriesSpec("consortium_site_alerts_total", Kind.COUNTER, (JOB, SITE), "rounds in which the site was flagged", 0, 1e6),
    SeriesSpec("consortium_site_quarantined", Kind.GAUGE, (JOB, SITE), "1 while an admin quarantines the site", 0, 1),
    SeriesSpec("consortium_frozen", Kind.GAUGE, (JOB,), "1 while an admin freezes the global model's distribution", 0, 1),
    # privacy
    SeriesSpec("consortium_dp_enabled", Kind.GAUGE, (JOB,), "1 when the sites report a DP privacy loss", 0, 1),
    SeriesSpec("consortium_site_epsilon", Kind.GAUGE, (JOB, SITE), "the site's privacy loss (epsilon) in this job so far", 0, 1e6),
)}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class PlateauTracker:
    """Rounds since the loss last improved: a round improves when its loss is below the best so far
    by more than ``rel_tol`` of that best's magnitude. A NaN loss (no site reported one) changes nothing."""

    def __init__(self, rel_tol: float = PLATEAU_REL_TOL) -> None:
        if not rel_tol >= 0:
            raise ValueError(f"rel_tol must be >= 0, got {rel_tol!r}")
        self.rel_tol, self.best, self.rounds = rel_tol, math.inf, 0

    def update(self, loss: float) -> int:
        if loss is None or not math.isfinite(loss):
            return self.rounds
        if self.best == math.inf or loss < self.best - self.rel_tol * abs(self.best):
            self.best, self.rounds = loss, 0
        else:
            self.best, self.rounds = min(self.best, loss), self.rounds + 1
        return self.rounds


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def round_samples(record: Mapping, job: str, sites: Sequence[str], previous_finished_at: float | None = None,
                  plateau: int | None = None) -> list[Sample]:
    """The samples one round record makes. ``sites``: the sites the round was sent to (a site in
    none of contributors / rejected is absent); ``previous_finished_at``: the last round's end,
    the latency's start when the record has no ``started_at``; ``plateau``: rounds without loss
    improvement (a :class:`PlateauTracker`'s count)."""
    j = {JOB: job}
    contributors = set(record.get("contributors") or ())
    rejected = set(record.get("rejected") or {})
    everyone = sorted(set(sites) | contributors | rejected)
    out = [Sample("consortium_round", j, record["round"])]

    def add(name: str, value, **labels) -> None:
        if _finite(value):
            out.append(Sample(name, {**j, **labels}, float(value)))

    add("consortium_train_loss", record.get("mean_train_loss"))
    add("consortium_validation_score", record.get("pooled_score"), metric=str(record.get("metric", "score")))
    if plateau is not None:
        add("consortium_rounds_without_loss_improvement", plateau)
    add("consortium_sites_expected", len(everyone))
    add("consortium_round_contributors", len(contributors))
    if everyone:
        add("consortium_participation_ratio", len(contributors) / len(everyone))
    quarantined = record.get("quarantined") or {}
    alerts = record.get("alerts") or {}
    for site in everyone:
        outcome = "contributed" if site in contributors else "rejected" if site in rejected else "absent"
        add("consortium_site_contributed", int(site in contributors), site=site)
        add("consortium_site_rounds_total", 1, site=site, outcome=outcome)
        add("consortium_site_alert", int(site in alerts), site=site)
        add("consortium_site_quarantined", int(site in quarantined), site=site)
        if site in alerts:
            add("consortium_site_alerts_total", 1, site=site)
    for field, name in (("site_train_loss", "consortium_site_train_loss"), ("site_seconds", "consortium_site_response_seconds"),
                        ("site_update_bytes", "consortium_site_update_bytes"), ("site_norms", "consortium_site_update_norm"),
                        ("site_cosines", "consortium_site_update_cosine"), ("epsilon", "consortium_site_epsilon"),
                        ("site_he_seconds", "consortium_site_he_seconds")):
        for site, value in sorted((record.get(field) or {}).items()):
            add(name, value, site=site)
    add("consortium_round_update_bytes", sum(v for v in (record.get("site_update_bytes") or {}).values() if _finite(v)))
    add("consortium_dp_enabled", int(bool(record.get("epsilon"))))
    add("consortium_he_enabled", int(bool(record.get("site_he_seconds"))))
    if _finite(record.get("combine_seconds")):
        add("consortium_round_server_seconds", record["combine_seconds"] + (record.get("load_seconds") or 0.0))
    add("consortium_frozen", int(bool(record.get("frozen"))))
    add("consortium_round_train_seconds", record.get("max_train_seconds"))
    start = record.get("started_at") if _finite(record.get("started_at")) else previous_finished_at
    end = record.get("finished_at")
    if _finite(start) and _finite(end) and end >= start:
        add("consortium_round_duration_seconds", end - start)
        add("consortium_round_last_duration_seconds", end - start)
    check_metadata(out)
    return out


def check_metadata(samples: Sequence[Sample]) -> None:
    """Raise ValueError for a sample that is not one of :data:`SERIES` with its labels and within its range."""
    for s in samples:
        spec = SERIES.get(s.name)
        if spec is None:
            raise ValueError(f"telemetry: {s.name!r} is not a consortium series")
        if tuple(s.labels) != spec.labels or not all(isinstance(v, str) and len(v) <= 128 for v in s.labels.values()):
            raise ValueError(f"telemetry: {s.name} labels {s.labels!r}, expected {spec.labels}")
        if not _finite(s.value) or not spec.low <= s.value <= spec.high:
            raise ValueError(f"telemetry: {s.name}{s.labels} = {s.value!r} outside [{spec.low}, {spec.high}]")
