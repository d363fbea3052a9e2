"""The command line from another directory, and its output when not on a terminal."""

from __future__ import annotations

import pandas as pd

from conftest import JOBS
from consortium.cli.main import main
from consortium.reports.job_report import GLOBAL, JobResults, print_table


def test_validate_works_from_any_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no provisioning/project.yml here: the repository's is used

    assert main(["job", "validate", str(JOBS / "heart_fedavg")]) == 0
    assert "ok (heart_fedavg)" in capsys.readouterr().out


def test_tables_are_not_cut_when_output_is_not_a_terminal(capsys):
    sites = ["cleveland", "hungary", "switzerland", "va-long-beach"]
    scores = pd.DataFrame({GLOBAL: [0.8] * 4, **{s: [0.7] * 4 for s in sites}}, index=sites)
    results = JobResults(folder=None, name="heart_fedavg", metric="accuracy", rounds=pd.DataFrame(), scores=scores,
                         n_test=pd.Series(dict.fromkeys(sites, 50)), global_total=pd.Series(dict.fromkeys(sites, 40.0)))

    print_table(results)  # capsys: stdout is not a terminal

    out = capsys.readouterr().out
    assert "va-long-beach's model" in out and "…" not in out
