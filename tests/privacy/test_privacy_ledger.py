"""The site's privacy ledger: ε per job and in total, persisted, locked, and refusing over budget."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from consortium.privacy.accounting import GaussianSteps, epsilon_spent
from consortium.privacy.ledger import BudgetExceeded, PrivacyLedger, Release


def update_release(sigma=4.0):
    return Release("gaussian_update", sigma, 0.5, 1.0, 1)


def test_charges_record_epsilon_per_job_and_in_total(tmp_path):
    ledger = PrivacyLedger(tmp_path / "l.json", epsilon_budget=10.0, delta=1e-3)

    for _ in range(3):
        ledger.charge("job-a", update_release())
    charge = ledger.charge("job-b", Release("dp_sgd", 1.0, 1.0, 0.1, 20))

    a = epsilon_spent([GaussianSteps(4.0, 1.0, 3)], 1e-3)
    b = epsilon_spent([GaussianSteps(1.0, 0.1, 20)], 1e-3)
    both = epsilon_spent([GaussianSteps(4.0, 1.0, 3), GaussianSteps(1.0, 0.1, 20)], 1e-3)
    assert ledger.spent("job-a") == pytest.approx(a)
    assert charge.job_epsilon == pytest.approx(b)
    assert charge.total_epsilon == pytest.approx(both) and both < a + b  # RDP composes tighter than the sum
    data = json.loads((tmp_path / "l.json").read_text())
    assert data["jobs"]["job-a"]["releases"] == [
        {"mechanism": "gaussian_update", "noise_multiplier": 4.0, "clip_norm": 0.5, "sample_rate": 1.0,
         "steps": 3, "rounds": 3}]
    assert data["epsilon_total"] == pytest.approx(both)


def test_the_ledger_survives_a_restart(tmp_path):
    PrivacyLedger(tmp_path / "l.json", 10.0, 1e-3).charge("job-a", update_release())

    reopened = PrivacyLedger(tmp_path / "l.json", 10.0, 1e-3)  # a new process, a new object
    reopened.charge("job-a", update_release())

    assert reopened.spent("job-a") == pytest.approx(epsilon_spent([GaussianSteps(4.0, 1.0, 2)], 1e-3))


def test_a_release_over_the_site_budget_is_refused_and_not_recorded(tmp_path):
    one = epsilon_spent([GaussianSteps(4.0, 1.0, 1)], 1e-3)
    two = epsilon_spent([GaussianSteps(4.0, 1.0, 2)], 1e-3)
    ledger = PrivacyLedger(tmp_path / "l.json", epsilon_budget=(one + two) / 2, delta=1e-3)
    ledger.charge("job-a", update_release())
    before = (tmp_path / "l.json").read_text()

    with pytest.raises(BudgetExceeded, match="site budget.*refused"):
        ledger.charge("job-b", update_release())

    assert (tmp_path / "l.json").read_text() == before


def test_a_release_over_the_job_budget_is_refused(tmp_path):
    ledger = PrivacyLedger(tmp_path / "l.json", 100.0, 1e-3)
    one = ledger.charge("job-a", update_release()).job_epsilon

    with pytest.raises(BudgetExceeded, match="job job-a"):
        ledger.charge("job-a", update_release(), job_budget=one * 1.1)
    ledger.charge("job-b", update_release(), job_budget=one * 1.1)  # another job has its own


def test_a_ledger_for_another_delta_is_not_mixed(tmp_path):
    PrivacyLedger(tmp_path / "l.json", 10.0, 1e-3).charge("job-a", update_release())

    with pytest.raises(ValueError, match="delta"):
        PrivacyLedger(tmp_path / "l.json", 10.0, 1e-5).charge("job-a", update_release())


def test_an_unreadable_ledger_is_an_error_not_an_empty_one(tmp_path):
    (tmp_path / "l.json").write_text("{not json")

    with pytest.raises(ValueError, match="cannot be read"):
        PrivacyLedger(tmp_path / "l.json", 10.0, 1e-3).charge("job-a", update_release())


def _charge_many(path, job, n):
    ledger = PrivacyLedger(path, 1000.0, 1e-3)
    for _ in range(n):
        ledger.charge(job, update_release(sigma=20.0))


def test_concurrent_jobs_in_separate_processes_lose_no_charge(tmp_path):
    path = tmp_path / "l.json"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_charge_many, args=(path, f"job-{i}", 8)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)

    data = json.loads(path.read_text())
    assert sorted(data["jobs"]) == ["job-0", "job-1", "job-2"]
    assert all(j["releases"][0]["steps"] == 8 for j in data["jobs"].values())


def test_bad_arguments_are_refused_naming_them(tmp_path):
    with pytest.raises(ValueError, match="epsilon_budget"):
        PrivacyLedger(tmp_path / "l.json", 0.0, 1e-3)
    with pytest.raises(ValueError, match="delta"):
        PrivacyLedger(tmp_path / "l.json", 1.0, 2.0)
    with pytest.raises(ValueError, match="clip_norm"):
        Release("gaussian_update", 1.0, -1.0, 1.0, 1)
