"""Sample-level DP-SGD in local training with Opacus (Abadi et al. 2016, "Deep Learning with
Differential Privacy"): per-example gradients clipped to L2 norm C (``max_grad_norm``), summed,
plus ``N(0, (σC)²)``, over Poisson-sampled batches (each example in each batch with probability
``q = 1 / batches per epoch``). Adjacency: add/remove one example of the site's training set,
as Opacus' accountants assume.

One round at a site is ``steps = epochs · batches per epoch`` applications of the sampled Gaussian
mechanism: :class:`DPSGDConfig` sets σ directly or from a target (ε, δ) over ``planned_rounds``
rounds (:func:`~consortium.privacy.accounting.noise_multiplier_for`). The model is used unwrapped
(``make_private(wrap_model=False)``): the weights exchanged keep their names (no ``_module.``
prefix). FedProx's term, a step pre-hook on the inner optimiser (:class:`~consortium.learning.loop.ProximalTerm`),
is added after Opacus writes the noised gradient, so DP-SGD with μ > 0 is still FedProx
(the term depends only on the public global model and the current weights).
"""

from __future__ import annotations

import math
import secrets
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import torch
from torch import nn
from torch.utils.data import DataLoader

from consortium.learning.fedprox import ProximalTerm
from consortium.learning.loop import TrainConfig, TrainResult, run_local_training, seeded, sgd
from consortium.privacy.accounting import check_accountant, check_delta, noise_multiplier_for
from consortium.privacy.ledger import Release

MECHANISM = "dp_sgd"


@dataclass(frozen=True)
class DPSGDConfig:
    """Args:
    max_grad_norm: per-example clip norm C (> 0).
    noise_multiplier: σ; or null and ``target_epsilon`` with ``planned_rounds``.
    target_epsilon: ε this site may spend in the job (at ``delta``) over ``planned_rounds`` rounds.
    delta: δ (default 1e-3, as FLamby's heart-disease DP results).
    planned_rounds: rounds the job will run (calibration only).
    accountant: ``"rdp"`` or ``"prv"``.
    """

    max_grad_norm: float = 1.0
    noise_multiplier: float | None = None
    target_epsilon: float | None = None
    delta: float = 1e-3
    planned_rounds: int | None = None
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        if not (isinstance(self.max_grad_norm, int | float) and math.isfinite(self.max_grad_norm)
                and self.max_grad_norm > 0):
            raise ValueError(f"dp_sgd.max_grad_norm must be a positive number, got {self.max_grad_norm!r}")
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ValueError("dp_sgd needs exactly one of noise_multiplier and target_epsilon, got "
                             f"noise_multiplier={self.noise_multiplier!r}, target_epsilon={self.target_epsilon!r}")
        if self.noise_multiplier is not None and not (isinstance(self.noise_multiplier, int | float)
                                                      and self.noise_multiplier > 0):
            raise ValueError(f"dp_sgd.noise_multiplier must be positive, got {self.noise_multiplier!r}")
        if self.target_epsilon is not None and not (isinstance(self.planned_rounds, int) and self.planned_rounds >= 1):
            raise ValueError(f"dp_sgd.target_epsilon needs planned_rounds >= 1, got {self.planned_rounds!r}")
        check_delta(self.delta)
        check_accountant(self.accountant)

    @classmethod
    def from_args(cls, args: Mapping) -> DPSGDConfig:
        known = {f.name for f in fields(cls)}
        if not isinstance(args, Mapping) or set(args) - known:
            raise ValueError(f"dp_sgd: unknown argument(s) {sorted(set(args) - known) if isinstance(args, Mapping) else args!r};"
                             f" known: {sorted(known)}")
        return cls(**args)

    def sigma(self, sample_rate: float, steps_per_round: int) -> float:
        """σ: as given, or calibrated for ``planned_rounds · steps_per_round`` steps at ``sample_rate``."""
        if self.noise_multiplier is not None:
            return float(self.noise_multiplier)
        return noise_multiplier_for(self.target_epsilon, self.delta, sample_rate,
                                    self.planned_rounds * steps_per_round, self.accountant)


def train_dp_sgd(model: nn.Module, loader: DataLoader, loss_fn: Callable, config: TrainConfig, dp: DPSGDConfig,
                 seed: int | None = None, fedprox_mu: float | None = None) -> tuple[TrainResult, Release]:
    """Train ``model`` in place with DP-SGD (SGD with ``config``'s lr and momentum, Poisson
    sampling with rate ``1 / len(loader)``); returns the result and the :class:`Release` it made
    (σ, C, q, steps) for the site's ledger.

    ``seed`` None (what a site runs): noise and sampling come from a generator seeded with 63 bits
    of OS entropy, so nobody who reads the job's configuration can predict them. A fixed seed makes
    runs reproducible and must only be used in tests: noise that can be predicted protects nothing.
    (Opacus' ``secure_mode`` would draw every sample from a CSPRNG; it needs torchcsprng.)
    """
    from opacus import PrivacyEngine

    if seed is None:
        seed = secrets.randbits(63)

    batches = len(loader)
    sample_rate, steps = 1.0 / batches, config.epochs * batches
    sigma = dp.sigma(sample_rate, steps)
    optimizer = sgd(model, config)
    if fedprox_mu:
        ProximalTerm(model, fedprox_mu).attach(optimizer)  # on the inner optimiser: survives Opacus
    model.train()  # Opacus validates the module in training mode (the executor may just have scored it)
    noise = torch.Generator().manual_seed(seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]ecure RNG.*")  # seeded from OS entropy (see above)
        hooks, dp_optimizer, dp_loader = PrivacyEngine(accountant=dp.accountant).make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=sigma,
            max_grad_norm=dp.max_grad_norm, poisson_sampling=True, noise_generator=noise, wrap_model=False)
    try:
        with warnings.catch_warnings(), seeded(seed):  # Poisson sampling draws from torch's RNG
            warnings.filterwarnings("ignore", message="Full backward hook is firing")  # inputs need no grad
            result = run_local_training(model, dp_optimizer, dp_loader, loss_fn, config.epochs)
    finally:
        hooks.cleanup()
        for p in model.parameters():  # Opacus' per-step state; the weights themselves are untouched
            for attr in ("grad_sample", "summed_grad", "_forward_counter"):
                if hasattr(p, attr):
                    delattr(p, attr)
    return result, Release(MECHANISM, sigma, dp.max_grad_norm, sample_rate, steps)
