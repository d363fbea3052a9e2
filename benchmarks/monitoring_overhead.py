"""Round time with the metrics exporter on (scraped every 2 s by the Prometheus of
``consortium poc up --monitoring``) against off, in a real POC: heart_fedavg, 4 sites, the two
variants interleaved on one consortium so that drift of this machine's load falls on both. Writes
benchmarks/results/monitoring_overhead.md. Goal from the issue: under 5 % of the round time.

Round time: the median interval between consecutive rounds' records (``finished_at``), first round
skipped; per variant, the median over its jobs. On a loaded 2-core machine the job-to-job spread
is larger than the exporter's cost, so the exporter's own work is also timed in process: exporting
one 4-site round record, and rendering one scrape.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from common import job_variant, size, workflow_args, write_table
from round_overhead import _free_port, overhead

from consortium.defaults import DEFAULT_PROJECT
from consortium.jobs.submit import submit_and_follow
from consortium.poc import lifecycle as poc
from consortium.provisioning.project import Project

ROUNDS = size(40, 3)
REPEATS = size(3, 1)


def variant(tmp: Path, name: str, exporter_port: int | None) -> Path:
    def edit(config: dict) -> None:
        workflow_args(config, "scatter_and_gather")["num_rounds"] = ROUNDS
        components = config["components"]
        if exporter_port is None:
            config["components"] = [c for c in components if c["id"] != "metrics_exporter"]
        else:
            next(c for c in components if c["id"] == "metrics_exporter")["args"]["port"] = exporter_port

    return job_variant("heart_fedavg", tmp / name, edit)


def exporter_work_ms(repeats: int = 2000) -> tuple[float, float]:
    """(median ms to export one 4-site round record, median ms to render one scrape), in process."""
    import time

    from consortium.telemetry.exporter import RoundMetricsExporter

    sites = ["cleveland", "hungary", "switzerland", "va-long-beach"]
    per_site = dict.fromkeys(sites, 0.5)
    record = {"round": 0, "sites": 4, "mean_train_loss": 0.6, "pooled_score": 0.8, "metric": "accuracy", "contributors": sites,
              "rejected": {}, "site_norms": per_site, "site_cosines": per_site, "alerts": {}, "epsilon": {},
              "max_train_seconds": 0.1, "finished_at": 1.0, "started_at": 0.5, "site_seconds": per_site,
              "site_train_loss": per_site, "site_update_bytes": dict.fromkeys(sites, 56), "quarantined": {}}
    exporter = RoundMetricsExporter("bench", port=0)
    observe, scrape = [], []
    for i in range(repeats):
        t = time.perf_counter()
        exporter.observe_round({**record, "round": i, "finished_at": 1.0 + i, "started_at": 0.5 + i}, sites)
        observe.append(time.perf_counter() - t)
        t = time.perf_counter()
        exporter.text()
        scrape.append(time.perf_counter() - t)
    return 1e3 * float(np.median(observe)), 1e3 * float(np.median(scrape))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        exporter_port = _free_port()
        monitoring = shutil.which("prometheus") is not None  # `consortium poc up --monitoring`, as an admin would
        jobs = {"exporter off": variant(tmp, "off", None),
                f"exporter on{', scraped every 2 s' if monitoring else ''}": variant(tmp, "on", exporter_port)}
        ws = tmp / "poc"
        state = poc.up(Project.load(DEFAULT_PROJECT), ws, port=_free_port(), monitoring=monitoring,
                       metrics_port=exporter_port, prometheus_port=_free_port())
        try:
            times: dict[str, list[float]] = {k: [] for k in jobs}
            for _ in range(REPEATS):
                for name, job in jobs.items():
                    times[name].append(overhead(submit_and_follow(state, job, tmp / "results", echo=lambda _: None))[0])
        finally:
            poc.down(ws)
            poc.stop_processes(state, grace=5)
    off, on = (float(np.median(v)) for v in times.values())
    observe_ms, scrape_ms = exporter_work_ms()
    spread = (max(max(v) for v in times.values()) - min(min(v) for v in times.values())) / off
    lines = [f"# Metrics exporter overhead (POC, 4 sites, heart_fedavg, {ROUNDS} rounds x {REPEATS} jobs per variant, "
             "interleaved)", "", "| variant | median round time (s) | per job (s) |", "| --- | ---: | --- |"]
    lines += [f"| {k} | {np.median(v):.4f} | {', '.join(f'{x:.4f}' for x in v)} |" for k, v in times.items()]
    lines += ["", f"Exporter on vs off: {100 * (on - off) / off:+.1f} % of the round time (goal: under 5 %)."
              + ("" if monitoring else " Prometheus was not installed: the exporter ran unscraped."),
              f"Round times of single jobs span {100 * spread:.0f} % of the median on this machine (its load varies), "
              "more than the difference above.", "",
              f"Exporter work in process: {observe_ms:.3f} ms to export a 4-site round record, {scrape_ms:.3f} ms to render one "
              f"scrape (every 2 s): {100 * (observe_ms + scrape_ms * off / 2) / (1e3 * off):.2f} % of the off round time.", ""]
    write_table("monitoring_overhead.md", lines)


if __name__ == "__main__":
    main()
