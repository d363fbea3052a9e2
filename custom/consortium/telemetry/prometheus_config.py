"""The Prometheus configuration of a consortium: scrape the job exporters, load the alert rules.
Pure (a dict, and its YAML text); :mod:`consortium.poc.prometheus` writes it and starts Prometheus."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import yaml

SCRAPE_JOB = "consortium"
_DURATION = re.compile(r"^[1-9][0-9]*(ms|s|m|h)$")


def prometheus_config(targets: Sequence[str], rule_files: Sequence[Path | str], scrape_interval: str = "5s",
                      evaluation_interval: str | None = None) -> dict:
    """Scrape ``targets`` (``host:port`` of job exporters) every ``scrape_interval`` and evaluate
    ``rule_files`` every ``evaluation_interval`` (default: the scrape interval)."""
    evaluation_interval = evaluation_interval or scrape_interval
    for name, value in (("scrape_interval", scrape_interval), ("evaluation_interval", evaluation_interval)):
        if not _DURATION.match(value):
            raise ValueError(f"prometheus config: {name} = {value!r} is not a Prometheus duration like '5s'")
    if not targets:
        raise ValueError("prometheus config: no exporter targets to scrape")
    for t in targets:
        host, _, port = t.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"prometheus config: target {t!r} is not host:port")
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(Path(r).resolve()) for r in rule_files],
        "scrape_configs": [{"job_name": SCRAPE_JOB, "scrape_interval": scrape_interval,
                            "static_configs": [{"targets": list(targets)}]}],
    }


def config_text(config: dict) -> str:
    return "# written by `consortium poc up --monitoring`\n" + yaml.safe_dump(config, sort_keys=False)
