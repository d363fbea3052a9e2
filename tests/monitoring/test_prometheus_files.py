"""The Prometheus rules and generated configuration pass promtool; the rules' seed thresholds hold
on series just below and just above them (promtool's rule unit tests); the dashboard asks only for
declared series."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from consortium.poc.prometheus import DASHBOARD, RULES
from consortium.telemetry.prometheus_config import config_text, prometheus_config
from consortium.telemetry.series import SERIES

PROMTOOL = shutil.which("promtool")


@pytest.fixture
def _promtool_installed():
    if PROMTOOL is None:  # a missing tool fails the test: `make test` installs it first
        pytest.fail("promtool not installed: run `make monitoring` (apt-get install prometheus)")


needs_promtool = pytest.mark.usefixtures("_promtool_installed")


def promtool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


@needs_promtool
def test_promtool_accepts_the_rules():
    out = promtool("check", "rules", str(RULES))
    assert out.returncode == 0 and "SUCCESS: 6 rules found" in out.stdout, out.stdout + out.stderr


@needs_promtool
def test_the_rules_fire_at_the_seed_thresholds_and_not_below():
    out = promtool("test", "rules", str(RULES.with_name("consortium_rules_test.yml")))
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_promtool_accepts_the_generated_config(tmp_path):
    config = tmp_path / "prometheus.yml"
    config.write_text(config_text(prometheus_config(["127.0.0.1:9464"], [RULES], "2s")))
    out = promtool("check", "config", str(config))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("kwargs", [{"targets": []}, {"targets": ["9464"]}, {"targets": ["127.0.0.1:9464"], "scrape_interval": "2"}])
def test_a_bad_config_request_is_refused(kwargs):
    with pytest.raises(ValueError, match="prometheus config"):
        prometheus_config(rule_files=[RULES], **kwargs)


def dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(Path(DASHBOARD).read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels if p["type"] != "row" for t in p["targets"]]


def test_every_dashboard_query_names_only_declared_series_and_every_category_has_panels():
    rows = [p["title"] for p in json.loads(Path(DASHBOARD).read_text())["panels"] if p["type"] == "row"]
    assert rows == ["Convergence", "Participation", "Security", "System health", "Privacy and encryption"]
    known = set(SERIES) | {n.removesuffix("_total") + "_total" for n in SERIES} | {
        f"{n}_{s}" for n in SERIES for s in ("bucket", "sum", "count")}
    for title, expr in dashboard_queries():
        names = set(re.findall(r"\b(consortium_[a-z0-9_]+)", expr))
        assert names and names <= known, (title, names - known)
