"""Server listener that exports each round's metrics to Prometheus (:mod:`consortium.telemetry`).

    {"id": "metrics_exporter", "path": "consortium.flare.listeners.metrics_exporter.RoundMetricsListener",
     "args": {"port": 9464, "final_scrape_wait": 10}}

At the job's start it serves ``http://127.0.0.1:<port>/metrics`` from the job's server process; on
each :data:`~consortium.flare.aggregators.round.ROUND_RECORD_EVENT` it exports the record the
aggregator made (nothing is recomputed); on :data:`~consortium.flare.incident.INCIDENT_EVENT` the
admin's freeze / quarantine state; at the job's end it stops serving, once Prometheus (if it has
been scraping the job) has read the last round, waiting ``final_scrape_wait`` seconds at most. Metadata only: counts,
seconds, bytes, losses, scores, norms, cosines, ε and flags, labelled by job and site. A port in
use (another job still running) or an export error is logged and the job goes on without metrics.
"""

from __future__ import annotations

from nvflare.apis.event_type import EventType
from nvflare.apis.fl_component import FLComponent
from nvflare.apis.fl_context import FLContext

from consortium.flare.aggregators.round import ROUND_RECORD_EVENT, ROUND_RECORD_PROP
from consortium.flare.incident import INCIDENT_EVENT, INCIDENT_PROP


class RoundMetricsListener(FLComponent):
    def __init__(self, port: int = 9464, host: str = "127.0.0.1", final_scrape_wait: float = 10.0) -> None:
        super().__init__()
        from consortium.telemetry.exporter import RoundMetricsExporter

        RoundMetricsExporter("check", host, port)  # arguments checked when the job is built
        if isinstance(final_scrape_wait, bool) or not isinstance(final_scrape_wait, (int, float)) \
                or not 0 <= final_scrape_wait <= 300:
            raise ValueError(f"metrics exporter: final_scrape_wait must be seconds in 0..300, got {final_scrape_wait!r}")
        self.port, self.host, self.final_scrape_wait = port, host, float(final_scrape_wait)
        self.exporter = None

    def _sites(self, fl_ctx: FLContext) -> list[str]:
        return sorted(c.name for c in fl_ctx.get_engine().get_clients())

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        if event_type == EventType.START_RUN:
            from consortium.telemetry.exporter import RoundMetricsExporter

            exporter = RoundMetricsExporter(fl_ctx.get_job_id(), self.host, self.port)
            try:
                port = exporter.serve()
            except OSError as e:
                self.log_warning(fl_ctx, f"metrics exporter: cannot serve on {self.host}:{self.port} ({e}); "
                                         "this job runs without metrics")
                return
            self.exporter = exporter
            self.log_info(fl_ctx, f"metrics exporter: http://{self.host}:{port}/metrics")
        elif self.exporter is None:
            return
        elif event_type in (ROUND_RECORD_EVENT, INCIDENT_EVENT):
            prop = fl_ctx.get_prop(ROUND_RECORD_PROP if event_type == ROUND_RECORD_EVENT else INCIDENT_PROP)
            if not isinstance(prop, dict):
                return
            try:
                if event_type == ROUND_RECORD_EVENT:
                    self.exporter.observe_round(prop, self._sites(fl_ctx))
                else:
                    self.exporter.observe_incident(prop["frozen"], list(prop["quarantined"]), self._sites(fl_ctx))
            except (KeyError, TypeError, ValueError) as e:
                self.log_error(fl_ctx, f"metrics exporter: {event_type} not exported ({e}); the round goes on")
        elif event_type == EventType.END_RUN:
            if not self.exporter.close(self.final_scrape_wait):
                self.log_warning(fl_ctx, f"metrics exporter: Prometheus did not read the last round within "
                                         f"{self.final_scrape_wait:g} s; its last samples are missing there")
            self.exporter = None
