"""The imaging family: lesion segmentation with a MONAI UNet on each site's scanner-shifted images
(:class:`~consortium.flare.executors.segmentation.SegmentationExecutor`), FedAvg, FedProx or
FedNova, plaintext, under encrypted aggregation or under DP-SGD, with each site's local-only
baseline for cross-site evaluation, personalisation, and training curves in FLARE's experiment
tracking (TensorBoard at the server).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from consortium.recipes.base import ConsortiumRecipe
from consortium.recipes.components import ComponentSpec, ExecutorSpec
from consortium.recipes.config import Intervals, JobConfig, positive_int

MODEL = "consortium.learning.segmentation.SegmentationUNet"
TRACKED_EVENT = "analytix_log_stats"
IMAGING_INTERVALS = Intervals(wait_after_min_received=120, train_timeout=1800, evaluation_timeout=600)


@dataclass(frozen=True)
class ImagingConfig(JobConfig):
    """:class:`~consortium.recipes.config.JobConfig` with the imaging family's defaults, and

    dims, channels: the UNet (2D or 3D images; feature channels per level).
    data_dir: each site's imaging folder, relative to its workspace.
    train_local_only: also train each site's local-only baseline for cross-site evaluation
        (None: yes, unless the job is under HE or DP, where that model may not leave the site).
    tracking: stream training loss and Dice to FLARE's experiment tracking (None: yes, unless
        under DP: they are noiseless functions of the site's data).
    personalise_epochs: local fine-tuning of the final global model at each site (0: none).
    """

    name: str = "seg_fedavg"
    rounds: int = 20
    lr: float = 0.1
    momentum: float = 0.9
    intervals: Intervals = field(default_factory=lambda: IMAGING_INTERVALS)
    dims: int = 2
    channels: tuple[int, ...] = (8, 16, 32, 64)
    data_dir: str = "data/imaging"
    train_local_only: bool | None = None
    tracking: bool | None = None
    personalise_epochs: int = 0

    def check(self) -> None:
        super().check()
        if self.dims not in (2, 3):
            self.fail("dims", "must be 2 or 3")
        if not (isinstance(self.channels, list | tuple) and len(self.channels) >= 2 and all(map(positive_int, self.channels))):
            self.fail("channels", "must list at least two positive channel counts")
        if not (isinstance(self.data_dir, str) and self.data_dir):
            self.fail("data_dir", "must be a folder path")
        if not (isinstance(self.personalise_epochs, int) and self.personalise_epochs >= 0):
            self.fail("personalise_epochs", "must be an integer >= 0")
        if self.dp and self.personalise_epochs:
            self.fail("personalise_epochs", "a DP job releases no noiseless model score: use 0")
        if (self.dp or self.he) and self.train_local_only:
            self.fail("train_local_only", "the local-only model would leave its site noiseless or unencrypted")
        if self.dp and self.tracking:
            self.fail("tracking", "training curves are noiseless functions of a site's data: not under DP")

    @property
    def local_only(self) -> bool:
        return self.train_local_only if self.train_local_only is not None else not (self.dp or self.he)

    @property
    def tracked(self) -> bool:
        return self.tracking if self.tracking is not None else not self.dp


class ImagingRecipe(ConsortiumRecipe):
    """An imaging job from an :class:`ImagingConfig`::

        recipe = ImagingRecipe(ImagingConfig(name="seg_fedprox", algorithm="fedprox", fedprox_mu=0.01))
        recipe.execute(ConsortiumSimEnv())
    """

    config: ImagingConfig

    def __init__(self, config: ImagingConfig | None = None) -> None:
        super().__init__(config if config is not None else ImagingConfig())

    def _model_args(self) -> dict:
        return {"dims": self.config.dims, "channels": list(self.config.channels)}

    def model(self) -> dict:
        return {"path": MODEL, "args": self._model_args()}

    def executor(self, tasks: list[str]) -> ExecutorSpec:
        c = self.config
        args = {"model_args": self._model_args(), "epochs": c.epochs, "lr": c.lr, "batch_size": c.batch_size,
                "momentum": c.momentum, "seed": c.seed, "data_dir": c.data_dir, "train_local_only": c.local_only,
                "log_writer_id": "log_writer" if c.tracked else None}
        if c.personalise_epochs:
            args["personalise_epochs"] = c.personalise_epochs
        optional = (("site_epochs", c.site_epochs or None), ("fedprox_mu", c.fedprox_mu), ("dp_sgd", c.dp_sgd))
        args |= {k: dict(v) if isinstance(v, Mapping) else v for k, v in optional if v is not None}
        return ExecutorSpec("executor", "consortium.flare.executors.segmentation.SegmentationExecutor", args)

    def site_components(self) -> list[ComponentSpec]:
        if not self.config.tracked:
            return []
        return [ComponentSpec("log_writer", "nvflare.app_opt.tracking.tb.tb_writer.TBWriter"),
                ComponentSpec("event_to_fed", "nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent",
                              {"events_to_convert": [TRACKED_EVENT], "fed_event_prefix": "fed."})]

    def server_listeners(self) -> list[ComponentSpec]:
        if not self.config.tracked:
            return []
        return [ComponentSpec("tb_receiver", "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver",
                              {"events": [f"fed.{TRACKED_EVENT}"]})]
