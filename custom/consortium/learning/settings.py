"""A site executor's local-training settings: one typed, validated record built from the keyword
arguments of the job's JSON (``executors[].executor.args``), one to one."""

from __future__ import annotations

import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType

from consortium.learning.loop import TrainConfig
from consortium.privacy.dp_sgd import DPSGDConfig


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
        if not isinstance(self.site_epochs, Mapping):
            raise ValueError(f"site_epochs must map site names to epochs, got {self.site_epochs!r}")
        self.train_config()  # validates epochs, lr, batch_size, momentum
        for site, epochs in self.site_epochs.items():
            if not isinstance(site, str) or not site:
                raise ValueError(f"site_epochs: key {site!r} must be a site name")
            try:
                replace(self.train_config(), epochs=epochs)
            except ValueError as e:
                raise ValueError(f"site_epochs[{site!r}]: {e}") from None
        object.__setattr__(self, "site_epochs", MappingProxyType(dict(self.site_epochs)))
        if self.fedprox_mu is not None and not (isinstance(self.fedprox_mu, int | float) and self.fedprox_mu >= 0):
            raise ValueError(f"fedprox_mu must be a number >= 0 or null, got {self.fedprox_mu!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.dp_sgd is not None and not isinstance(self.dp_sgd, DPSGDConfig):
            object.__setattr__(self, "dp_sgd", DPSGDConfig.from_args(self.dp_sgd))

    @classmethod
    def from_args(cls, args: Mapping, defaults: Mapping | None = None) -> LocalTrainingSettings:
        """From a job config's executor arguments; an unknown argument is an error naming it."""
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
