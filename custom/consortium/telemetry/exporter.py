"""The Prometheus exporter of a job's round metrics (``prometheus-client``), served on loopback.

One :class:`RoundMetricsExporter` per job (FLARE runs each job's server side in its own process):
it owns a private registry with the series of :mod:`consortium.telemetry.series`, applies each
round record's samples (set a gauge, increase a counter, observe the latency histogram) and serves
them at ``http://127.0.0.1:<port>/metrics``. A port that cannot be bound raises ``OSError``: the
caller decides whether the job goes on without metrics.

A job ends with its last round: without care its exporter would stop before Prometheus scraped that
round (seen in the POC on a loaded machine: the last two of five rounds missing). :meth:`close`
therefore waits, when Prometheus has been scraping this job, until two more scrapes have read the
last update (the second begins only after the first was answered), or ``final_scrape_wait``
seconds at most; an exporter nobody scrapes closes at once.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)

from consortium.telemetry.series import (
    JOB,
    LATENCY_BUCKETS,
    SERIES,
    SITE,
    Kind,
    PlateauTracker,
    Sample,
    check_metadata,
    round_samples,
)

disable_created_metrics()  # no *_created series: a timestamp per counter is noise on the dashboard


def _metric(spec, registry):
    if spec.kind is Kind.GAUGE:
        return Gauge(spec.name, spec.help, spec.labels, registry=registry)
    if spec.kind is Kind.COUNTER:
        return Counter(spec.name.removesuffix("_total"), spec.help, spec.labels, registry=registry)
    return Histogram(spec.name, spec.help, spec.labels, buckets=LATENCY_BUCKETS, registry=registry)


class _CountedScrapes:
    """What the HTTP server reads: the job's registry, counting each scrape it answers."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.answered = 0
        self.changed = threading.Condition()

    def collect(self) -> Iterator:
        yield from self.registry.collect()
        with self.changed:
            self.answered += 1
            self.changed.notify_all()

    def restricted_registry(self, names):  # ``/metrics?name[]=...``: a partial read, not counted
        return self.registry.restricted_registry(names)


class RoundMetricsExporter:
    def __init__(self, job: str, host: str = "127.0.0.1", port: int = 9464) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"metrics exporter: host {host!r} is not a loopback address; it serves on this machine only")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValueError(f"metrics exporter: port must be an integer in 0..65535, got {port!r}")
        self.job, self.host, self.port = job, host, port
        self.registry = CollectorRegistry()
        self.metrics = {name: _metric(spec, self.registry) for name, spec in SERIES.items()}
        self.plateau = PlateauTracker()
        self._previous_end: float | None = None
        self._server = None
        self.scrapes = _CountedScrapes(self.registry)
        self._scrapes_at_update = 0

    def serve(self) -> int:
        """Start serving; returns the bound port (useful with port 0)."""
        self._server, _ = start_http_server(self.port, addr=self.host, registry=self.scrapes)
        self.port = self._server.server_address[1]
        return self.port

    def close(self, final_scrape_wait: float = 0.0) -> bool:
        """Stop serving. With ``final_scrape_wait`` > 0 and a Prometheus that has scraped this job,
        first wait (at most that many seconds) until two scrapes have read the last update.
        Returns whether the last update was read (True when there was nothing to wait for)."""
        read = True
        if self._server is not None and final_scrape_wait > 0:
            deadline = time.monotonic() + final_scrape_wait
            with self.scrapes.changed:
                if self.scrapes.answered > 0:
                    read = self.scrapes.changed.wait_for(
                        lambda: self.scrapes.answered >= self._scrapes_at_update + 2,
                        timeout=max(0.0, deadline - time.monotonic()))
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        return read

    def apply(self, samples: Sequence[Sample]) -> None:
        check_metadata(samples)
        for s in samples:
            metric = self.metrics[s.name].labels(**s.labels)
            kind = SERIES[s.name].kind
            if kind is Kind.GAUGE:
                metric.set(s.value)
            elif kind is Kind.COUNTER:
                metric.inc(s.value)
            else:
                metric.observe(s.value)
        with self.scrapes.changed:
            self._scrapes_at_update = self.scrapes.answered

    def observe_round(self, record: Mapping, sites: Sequence[str]) -> list[Sample]:
        """Export one round record; returns the samples applied."""
        samples = round_samples(record, self.job, sites, self._previous_end, self.plateau.update(record.get("mean_train_loss")))
        self.apply(samples)
        if record.get("finished_at") is not None:
            self._previous_end = record["finished_at"]
        return samples

    def observe_incident(self, frozen: bool, quarantined: Sequence[str], sites: Sequence[str]) -> None:
        """An admin's freeze or quarantine, exported when it takes effect (between rounds)."""
        samples = [Sample("consortium_frozen", {JOB: self.job}, float(frozen))]
        samples += [Sample("consortium_site_quarantined", {JOB: self.job, SITE: s}, float(s in quarantined))
                    for s in sorted(set(sites) | set(quarantined))]
        self.apply(samples)

    def text(self) -> str:
        """The exposition text Prometheus scrapes."""
        return generate_latest(self.registry).decode()
