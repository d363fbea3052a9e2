"""Local training of a tabular classifier (logistic regression or a small MLP) with optional FedProx.

The FedProx term is passed in as a callable so that this module stays free of FLARE: the adapter
hands in nvflare's ``PTFedProxLoss`` bound to the received global model. The loss minimised is
``BCE(f(x), y) + proximal(model)``; with FedProx ``proximal(model) = mu/2 * ||w - w_global||^2``
(Li et al. 2020, "Federated Optimization in Heterogeneous Networks").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@contextlib.contextmanager
def seeded(seed: int | None):
    """Run the block under ``torch.manual_seed(seed)`` without touching the global RNG state."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


class LogisticRegression(nn.Module):
    """``sigmoid(w.x + b)``: FLamby's Fed-Heart-Disease baseline. Outputs logits, shape (n,)."""

    def __init__(self, in_features: int = 15, init_seed: int | None = 0) -> None:
        super().__init__()
        with seeded(init_seed):
            self.linear = nn.Linear(in_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)


class MLP(nn.Module):
    """One hidden ReLU layer; outputs logits, shape (n,)."""

    def __init__(self, in_features: int = 15, hidden: int = 16, init_seed: int | None = 0) -> None:
        super().__init__()
        with seeded(init_seed):
            self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


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
    mean_loss: float  # mean data loss (without the proximal term) over the steps


@dataclass(frozen=True)
class EvalResult:
    n: int
    correct: int
    loss: float  # mean BCE

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")


def train_local(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
    seed: int,
    proximal: Callable[[nn.Module], torch.Tensor] | None = None,
) -> TrainResult:
    """Mini-batch SGD on ``(x, y)`` for ``config.epochs`` epochs, shuffled by ``seed``; in place."""
    if len(x) == 0:
        raise ValueError("train_local got an empty training set")
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)

    def batches(_epoch: int):
        for idx in torch.randperm(len(xt), generator=gen).split(config.batch_size):
            yield xt[idx], yt[idx]

    return run_sgd(model, batches, nn.BCEWithLogitsLoss(), config, proximal)


def run_sgd(
    model: nn.Module,
    batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    config: TrainConfig,
    proximal: Callable[[nn.Module], torch.Tensor] | None = None,
) -> TrainResult:
    """The local optimisation loop every executor uses: SGD (with ``config.momentum``) on
    ``loss_fn(model(x), y) + proximal(model)`` over ``batches(epoch)`` for ``config.epochs`` epochs.

    Returns the number of optimiser steps (FedNova's tau) and the mean data loss (without the
    proximal term). FedNova's normaliser for these settings is
    :func:`consortium.learning.fednova.local_normaliser`.
    """
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    model.train()
    steps, total = 0, 0.0
    for epoch in range(config.epochs):
        for x, y in batches(epoch):
            opt.zero_grad()
            data_loss = loss_fn(model(x), y)
            loss = data_loss + proximal(model) if proximal is not None else data_loss
            loss.backward()
            opt.step()
            steps += 1
            total += float(data_loss.detach())
    if steps == 0:
        raise ValueError("run_sgd made no step: no batches")
    return TrainResult(steps=steps, mean_loss=total / steps)


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> EvalResult:
    """Accuracy (threshold 0.5) and mean BCE of ``model`` on ``(x, y)``."""
    model.eval()
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    logits = model(xt)
    loss = float(nn.functional.binary_cross_entropy_with_logits(logits, yt)) if len(yt) else float("nan")
    correct = int(((logits > 0).float() == yt).sum())
    return EvalResult(n=len(yt), correct=correct, loss=loss)


def get_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's state as float32 numpy arrays (what travels in a DXO)."""
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
