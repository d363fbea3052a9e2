"""Per-site checks an update must pass before the server combines it.

Each check is a pure function ``check(update, reference) -> None`` that raises ValueError saying
what is wrong (the caller adds the site's name); ``reference`` is the global model the update was
computed against (tensor name -> array), or None when the server has none. A round runs a list of
them (:data:`DEFAULT_CHECKS`, plus e.g. :class:`NormBound`), so a new check is one more function,
not a new aggregator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

Update = Mapping[str, np.ndarray]
Reference = Mapping[str, np.ndarray] | None
UpdateCheck = Callable[[Update, Reference], None]


def check_not_empty(update: Update, reference: Reference) -> None:
    if not update:
        raise ValueError("update is empty")


def check_layout(update: Update, reference: Reference) -> None:
    """The global model's tensor names and shapes, exactly."""
    if reference is None:
        return
    missing, extra = sorted(set(reference) - set(update)), sorted(set(update) - set(reference))
    if missing or extra:
        raise ValueError(f"update does not match the global model: missing {missing}, unexpected {extra}")
    for name, value in update.items():
        if np.shape(value) != np.shape(reference[name]):
            raise ValueError(f"tensor {name!r} has shape {np.shape(value)}, the global model's is {np.shape(reference[name])}")


def check_dtype(update: Update, reference: Reference) -> None:
    """Each tensor's dtype equals the global model's (floating point when there is none): an
    integer update would otherwise truncate the aggregate, a float64 one double its size."""
    for name, value in update.items():
        dtype = np.asarray(value).dtype
        if reference is not None and name in reference:
            want = np.asarray(reference[name]).dtype
            if dtype != want:
                raise ValueError(f"tensor {name!r} has dtype {dtype}, the global model's is {want}")
        elif not np.issubdtype(dtype, np.floating):
            raise ValueError(f"tensor {name!r} has dtype {dtype}, expected floating point")


def check_finite(update: Update, reference: Reference) -> None:
    for name, value in update.items():
        arr = np.asarray(value)
        if np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
            raise ValueError(f"tensor {name!r} has {int(np.sum(~np.isfinite(arr)))} non-finite values")


def update_norm(update: Update) -> float:
    """The L2 norm of the whole update (all tensors as one vector), summed in float64 without a
    float64 copy of the update (``einsum`` casts as it goes)."""
    return float(np.sqrt(sum(dot64(v, v) for v in update.values())))


def dot64(a, b) -> float:
    """The dot product of two tensors (flattened), summed in float64 without a float64 copy."""
    a, b = np.ravel(np.asarray(a)), np.ravel(np.asarray(b))
    return float(np.einsum("i,i->", a, b, dtype=np.float64))


class NormBound:
    """Rejects an update whose L2 norm exceeds ``max_norm`` (a poisoned or diverged site)."""

    def __init__(self, max_norm: float) -> None:
        if not (isinstance(max_norm, int | float) and max_norm > 0 and np.isfinite(max_norm)):
            raise ValueError(f"max_norm must be a positive number, got {max_norm!r}")
        self.max_norm = float(max_norm)

    def __call__(self, update: Update, reference: Reference) -> None:
        norm = update_norm(update)
        if norm > self.max_norm:
            raise ValueError(f"update norm {norm:.4g} exceeds the bound {self.max_norm:.4g}")


DEFAULT_CHECKS: tuple[UpdateCheck, ...] = (check_not_empty, check_layout, check_dtype, check_finite)


def run_checks(site: str, update: Update, reference: Reference, checks: Sequence[UpdateCheck] = DEFAULT_CHECKS) -> None:
    """Every check in order; the first failure is a ValueError naming the site."""
    for check in checks:
        try:
            check(update, reference)
        except ValueError as e:
            raise ValueError(f"update from {site}: {e}") from None
