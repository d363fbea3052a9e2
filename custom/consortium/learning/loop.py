"""The local training loop every site runs, and what it shares with every task: settings, seeding,
weights in and out.

The loop takes its optimiser and its batches from the caller, so that a privacy engine
(``opacus.PrivacyEngine.make_private``) can wrap both without the loop changing. FedProx's proximal
term is not added to the loss: Opacus replaces ``p.grad`` with its clipped, noised per-example mean,
which would silently drop a gradient that came from the loss. :class:`~consortium.learning.fedprox.ProximalTerm` instead adds its
gradient ``mu (w - w_global)`` in a step pre-hook of the (inner) optimiser, after any such
replacement and before the update, so the minimised objective stays
``loss(w) + mu/2 ||w - w_global||^2`` (Li et al. 2020, "Federated Optimization in Heterogeneous
Networks") whether or not the optimiser is wrapped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from consortium.learning.fedprox import ProximalTerm

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@contextlib.contextmanager
def seeded(seed: int | None):
    """Run the block under ``torch.manual_seed(seed)`` without touching the global RNG state."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


@dataclass(frozen=True)
class TrainConfig:
    """Local optimisation settings, validated once."""

    epochs: int = 1
    lr: float = 0.05
    batch_size: int = 8
    momentum: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")


@dataclass(frozen=True)
class TrainResult:
    steps: int  # optimiser steps taken (tau_k)
    mean_loss: float  # mean data loss over the steps


def sgd(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """The optimiser every site uses by default: SGD with ``config.lr`` and ``config.momentum``.
    FedNova's normaliser for it is :func:`consortium.learning.fednova.local_normaliser`."""
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)


def run_local_training(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Batches | Callable[[int], Batches],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    epochs: int,
) -> TrainResult:
    """Minimise ``loss_fn(model(x), y)`` with ``optimizer`` for ``epochs`` passes over ``batches``.

    ``batches`` is a re-iterable (a ``DataLoader``, wrapped or not) or a factory ``epoch ->
    iterable``. Whatever else acts on the gradients (a proximal term, a privacy engine) is attached
    to ``optimizer`` by the caller. Returns the optimiser steps taken (FedNova's tau) and the mean
    data loss.
    """
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    model.train()
    steps, total = 0, 0.0
    for epoch in range(epochs):
        for x, y in (batches(epoch) if callable(batches) else batches):
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            steps += 1
            total += float(loss.detach())
    if steps == 0:
        raise ValueError("local training made no step: no batches")
    return TrainResult(steps=steps, mean_loss=total / steps)


def train_with_sgd(model: nn.Module, batches: Batches | Callable[[int], Batches], loss_fn, config: TrainConfig,
                   fedprox_mu: float | None = None) -> TrainResult:
    """:func:`run_local_training` with :func:`sgd` and, when ``fedprox_mu`` is set, a
    :class:`ProximalTerm` against the model as it is now (the received global model)."""
    optimizer = sgd(model, config)
    if fedprox_mu:
        ProximalTerm(model, fedprox_mu).attach(optimizer)
    return run_local_training(model, optimizer, batches, loss_fn, config.epochs)


def get_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's state as numpy arrays (what travels in a DXO)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def set_weights(model: nn.Module, weights: dict[str, np.ndarray]) -> None:
    """Load numpy ``weights`` into ``model``; names and shapes must match exactly."""
    state = model.state_dict()
    missing, extra = set(state) - set(weights), set(weights) - set(state)
    if missing or extra:
        raise ValueError(f"weights do not match the model: missing {sorted(missing)}, unexpected {sorted(extra)}")
    for k, v in weights.items():
        if tuple(np.shape(v)) != tuple(state[k].shape):
            raise ValueError(f"weight {k!r} has shape {np.shape(v)}, the model expects {tuple(state[k].shape)}")
    model.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in weights.items()})
