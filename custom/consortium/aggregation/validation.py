"""Checks a site's update must pass before the server combines it: the tensors of the global
model, with their shapes, and only finite values. One bad update is rejected, not averaged."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def check_update(site: str, update: Mapping[str, np.ndarray], reference: Mapping[str, object] | None = None) -> None:
    """ValueError naming the site and tensor for a layout mismatch or a non-finite value.

    ``reference`` maps tensor names to arrays (or anything with a shape), normally the global model.
    """
    if not update:
        raise ValueError(f"update from {site} is empty")
    if reference is not None:
        missing, extra = sorted(set(reference) - set(update)), sorted(set(update) - set(reference))
        if missing or extra:
            raise ValueError(f"update from {site} does not match the global model: missing {missing}, unexpected {extra}")
    for name, value in update.items():
        arr = np.asarray(value)
        if reference is not None and arr.shape != np.shape(reference[name]):
            raise ValueError(f"update from {site}: tensor {name!r} has shape {arr.shape}, "
                             f"the global model's is {np.shape(reference[name])}")
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"update from {site}: tensor {name!r} has non-numeric dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"update from {site}: tensor {name!r} has {int(np.sum(~np.isfinite(arr)))} non-finite values")
