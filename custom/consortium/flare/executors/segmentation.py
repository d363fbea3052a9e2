"""A site's executor for MONAI segmentation: a thin adapter over
:mod:`consortium.learning.segmentation` and :mod:`consortium.data.imaging`.

The site's images are read from ``data_dir`` (relative paths are under the site's FLARE workspace,
where ``consortium poc up`` generates them from the site's scanner profile); a missing or corrupt
folder fails the task with an error naming the path. Results carry the same metadata as every
consortium executor, so FedAvg, FedProx, FedNova and the privacy/encryption filters work unchanged.

With ``train_local_only`` the site also trains a local-only baseline (same network, same
initialisation, its own data only, never aggregated) and offers it for cross-site evaluation, so
the final table compares the federated model with every site's local-only model on every site.
Training loss and the received model's Dice go to FLARE experiment tracking (``log_writer_id``).

With ``personalise_epochs`` > 0, validating the global model (cross-site evaluation, owner
``SRV_...``; the encrypted jobs' final evaluation) also fine-tunes a copy of it on the site's
training split for that many epochs and adds its Dice on the site's test split to the metrics
(``dice_personalised``, with ``personalise_epochs``): the FL personalisation baseline of
:mod:`consortium.learning.personalisation`. The fine-tuned weights never leave the site.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from nvflare.apis.dxo import DataKind, from_shareable
from nvflare.apis.event_type import EventType
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable
from nvflare.app_common.app_constant import AppConstants

from consortium.data.imaging import DEFAULT_TEST_FRACTION, load_site_data, site_split
from consortium.flare.executors.site import Score, SiteExecutor
from consortium.learning.loop import TrainConfig, get_weights
from consortium.learning.personalisation import Personalisation, is_global_model
from consortium.learning.segmentation import (
    SegmentationUNet,
    dice_loss,
    dice_scores,
    personalised_dice,
    predict,
    train_segmentation,
    training_loader,
)
from consortium.protocol.evaluation import Evaluation
from consortium.protocol.site_result import Task
from consortium.training_settings import LocalTrainingSettings

SITE_DATA_ROOT_ENV = "CONSORTIUM_SITE_DATA_ROOT"
TRAINING_DEFAULTS = {"lr": 0.1, "momentum": 0.9}


class SegmentationExecutor(SiteExecutor):
    metric = "dice"

    def __init__(
        self,
        model_args: dict | None = None,
        data_dir: str = "data/imaging",
        test_fraction: float = DEFAULT_TEST_FRACTION,
        train_local_only: bool = True,
        log_writer_id: str | None = "log_writer",
        personalise_epochs: int = 0,
        **training,
    ) -> None:
        """Args:
        model_args: arguments of :class:`consortium.learning.segmentation.SegmentationUNet`
            (must match the server persistor's).
        data_dir: the site's imaging folder (images.npz + profile.json); relative to the site's
            workspace.
        test_fraction: share of the site's images held out for evaluation (fixed split).
        train_local_only: also train a local-only baseline for cross-site evaluation.
        log_writer_id: component id of a FLARE LogWriter (e.g. TBWriter); None to not track.
        personalise_epochs: epochs of local fine-tuning of the global model when it is validated
            here (its personalised Dice joins the metrics); 0 for none. Refused with ``dp_sgd``.
        **training: :class:`~consortium.training_settings.LocalTrainingSettings`; here lr defaults
            to 0.1 and momentum to 0.9.
        """
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        self.model_args = dict(model_args or {})
        self.personalisation = Personalisation(personalise_epochs)
        super().__init__(SegmentationUNet(**self.model_args), LocalTrainingSettings.from_args(training, TRAINING_DEFAULTS))
        self.data_dir = data_dir
        self.test_fraction = test_fraction
        if self.personalisation.enabled and self.settings.dp_sgd is not None:
            raise ValueError(f"personalise_epochs = {personalise_epochs} cannot be combined with dp_sgd: the fine-tuning "
                             "is not private, and its Dice would leave the site outside the DP accounting")
        self.local_only = SegmentationUNet(**self.model_args) if train_local_only else None
        self.log_writer_id = log_writer_id
        self.writer = None
        self.train: tuple[np.ndarray, np.ndarray] | None = None
        self.test: tuple[np.ndarray, np.ndarray] | None = None

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        super().handle_event(event_type, fl_ctx)
        if event_type == EventType.START_RUN and self.log_writer_id:
            self.writer = fl_ctx.get_engine().get_component(self.log_writer_id)
            if self.writer is None:
                self.log_warning(fl_ctx, f"no component {self.log_writer_id!r}: metrics will not be tracked")

    def resolve_data_dir(self, fl_ctx: FLContext) -> Path:
        """An absolute ``data_dir`` as is; a relative one under ``$CONSORTIUM_SITE_DATA_ROOT/<site>``
        when that is set (the simulator, which wipes site workspaces), else under the site's workspace."""
        path = Path(self.data_dir)
        if path.is_absolute():
            return path
        root = os.environ.get(SITE_DATA_ROOT_ENV)
        base = Path(root) / self.site(fl_ctx) if root else Path(fl_ctx.get_engine().get_workspace().get_root_dir())
        return base / path

    def load(self, fl_ctx: FLContext) -> int:
        if self.train is None:
            folder = self.resolve_data_dir(fl_ctx)
            self.train, self.test = site_split(*load_site_data(folder), self.test_fraction)
            self.log_info(fl_ctx, f"loaded {len(self.train[0])} train / {len(self.test[0])} test images from {folder}")
        return len(self.train[0])

    def fit(self, model, config: TrainConfig, seed: int, fedprox_mu: float | None, fl_ctx: FLContext):
        return train_segmentation(model, *self.train, config, seed=seed, fedprox_mu=fedprox_mu)

    def training_loader(self, config: TrainConfig, seed: int, fl_ctx: FLContext):
        return training_loader(*self.train, config.batch_size, seed)

    def loss_function(self):
        return dice_loss()

    def score(self, model, fl_ctx: FLContext) -> Score:
        images, masks = self.test
        dice = dice_scores(predict(model, images), masks)
        return Score(n=len(dice), total=float(dice.sum()), loss=float(1.0 - dice.mean()))

    def extra_tasks(self) -> dict:
        return {Task.VALIDATE: self._validate_and_personalise} if self.personalisation.enabled else {}

    def _validate_and_personalise(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        """The base validation; for the global model also the personalised model's Dice."""
        reply = self._validate(shareable, fl_ctx)  # self.model now holds the received weights
        if not is_global_model(shareable.get_header(AppConstants.MODEL_OWNER)):
            return reply
        site = self.site(fl_ctx)
        config = self.personalisation.train_config(self.settings.train_config(site))
        dice = personalised_dice(self.model, self.train, self.test, config, seed=self.settings.round_seed(-1, site))
        dxo = from_shareable(reply)
        if dxo.data_kind != DataKind.METRICS:
            raise ValueError(f"validation returned {dxo.data_kind}, not METRICS")
        evaluation = Evaluation.from_dict(dxo.data).personalise(float(dice.mean()), config.epochs)
        dxo.data = evaluation.to_dict()
        self.log_info(fl_ctx, f"global model {self.metric} {evaluation.mean:.3f}; fine-tuned here for "
                              f"{config.epochs} epochs: {dice.mean():.3f}")
        return dxo.update_shareable(reply)

    def after_train(self, round_number: int, fl_ctx: FLContext, config: TrainConfig, seed: int, result,
                    received: Score) -> None:
        if self.local_only is not None:
            train_segmentation(self.local_only, *self.train, config, seed=seed + 7)
        if self.writer is not None:
            self.writer.add_scalar("train_loss", result.mean_loss, global_step=round_number)
            self.writer.add_scalar("val_dice_global_model", received.mean, global_step=round_number)
            if self.local_only is not None:
                self.writer.add_scalar("val_dice_local_only", self.score(self.local_only, fl_ctx).mean, global_step=round_number)

    def submitted_weights(self) -> dict | None:
        if self.local_only is not None:
            return get_weights(self.local_only)
        return super().submitted_weights()
