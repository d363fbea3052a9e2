"""Local training of a tabular classifier (logistic regression or a small MLP) with optional FedProx.

The data come as a torch ``DataLoader`` (:func:`tabular_loader`) and the optimisation is the shared
loop of :mod:`consortium.learning.loop`; with FedProx the minimised objective is
``BCE(f(x), y) + mu/2 ||w - w_global||^2`` (Li et al. 2020).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from consortium.learning.loop import TrainConfig, TrainResult, seeded, train_with_sgd


class LogisticRegression(nn.Module):
    """``sigmoid(w.x + b)``: FLamby's Fed-Heart-Disease baseline. Outputs logits, shape (n,)."""

    def __init__(self, in_features: int = 13, init_seed: int | None = 0) -> None:
        super().__init__()
        with seeded(init_seed):
            self.linear = nn.Linear(in_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)


class MLP(nn.Module):
    """One hidden ReLU layer; outputs logits, shape (n,)."""

    def __init__(self, in_features: int = 13, hidden: int = 16, init_seed: int | None = 0) -> None:
        super().__init__()
        with seeded(init_seed):
            self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


@dataclass(frozen=True)
class EvalResult:
    n: int
    correct: int
    loss: float  # mean BCE

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")


class EpochPermutation(Sampler[int]):
    """A fresh permutation of ``range(n)`` from ``generator`` at every pass (one per epoch)."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        self.n, self.generator = n, generator

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.generator).tolist())

    def __len__(self) -> int:
        return self.n


def tabular_loader(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> DataLoader:
    """Shuffled mini-batches of ``(x, y)`` as float32 tensors; the order is fixed by ``seed``.
    A torch ``DataLoader``, so a privacy engine can replace its sampling."""
    if len(x) == 0:
        raise ValueError("tabular_loader got an empty training set")
    ds = TensorDataset(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32))
    return DataLoader(ds, batch_size=batch_size, sampler=EpochPermutation(len(ds), torch.Generator().manual_seed(seed)))


def train_local(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
    seed: int,
    fedprox_mu: float | None = None,
) -> TrainResult:
    """Mini-batch SGD on BCE for ``config.epochs`` epochs, shuffled by ``seed``, with FedProx's
    term when ``fedprox_mu`` is set; in place."""
    if len(x) == 0:
        raise ValueError("train_local got an empty training set")
    with seeded(seed):
        return train_with_sgd(model, tabular_loader(x, y, config.batch_size, seed), nn.BCEWithLogitsLoss(), config,
                              fedprox_mu)


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> EvalResult:
    """Accuracy (threshold 0.5) and mean BCE of ``model`` on ``(x, y)``."""
    model.eval()
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    logits = model(xt)
    loss = float(nn.functional.binary_cross_entropy_with_logits(logits, yt)) if len(yt) else float("nan")
    correct = int(((logits > 0).float() == yt).sum())
    return EvalResult(n=len(yt), correct=correct, loss=loss)
