"""A model's validation metrics at one site: the contract between the site's ``validate`` task and
everything that reads its result (the site's DP filter, FLARE's cross-site table, the HE jobs'
final evaluation, the job report).

One writer, :meth:`Evaluation.to_dict` (the METRICS DXO's data, as FLARE stores it in
``cross_site_val/cross_val_results.json``), and one reader, :meth:`Evaluation.from_dict`, which
fails closed: a missing or ill-typed field is a ValueError naming the field.

The dict::

    {"<metric>": mean, "loss": loss, "n": n, "score_sum": score_sum, "metric": "<metric>",
     "<metric>_personalised": ..., "personalise_epochs": ...}

``n`` test examples, ``score_sum`` = sum of the per-example metric (correct predictions, Dice), so
that scores pool over sites as ``sum score_sum / sum n``; ``<metric>`` is the mean, written for
FLARE's table and recomputed by the reader, never trusted. ``loss`` may be left out (a DP site
releases no loss). The personalised score (:mod:`consortium.learning.personalisation`: the global
model fine-tuned at the site) and its epochs go together, on the global model's evaluation only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from consortium.learning.personalisation import EPOCHS_KEY, personalised_key

METRIC, N, SCORE_SUM, LOSS = "metric", "n", "score_sum", "loss"


@dataclass(frozen=True)
class Evaluation:
    metric: str  # name of the per-example metric, e.g. "accuracy" or "dice"
    n: int  # test examples
    score_sum: float  # sum of the per-example metric over them
    loss: float | None = None
    personalised: float | None = None  # mean metric of the global model fine-tuned at the site
    personalise_epochs: int | None = None

    def __post_init__(self) -> None:
        _check(self.metric, "metric", str)
        if not self.metric or self.metric in (N, SCORE_SUM, LOSS, METRIC, EPOCHS_KEY):
            raise ValueError(f"validation metrics: field 'metric' must name a metric, got {self.metric!r}")
        _check(self.n, "n", int)
        if self.n < 0:
            raise ValueError(f"validation metrics: field 'n' must be >= 0, got {self.n!r}")
        _check(self.score_sum, "score_sum", float)
        _check(self.loss, LOSS, float, optional=True, finite=False)
        _check(self.personalised, personalised_key(self.metric), float, optional=True)
        _check(self.personalise_epochs, EPOCHS_KEY, int, optional=True)
        if (self.personalised is None) != (self.personalise_epochs is None):
            raise ValueError(f"validation metrics: {personalised_key(self.metric)!r} and {EPOCHS_KEY!r} go together")

    @property
    def mean(self) -> float:
        """The mean per-example metric (NaN on an empty test split)."""
        return self.score_sum / self.n if self.n else math.nan

    def personalise(self, score: float, epochs: int) -> Evaluation:
        """This evaluation with the fine-tuned model's score added."""
        return replace(self, personalised=float(score), personalise_epochs=int(epochs))

    def to_dict(self) -> dict:
        """The METRICS DXO's data (the one writer)."""
        out: dict = {self.metric: self.mean}
        if self.loss is not None:
            out[LOSS] = self.loss
        out |= {N: self.n, SCORE_SUM: self.score_sum, METRIC: self.metric}
        if self.personalised is not None:
            out |= {personalised_key(self.metric): self.personalised, EPOCHS_KEY: self.personalise_epochs}
        return out

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "validation metrics") -> Evaluation:
        """The one reader. ValueError naming ``where`` and the field when ``data`` does not follow
        the contract; keys other than the contract's are ignored (the mean is recomputed)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a dict of metrics, got {type(data).__name__}")
        for key in (METRIC, N, SCORE_SUM):
            if key not in data:
                raise ValueError(f"{where}: field {key!r} missing (have {sorted(map(str, data))})")
        metric = data[METRIC]
        personalised = data.get(personalised_key(metric)) if isinstance(metric, str) else None
        try:
            return cls(metric, data[N], data[SCORE_SUM], data.get(LOSS), personalised, data.get(EPOCHS_KEY))
        except ValueError as e:
            raise ValueError(f"{where}: {str(e).removeprefix('validation metrics: ')}") from None


def _check(value, name: str, kind: type, optional: bool = False, finite: bool = True) -> None:
    """``value`` is a ``kind`` (int: not a bool; float: an int or float, finite unless ``finite`` is
    False; str), or None when ``optional``."""
    if value is None and optional:
        return
    if kind is str:
        ok, want = isinstance(value, str), "a string"
    elif isinstance(value, bool) or not isinstance(value, int | float):
        ok, want = False, "an integer" if kind is int else "a number"
    else:
        ok, want = (isinstance(value, int), "an integer") if kind is int else (
            not finite or math.isfinite(value), "a finite number")
    if not ok:
        raise ValueError(f"validation metrics: field {name!r} must be {want}, got {value!r}")
