"""The fire drill's faults (pure): what :class:`consortium.flare.filters.fault_drill.FaultDrill`
does to a site's update, so an admin can watch the server's defences act on a real job."""

from __future__ import annotations

import numpy as np

FAULTS = ("none", "nan", "shape", "huge", "sign_flip_x50")


def corrupt(update: dict[str, np.ndarray], fault: str) -> dict[str, np.ndarray]:
    """A copy of ``update`` with ``fault`` applied (pure; what the filter sends)."""
    out = {k: np.array(v, copy=True) for k, v in update.items()}
    first = sorted(out)[0]
    if fault == "none":
        pass
    elif fault == "nan":
        out[first].reshape(-1)[0] = np.nan
    elif fault == "shape":
        out[first] = out[first].reshape(-1)[:-1]
    elif fault == "huge":
        out = {k: v * 1e4 for k, v in out.items()}
    elif fault == "sign_flip_x50":
        out = {k: v * -50.0 for k, v in out.items()}
    else:
        raise ValueError(f"unknown fault {fault!r}; known: {FAULTS}")
    return out
