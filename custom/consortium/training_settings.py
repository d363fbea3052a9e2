"""A site executor's local-training settings: one typed, validated record built from the keyword
arguments of the job's JSON (``executors[].executor.args``), one to one.

Every field is checked by type and range before anything uses it, so a job with ``lr: "fast"``
fails when the executor is built, with ``ValueError("lr = 'fast' must be a positive number")``,
not with a ``TypeError`` deep in training. :data:`SCALAR_RULES` holds those rules; ``consortium
validate`` (:mod:`consortium.jobs.values`) applies the same ones to the job's JSON.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from consortium.learning.loop import TrainConfig
from consortium.privacy.dp_sgd import DPSGDConfig

MAX_ROUNDS = 10_000  # federated rounds of one job: more is a typo (the shipped jobs run 20 to 50)
MAX_EPOCHS = 1_000  # local epochs per round (the shipped jobs use at most 5; fine-tuning at most 60)
MAX_BATCH_SIZE = 65_536
# a larger epsilon promises nothing, and Opacus' calibration of sigma to it may not finish (1e300 does not)
MAX_EPSILON = 100.0


def is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite float, or an int a float holds exactly (|n| <= 2^53: NumPy refuses larger ones); a
    bool is not a number here."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return abs(value) <= 2**53 if isinstance(value, int) else math.isfinite(value)


def _epochs(value) -> bool:
    return is_integer(value) and 1 <= value <= MAX_EPOCHS


EPOCHS_RULE = (_epochs, f"must be an integer in [1, {MAX_EPOCHS}]")
# field: (test, the rule a refused value breaks); site_epochs and dp_sgd are checked entry by entry
SCALAR_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "epochs": EPOCHS_RULE,
    "lr": (lambda v: is_number(v) and v > 0, "must be a positive number"),
    "batch_size": (lambda v: is_integer(v) and 1 <= v <= MAX_BATCH_SIZE, f"must be an integer in [1, {MAX_BATCH_SIZE}]"),
    "momentum": (lambda v: is_number(v) and 0 <= v < 1, "must be a number in [0, 1)"),
    "fedprox_mu": (lambda v: v is None or (is_number(v) and v >= 0), "must be a number >= 0 or null"),
    "seed": (is_integer, "must be an integer"),
}
# dp_sgd's fields by type (DPSGDConfig checks their ranges and how they combine)
DP_SGD_TYPES: dict[str, tuple[Callable[[object], bool], str]] = {
    "max_grad_norm": (lambda v: is_number(v) and v > 0, "must be a positive number"),
    "noise_multiplier": (lambda v: v is None or (is_number(v) and v > 0), "must be a positive number or null"),
    "target_epsilon": (lambda v: v is None or (is_number(v) and 0 < v <= MAX_EPSILON),
                       f"must be a number in (0, {MAX_EPSILON:g}] or null"),
    "delta": (lambda v: is_number(v) and 0 < v < 1, "must be a number in (0, 1)"),
    "planned_rounds": (lambda v: v is None or (is_integer(v) and v >= 1), "must be an integer >= 1 or null"),
    "accountant": (lambda v: isinstance(v, str), "must be a string"),
}


def _check(name: str, value, rule: tuple[Callable[[object], bool], str]) -> None:
    test, why = rule
    if not test(value):
        raise ValueError(f"{name} = {value!r} {why}")


@dataclass(frozen=True)
class LocalTrainingSettings:
    """Args:
    epochs: local epochs per round; ``site_epochs`` maps a site name to its own count.
    lr, batch_size, momentum: local SGD settings.
    fedprox_mu: FedProx coefficient; None for none (0 is accepted and warned about: it is FedAvg).
    seed: base seed; each (round, site) derives its own shuffling seed from it.
    dp_sgd: sample-level DP-SGD (:class:`~consortium.privacy.dp_sgd.DPSGDConfig` fields:
        ``max_grad_norm``, ``noise_multiplier`` or ``target_epsilon`` with ``planned_rounds``,
        ``delta``, ``accountant``); None for plain SGD.
    """

    epochs: int = 1
    site_epochs: Mapping[str, int] = field(default_factory=dict)
    lr: float = 0.05
    batch_size: int = 8
    momentum: float = 0.0
    fedprox_mu: float | None = None
    seed: int = 0
    dp_sgd: DPSGDConfig | Mapping | None = None

    def __post_init__(self) -> None:
        """ValueError naming the first field whose value has the wrong type or range."""
        for name, rule in SCALAR_RULES.items():
            _check(name, getattr(self, name), rule)
        if not isinstance(self.site_epochs, Mapping):
            raise ValueError(f"site_epochs = {self.site_epochs!r} must map site names to epochs")
        for site, epochs in self.site_epochs.items():
            if not isinstance(site, str) or not site:
                raise ValueError(f"site_epochs: key {site!r} must be a site name")
            _check(f"site_epochs[{site!r}]: epochs", epochs, EPOCHS_RULE)
        object.__setattr__(self, "site_epochs", MappingProxyType(dict(self.site_epochs)))
        self.train_config()  # TrainConfig's own checks
        if self.dp_sgd is not None and not isinstance(self.dp_sgd, DPSGDConfig):
            if not isinstance(self.dp_sgd, Mapping):
                raise ValueError(f"dp_sgd = {self.dp_sgd!r} must map DP-SGD's settings to values, or be null")
            for name, rule in DP_SGD_TYPES.items():
                if name in self.dp_sgd:
                    _check(f"dp_sgd.{name}", self.dp_sgd[name], rule)
            object.__setattr__(self, "dp_sgd", DPSGDConfig.from_args(self.dp_sgd))

    @classmethod
    def from_args(cls, args: Mapping, defaults: Mapping | None = None) -> LocalTrainingSettings:
        """From a job config's executor arguments; an unknown argument is an error naming it."""
        if not isinstance(args, Mapping):
            raise ValueError(f"local-training arguments = {args!r} must map names to values")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(args) - known)
        if unknown:
            raise ValueError(f"unknown local-training argument(s) {unknown}; known: {sorted(known)}")
        return cls(**(dict(defaults or {}) | dict(args)))

    def train_config(self, site: str | None = None) -> TrainConfig:
        """The optimiser settings for ``site`` (its own epochs when ``site_epochs`` names it)."""
        epochs = self.site_epochs.get(site, self.epochs) if site is not None else self.epochs
        return TrainConfig(epochs=epochs, lr=self.lr, batch_size=self.batch_size, momentum=self.momentum)

    def round_seed(self, round_number: int, site: str) -> int:
        """The shuffling seed of one site in one round (stable across runs and processes)."""
        return self.seed * 1_000_003 + int(round_number) * 1009 + zlib.crc32(site.encode()) % 1000

    def check_sites(self, sites: Collection[str], of: str = "this consortium") -> None:
        """ValueError naming every ``site_epochs`` key that is not one of ``sites`` (a misspelt
        hospital would otherwise silently train with the default)."""
        unknown = sorted(set(self.site_epochs) - set(sites))
        if unknown:
            raise ValueError(f"site_epochs names {unknown}, which are not sites of {of} {sorted(sites)}")
