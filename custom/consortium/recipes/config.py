"""The typed configuration every consortium recipe takes, checked once when it is made: a wrong
value raises ValueError naming the configuration, the field and the value, before any job is
exported or run. The family configurations (:class:`~consortium.recipes.heart.HeartConfig`,
:class:`~consortium.recipes.imaging.ImagingConfig`) add their own fields and defaults.

The fields map one to one onto the job's JSON: the local-training fields onto the executor's
``args`` (checked by :class:`~consortium.training_settings.LocalTrainingSettings`), ``dp_sgd`` onto
its ``dp_sgd`` (:class:`~consortium.privacy.dp_sgd.DPSGDConfig`), ``update_privacy`` onto the
args of the job's :class:`~consortium.flare.filters.dp.GaussianUpdatePrivacy` filter
(:class:`~consortium.privacy.update_privacy.UpdatePrivacyPolicy`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from consortium.privacy.update_privacy import UpdatePrivacyPolicy
from consortium.training_settings import MAX_ROUNDS, LocalTrainingSettings

ALGORITHMS = ("fedavg", "fedprox", "fednova")
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # FLARE's job-name grammar
DP_SCOPE = "dp"  # the sites' privacy.json scope a DP job asks for (consortium.provisioning.privacy_scopes.DP_SCOPE)


def positive_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class Intervals:
    """FLARE's polling intervals and timeouts, in seconds.

    poll: how often a site asks for a task (``default_task_fetch_interval``), the server answers
        (``task_request_interval``) and a workflow checks its tasks (``task_check_period``); 0.05 s
        keeps a small job's rounds short (FLARE's default is 0.5 to 2 s).
    heart_beat_timeout: the server drops a site that has been silent this long.
    wait_after_min_received: once ``min_clients`` sites answered a round, how long the server waits
        for the others.
    train_timeout: a site's training task is abandoned after this long.
    evaluation_timeout: cross-site evaluation's ``submit_model_timeout`` and ``validation_timeout``.
    """

    poll: float = 0.05
    heart_beat_timeout: float = 600
    wait_after_min_received: float = 5
    train_timeout: float = 120
    evaluation_timeout: float = 30

    def __post_init__(self) -> None:
        for f in fields(self):
            if not positive_number(getattr(self, f.name)):
                raise ValueError(f"Intervals.{f.name} = {getattr(self, f.name)!r} must be a positive number of seconds")


@dataclass(frozen=True)
class JobConfig:
    """What every family shares.

    name: the job's name (meta.json, the folder ``export`` writes).
    algorithm: "fedavg" (weights n_k), "fedprox" (FedAvg's server, the sites add
        (mu/2)·||w - w_global||² to their loss: needs ``fedprox_mu`` > 0) or "fednova" (weights
        n_k / a_k, then tau_eff; pairs with ``site_epochs``).
    rounds: ScatterAndGather rounds, at most :data:`~consortium.training_settings.MAX_ROUNDS`.
    min_clients: sites the job needs to start and accepted results a round needs.
    epochs, site_epochs, lr, batch_size, momentum, fedprox_mu, seed: the sites' local training.
    tau_eff: FedNova's effective steps, "normalisers" (the paper) or "steps".
    max_update_norm: the server rejects an update with a larger L2 norm (None: no bound); under
        HE each site checks its own before encrypting.
    update_privacy: update-level DP (the job's GaussianUpdatePrivacy filter's args); None: none.
    dp_sgd: sample-level DP-SGD in the executor (its ``dp_sgd`` args); None: plain SGD.
    he: encrypted aggregation (CKKS): the server only adds ciphertexts.
    intervals: polling and timeouts.
    metrics_port: the port of the server's round-metrics exporter (Prometheus).
    description: meta.json's description (None: none).
    """

    name: str = "job"
    algorithm: str = "fedavg"
    rounds: int = 30
    min_clients: int = 3
    # a declared mirror of LocalTrainingSettings' fields, flat for the recipe's user (the executor's
    # args are built from them; tests/recipes/test_recipe_config_mirror.py checks the defaults agree)
    epochs: int = 1
    site_epochs: Mapping[str, int] = field(default_factory=dict)
    lr: float = 0.05
    batch_size: int = 8
    momentum: float = 0.0
    fedprox_mu: float | None = None
    seed: int = 0
    tau_eff: str = "normalisers"
    max_update_norm: float | None = None
    update_privacy: Mapping | None = None
    dp_sgd: Mapping | None = None
    he: bool = False
    intervals: Intervals = field(default_factory=Intervals)
    metrics_port: int = 9464
    description: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "site_epochs", dict(self.site_epochs or {}))
        self.check()

    def fail(self, name: str, why: str) -> None:
        raise ValueError(f"{type(self).__name__}.{name} = {getattr(self, name)!r}: {why}")

    @property
    def dp(self) -> bool:
        return self.update_privacy is not None or self.dp_sgd is not None

    @property
    def scope(self) -> str | None:
        """The sites' privacy scope the job asks for in meta.json."""
        return DP_SCOPE if self.dp else None

    def training_args(self) -> dict:
        """The executor's local-training args, as LocalTrainingSettings reads them."""
        args = {"epochs": self.epochs, "site_epochs": self.site_epochs, "lr": self.lr, "batch_size": self.batch_size,
                "momentum": self.momentum, "fedprox_mu": self.fedprox_mu, "seed": self.seed, "dp_sgd": self.dp_sgd}
        return {k: v for k, v in args.items() if v is not None}

    def check(self) -> None:
        """Every field; subclasses add theirs. Raises ValueError naming the field and the value."""
        if not (isinstance(self.name, str) and JOB_NAME.fullmatch(self.name)):
            self.fail("name", "a job name starts with a letter or digit and has only letters, digits, '.', '_', '-'")
        if self.algorithm not in ALGORITHMS:
            self.fail("algorithm", f"must be one of {list(ALGORITHMS)}")
        for name in ("rounds", "min_clients", "metrics_port"):
            if not positive_int(getattr(self, name)):
                self.fail(name, "must be a positive integer")
        if self.rounds > MAX_ROUNDS:
            self.fail("rounds", f"must be at most {MAX_ROUNDS} (consortium job validate refuses more)")
        if self.metrics_port > 65535:
            self.fail("metrics_port", "must be a TCP port, at most 65535")
        if self.algorithm == "fedprox" and not positive_number(self.fedprox_mu):
            self.fail("fedprox_mu", "algorithm 'fedprox' needs a proximal coefficient > 0 (0 would be FedAvg)")
        if self.algorithm != "fedprox" and self.fedprox_mu is not None:
            self.fail("fedprox_mu", f"a proximal term belongs to algorithm 'fedprox', not {self.algorithm!r}")
        if self.tau_eff not in ("normalisers", "steps"):
            self.fail("tau_eff", "must be 'normalisers' or 'steps'")
        if self.max_update_norm is not None and not positive_number(self.max_update_norm):
            self.fail("max_update_norm", "must be a positive number or None")
        if not isinstance(self.intervals, Intervals):
            self.fail("intervals", "must be an Intervals")
        if not isinstance(self.he, bool):
            self.fail("he", "must be True or False")
        try:
            LocalTrainingSettings.from_args(self.training_args())
        except (ValueError, TypeError) as e:
            raise ValueError(f"{type(self).__name__}: local training: {e}") from None
        if self.update_privacy is not None:
            if not isinstance(self.update_privacy, Mapping):
                self.fail("update_privacy", "must map GaussianUpdatePrivacy's arguments to values")
            try:
                UpdatePrivacyPolicy(**self.update_privacy)
            except (ValueError, TypeError) as e:
                raise ValueError(f"{type(self).__name__}.update_privacy: {e}") from None
        if self.he and self.dp:
            self.fail("he", "a job-level DP filter cannot run with encryption here; a site's DP comes from its "
                            "privacy.json and runs before the job's encrypt filter")
