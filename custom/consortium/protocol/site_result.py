"""The contract between a site's executor and the server: task names and the typed site result.

A site's training result is its update ``u_k = w_local - w_global`` (FLARE's WEIGHT_DIFF) plus a
:class:`SiteResult` written into the DXO's meta by :meth:`SiteResult.to_meta` and read back by
:func:`read_result`. Every executor writes through the one and every aggregator, filter and
report reads through the other, so the two cannot drift apart.

Each field is declared once in :data:`FIELDS` with

* its **use**: ``combine`` (the server's combination needs it; a result without a valid value is
  rejected, by the reader for ``n_samples`` and by the weighting that needs it for FedNova's
  ``local_steps``/``fednova_a``), ``report`` (round reports only: a result without it, or with
  a malformed value, is still combined and the round record names what was missing) or
  ``optional`` (reported when present, e.g. the ε of a site under DP);
* its **release** rule for privacy policies: ``exact`` (must travel as computed), ``coarsen``
  (may be rounded or bucketed, but must stay a valid value) or ``drop`` (may be removed).

This module imports nothing from FLARE: the adapters move the dict it writes in and out of DXOs.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum

REFUSAL_HEADER = "consortium_privacy_refusal"
"""A result header: why the site sends no update (its audit trail, its DP budget, a check at the
site). The server's round record keeps it per site under ``withheld``. Its text is the site's
own, about the site's state, never about its data."""


class Task(StrEnum):
    """Task names the server sends to the sites."""

    TRAIN = "train"
    VALIDATE = "validate"
    SUBMIT_MODEL = "submit_model"
    FEATURE_STATS = "feature_stats"
    SET_STANDARDISATION = "set_standardisation"


class Use(StrEnum):
    COMBINE = "combine"
    REPORT = "report"
    OPTIONAL = "optional"  # reported when present; its absence is not an incomplete report


class ReleaseRule(StrEnum):
    """How a result field leaves the site: as it is, coarsened, or not at all."""

    EXACT = "exact"
    COARSEN = "coarsen"
    DROP = "drop"


@dataclass(frozen=True)
class FieldSpec:
    key: str
    kind: type  # int, float or str
    use: Use
    release: ReleaseRule
    doc: str


FIELDS: dict[str, FieldSpec] = {
    s.key: s
    for s in (
        FieldSpec("n_samples", int, Use.COMBINE, ReleaseRule.COARSEN,
                  "local training examples n_k (> 0); FedAvg and FedNova weight p_k = n_k / sum n"),
        FieldSpec("local_steps", int, Use.COMBINE, ReleaseRule.EXACT, "optimiser steps tau_k this round (>= 1; FedNova)"),
        FieldSpec("fednova_a", float, Use.COMBINE, ReleaseRule.EXACT, "FedNova normaliser a_k of the local optimiser (> 0)"),
        FieldSpec("train_loss", float, Use.REPORT, ReleaseRule.DROP, "mean data loss over the round's local steps"),
        FieldSpec("train_seconds", float, Use.REPORT, ReleaseRule.DROP, "wall time of local training"),
        FieldSpec("val_metric", str, Use.REPORT, ReleaseRule.DROP, "name of the per-example metric: accuracy, dice"),
        FieldSpec("val_n", int, Use.REPORT, ReleaseRule.COARSEN, "test examples the received model was scored on"),
        FieldSpec("val_score_sum", float, Use.REPORT, ReleaseRule.COARSEN, "sum of the per-example metric over them"),
        FieldSpec("val_loss", float, Use.REPORT, ReleaseRule.DROP, "the received model's mean loss on them"),
        FieldSpec("dp_epsilon", float, Use.OPTIONAL, ReleaseRule.EXACT,
                  "the site's privacy loss epsilon for this job so far (written by its DP filter)"),
        FieldSpec("he_seconds", float, Use.OPTIONAL, ReleaseRule.DROP,
                  "CKKS wall time at the site this round: decrypting the round sum it received and "
                  "encrypting its update (written by its HE filters)"),
    )
}


class ResultMeta(StrEnum):
    """The meta keys of :data:`FIELDS`, for code that names one field."""

    N_SAMPLES = "n_samples"
    LOCAL_STEPS = "local_steps"
    NORMALISER = "fednova_a"
    TRAIN_LOSS = "train_loss"
    TRAIN_SECONDS = "train_seconds"
    VAL_METRIC = "val_metric"
    VAL_N = "val_n"
    VAL_SCORE_SUM = "val_score_sum"
    VAL_LOSS = "val_loss"


@dataclass(frozen=True)
class SiteResult:
    """What a site reports with its update. ``None``: not reported. ``missing``: reporting fields
    that were absent or malformed when this result was read (empty for a freshly written one)."""

    n_samples: int
    local_steps: int | None = None
    fednova_a: float | None = None
    train_loss: float | None = None
    train_seconds: float | None = None
    val_metric: str | None = None
    val_n: int | None = None
    val_score_sum: float | None = None
    val_loss: float | None = None
    dp_epsilon: float | None = None
    he_seconds: float | None = None
    missing: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in FIELDS:
                value = getattr(self, f.name)
                if value is not None:
                    object.__setattr__(self, f.name, _parse(FIELDS[f.name], value))
        if self.n_samples is None or self.n_samples <= 0:
            raise ValueError(f"n_samples = {self.n_samples!r} must be a positive integer")

    def to_meta(self) -> dict:
        """The DXO meta entries of this result (fields that are ``None`` are left out)."""
        return {k: getattr(self, k) for k in FIELDS if getattr(self, k) is not None}


def _parse(spec: FieldSpec, value):
    """``value`` as ``spec.kind``; ValueError saying what is wrong with it."""
    if spec.kind is str:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{spec.key!r} = {value!r} must be a non-empty string")
        return value
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{spec.key!r} = {value!r} is not a finite number")
    if spec.kind is int:
        if value != int(value):
            raise ValueError(f"{spec.key!r} = {value!r} is not a whole number")
        return int(value)
    return float(value)


def read_result(site: str, meta: Mapping) -> SiteResult:
    """The :class:`SiteResult` in a result's meta.

    Raises ValueError naming the site, field and value for a missing or malformed ``combine``
    field that is present (or a missing ``n_samples``); a missing or malformed ``report`` field
    becomes ``None`` and is listed in ``missing``.
    """
    values, missing = {}, []
    for key, spec in FIELDS.items():
        if key not in meta:
            if spec.use == Use.REPORT:
                missing.append(key)
            continue
        try:
            values[key] = _parse(spec, meta[key])
        except ValueError as e:
            if spec.use == Use.COMBINE:
                raise ValueError(f"result from {site}: meta field {e}") from None
            if spec.use == Use.REPORT:
                missing.append(key)
    if "n_samples" not in values:
        raise ValueError(f"result from {site} lacks meta field 'n_samples'")
    try:
        return SiteResult(**values, missing=tuple(missing))
    except ValueError as e:
        raise ValueError(f"result from {site}: meta field {e}") from None
