"""Combine rules: how the accepted, weighted updates of a round become one.

:class:`WeightedSum` streams: it adds ``c_k u_k`` into one accumulator as each result arrives, so
the server holds O(1) model copies whatever the number of sites. It only needs the two operations
of :class:`UpdateAlgebra` (scale by a plaintext number, add), which a ciphertext vector also has;
:class:`NumpyAlgebra` is the plaintext one (float64 accumulation, cast back to the model's dtype at
the end). A rule that needs every update at once (coordinate median, trimmed mean) sets
``needs_all_updates = True`` and keeps them; the round tells which one it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, Protocol, TypeVar

import numpy as np

V = TypeVar("V")


class UpdateAlgebra(Protocol[V]):
    def scaled(self, x: V, c: float) -> V:
        """A new value ``c * x`` (the accumulator's start)."""

    def add_scaled(self, acc: V, x: V, c: float) -> V:
        """``acc + c * x``; may update ``acc`` in place and return it."""

    def finish(self, acc: V, scale: float) -> V:
        """``scale * acc`` in the form the server step takes."""


class NumpyAlgebra:
    """Plaintext updates ``{name: array}``: accumulates in float64, returns the first update's dtypes."""

    def __init__(self) -> None:
        self.dtypes: dict[str, np.dtype] = {}

    def scaled(self, x: Mapping[str, np.ndarray], c: float) -> dict[str, np.ndarray]:
        self.dtypes = {k: np.asarray(v).dtype for k, v in x.items()}
        return {k: np.multiply(v, float(c), dtype=np.float64) for k, v in x.items()}

    def add_scaled(self, acc: dict[str, np.ndarray], x: Mapping[str, np.ndarray], c: float) -> dict[str, np.ndarray]:
        if set(acc) != set(x):
            raise ValueError(f"update names {sorted(set(acc) ^ set(x))} differently from the others")
        for k, v in x.items():
            if np.shape(v) != acc[k].shape:
                raise ValueError(f"tensor {k!r} has shape {np.shape(v)}, the others {acc[k].shape}")
            acc[k] += np.multiply(v, float(c), dtype=np.float64)
        return acc

    def finish(self, acc: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
        return {k: (v * float(scale)).astype(self.dtypes[k]) for k, v in acc.items()}


class WeightedSum(Generic[V]):
    """Streaming ``scale * sum_k c_k u_k`` over an :class:`UpdateAlgebra`."""

    needs_all_updates = False

    def __init__(self, algebra: UpdateAlgebra[V] | None = None) -> None:
        self.algebra = algebra if algebra is not None else NumpyAlgebra()
        self._acc: V | None = None
        self.count = 0

    def add(self, update: V, coefficient: float) -> None:
        if self._acc is None:
            self._acc = self.algebra.scaled(update, coefficient)
        else:
            self._acc = self.algebra.add_scaled(self._acc, update, coefficient)
        self.count += 1

    def result(self, scale: float) -> V:
        if self._acc is None:
            raise ValueError("no update was added")
        out = self.algebra.finish(self._acc, scale)
        self.reset()
        return out

    def reset(self) -> None:
        self._acc, self.count = None, 0
