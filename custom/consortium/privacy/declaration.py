"""How a result declares the DP mechanism already applied to it: one meta key, one writer, one reader.

* ``dp_release``: the :class:`~consortium.privacy.ledger.Release` a training result was made with
  (written by the executor for DP-SGD, by the site filter for the update-level mechanism), so that
  a second DP filter (site and job both configured) sees it and neither noises nor charges twice.
* ``dp_model_of``: on a ``submit_model`` result, the mechanism whose released update this local
  model is post-processing of (``w_global + released update``); only ``"dp_sgd"`` qualifies.
* ``dp_epsilon``: the site's ε for this job after the release (for the server's report).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict

from consortium.privacy.ledger import Release

RELEASE_KEY = "dp_release"
MODEL_OF_KEY = "dp_model_of"
EPSILON_KEY = "dp_epsilon"
KEYS = frozenset({RELEASE_KEY, MODEL_OF_KEY, EPSILON_KEY})


def declare(meta: dict, release: Release) -> dict:
    """``meta`` with ``release`` declared (in place; returned for convenience)."""
    meta[RELEASE_KEY] = asdict(release)
    return meta


def declared(meta: Mapping) -> Release | None:
    """The declared release, None when there is none; ValueError for a malformed declaration."""
    value = meta.get(RELEASE_KEY)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"meta {RELEASE_KEY!r} = {value!r} is not a release record")
    try:
        return Release(**value)
    except TypeError as e:
        raise ValueError(f"meta {RELEASE_KEY!r} = {value!r}: {e}") from None
