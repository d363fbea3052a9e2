"""A site's privacy ledger: every DP release the site made, per job and in total, in one JSON file.

The file lives outside job run folders (FLARE deletes those; the site policy puts it at
``<site workspace>/privacy/ledger.json``), is changed only under an exclusive ``fcntl`` lock on
``<file>.lock`` (each job runs in its own process) and is replaced atomically (write, fsync,
rename), so it survives site and job restarts and a crash never leaves half a ledger.

Contract: call :meth:`PrivacyLedger.charge` *before* a release. It composes the new release with
every release already in the file by the ledger's Opacus accountant at the ledger's δ, and either
records it and returns the new ε, or records nothing and raises :class:`BudgetExceeded` saying by
how much the site's (or the job's) budget would be exceeded. The release must then not be made.
A file that cannot be read, or was written for another δ or accountant, is an error, never an
empty ledger (fail closed).

Layout: ``{"version", "delta", "accountant", "epsilon_budget", "epsilon_total",
"jobs": {job: {"epsilon", "releases": [{"mechanism", "noise_multiplier", "clip_norm",
"sample_rate", "steps", "rounds"}]}}}``; consecutive releases with the same mechanism, σ, C and q
are merged (``steps`` and ``rounds`` add up).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from consortium.fileio import atomic_write, exclusive_lock
from consortium.privacy.accounting import GaussianSteps, check_accountant, check_delta, epsilon_spent

VERSION = 1


class BudgetExceeded(RuntimeError):
    """A release refused because it would exceed a privacy budget; the message says which and by how much."""


@dataclass(frozen=True)
class Release:
    """One DP release: ``mechanism`` (``"gaussian_update"``, ``"dp_sgd"``), its Gaussian steps and clip norm C."""

    mechanism: str
    noise_multiplier: float
    clip_norm: float
    sample_rate: float
    steps: int
    rounds: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.mechanism, str) or not self.mechanism:
            raise ValueError(f"mechanism must be a non-empty name, got {self.mechanism!r}")
        if not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise ValueError(f"clip_norm must be positive, got {self.clip_norm!r}")
        self.gaussian()

    def gaussian(self) -> GaussianSteps:
        return GaussianSteps(self.noise_multiplier, self.sample_rate, self.steps)

    def merges_with(self, other: Release) -> bool:
        return (self.mechanism, self.noise_multiplier, self.clip_norm, self.sample_rate) == (
            other.mechanism, other.noise_multiplier, other.clip_norm, other.sample_rate)


@dataclass(frozen=True)
class Charge:
    """What :meth:`PrivacyLedger.charge` recorded: ε of the job and of the site after the release."""

    job_epsilon: float
    total_epsilon: float
    epsilon_budget: float


class PrivacyLedger:
    def __init__(self, path: str | os.PathLike, epsilon_budget: float, delta: float, accountant: str = "rdp") -> None:
        """Args:
        path: the ledger file (created with its folder on the first charge).
        epsilon_budget: the site's total ε over every job (> 0).
        delta: δ at which every ε in this ledger is stated.
        accountant: ``"rdp"`` or ``"prv"`` (:mod:`consortium.privacy.accounting`).
        """
        if not (isinstance(epsilon_budget, int | float) and math.isfinite(epsilon_budget) and epsilon_budget > 0):
            raise ValueError(f"epsilon_budget must be a positive finite number, got {epsilon_budget!r}")
        self.path = Path(path)
        self.epsilon_budget = float(epsilon_budget)
        self.delta = check_delta(delta)
        self.accountant = check_accountant(accountant)

    def _locked(self):
        return exclusive_lock(self.path)

    def read(self) -> dict:
        """The ledger's content (an empty ledger when the file does not exist yet)."""
        if not self.path.exists():
            return {"version": VERSION, "delta": self.delta, "accountant": self.accountant,
                    "epsilon_budget": self.epsilon_budget, "epsilon_total": 0.0, "jobs": {}}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"privacy ledger {self.path} cannot be read: {e}") from None
        for key, mine in (("delta", self.delta), ("accountant", self.accountant)):
            if data.get(key) != mine:
                raise ValueError(f"privacy ledger {self.path} states ε at {key} = {data.get(key)!r}, "
                                 f"this site's policy says {mine!r}; refusing to mix them")
        return data

    def _write(self, data: dict) -> None:
        atomic_write(self.path, json.dumps(data, indent=2))

    @staticmethod
    def _releases(data: dict, job: str | None = None) -> list[Release]:
        jobs = data["jobs"].items() if job is None else [(job, data["jobs"].get(job, {"releases": []}))]
        return [Release(**r) for _, j in jobs for r in j["releases"]]

    def _epsilon(self, releases: list[Release]) -> float:
        return epsilon_spent([r.gaussian() for r in releases], self.delta, self.accountant)

    def spent(self, job: str | None = None) -> float:
        """ε spent by ``job`` (or by every job together, for ``None``)."""
        return self._epsilon(self._releases(self.read(), job))

    def charge(self, job: str, release: Release, job_budget: float | None = None) -> Charge:
        """Record ``release`` for ``job`` if neither the site's budget nor ``job_budget`` (ε for
        this job alone) would be exceeded; otherwise raise :class:`BudgetExceeded`."""
        if not isinstance(job, str) or not job:
            raise ValueError(f"job must be a non-empty id, got {job!r}")
        with self._locked():
            data = self.read()
            job_eps = self._epsilon([*self._releases(data, job), release])
            total = self._epsilon([*self._releases(data), release])
            if job_budget is not None and job_eps > job_budget:
                raise BudgetExceeded(f"job {job}: this release would bring its ε to {job_eps:.3f} > its budget "
                                     f"{job_budget:.3f} (δ = {self.delta:g}); release refused")
            if total > self.epsilon_budget:
                raise BudgetExceeded(f"site budget: this release would bring the site's ε to {total:.3f} > "
                                     f"{self.epsilon_budget:.3f} (δ = {self.delta:g}, {len(data['jobs'])} job(s) "
                                     f"recorded in {self.path}); release refused")
            entry = data["jobs"].setdefault(job, {"epsilon": 0.0, "releases": []})
            last = entry["releases"][-1] if entry["releases"] else None
            if last is not None and Release(**last).merges_with(release):
                last["steps"] += release.steps
                last["rounds"] += release.rounds
            else:
                entry["releases"].append(asdict(release))
            entry["epsilon"], entry["updated"] = job_eps, time.time()
            data["epsilon_total"], data["epsilon_budget"] = total, self.epsilon_budget
            self._write(data)
        return Charge(job_eps, total, self.epsilon_budget)
