"""Personalisation by local fine-tuning: the federated learning personalisation baseline.

The final global model is copied at a site, trained there for a few more local epochs on the
site's own training split, and scored on the site's own test split (Wang et al. 2019,
"Federated Evaluation of On-device Personalization"; Yu et al. 2020, "Salvaging Federated
Learning by Local Adaptation"). The fine-tuned weights never leave the site: only its score
travels, as an extra key of the global model's cross-site evaluation metrics.

Contract with the report: the site's metrics for the global model carry
``personalised_key(metric)`` (the fine-tuned model's mean metric on the site's test split) and
:data:`EPOCHS_KEY` (the number of fine-tuning epochs). This module imports neither FLARE nor torch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from consortium.learning.loop import TrainConfig

PERSONALISED_SUFFIX = "_personalised"
EPOCHS_KEY = "personalise_epochs"
GLOBAL_MODEL_PREFIX = "SRV_"  # FLARE's cross-site evaluation names the server's models SRV_<name>

M = TypeVar("M")


def personalised_key(metric: str) -> str:
    """The metrics key of the personalised model's score, e.g. ``dice_personalised``."""
    return f"{metric}{PERSONALISED_SUFFIX}"


def is_global_model(owner: str | None) -> bool:
    """Whether a model sent for evaluation is the server's (global) model: FLARE's cross-site
    evaluation names it ``SRV_...``; the encrypted jobs' final evaluation sends no owner at all."""
    return owner is None or owner.startswith(GLOBAL_MODEL_PREFIX)


@dataclass(frozen=True)
class Personalisation:
    """Args:
    epochs: local fine-tuning epochs of the final global model at each site (its local-training
        settings otherwise: lr, batch size, momentum); 0 for no personalisation.
    """

    epochs: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 0:
            raise ValueError(f"personalise_epochs must be an integer >= 0, got {self.epochs!r}")

    @property
    def enabled(self) -> bool:
        return self.epochs > 0

    def train_config(self, local: TrainConfig) -> TrainConfig:
        """The site's local optimiser settings with the fine-tuning epochs."""
        if not self.enabled:
            raise ValueError("personalisation is off (personalise_epochs = 0)")
        return replace(local, epochs=self.epochs)


def fine_tuned(model: M, fit: Callable[[M], object]) -> M:
    """A copy of ``model`` trained in place by ``fit``; ``model`` itself is left unchanged."""
    tuned = copy.deepcopy(model)
    fit(tuned)
    return tuned
