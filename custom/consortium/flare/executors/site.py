"""What every consortium training executor shares: task dispatch, local training settings
(:class:`~consortium.training_settings.LocalTrainingSettings`: per-site epochs, FedProx, seeds) and
the result contract.

A training result is the update ``w_local - w_global`` (WEIGHT_DIFF) with a
:class:`~consortium.protocol.site_result.SiteResult`: sample count, local steps, FedNova's ``a_k``, training
loss and time, and the received global model's score on the site's test split (``val_n`` examples,
``val_score_sum`` = sum of the per-example metric, e.g. correct predictions or Dice). A validation
result is an :class:`~consortium.protocol.evaluation.Evaluation`.
Subclasses implement :meth:`load`, :meth:`fit` and :meth:`score` over pure training functions.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import dataclass

import torch
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.event_type import EventType
from nvflare.apis.executor import Executor
from nvflare.apis.fl_constant import ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply
from nvflare.apis.signal import Signal
from nvflare.app_common.app_constant import AppConstants

from consortium.flare.result_io import result_shareable
from consortium.learning.fednova import local_normaliser
from consortium.learning.loop import TrainConfig, get_weights, set_weights
from consortium.privacy.declaration import MODEL_OF_KEY, declare
from consortium.privacy.dp_sgd import MECHANISM as DP_SGD
from consortium.privacy.dp_sgd import train_dp_sgd
from consortium.protocol.evaluation import Evaluation
from consortium.protocol.site_result import REFUSAL_HEADER, SiteResult, Task
from consortium.training_settings import LocalTrainingSettings


@dataclass(frozen=True)
class Score:
    """A model's score on a site's test split: ``n`` examples, sum of the per-example metric, loss."""

    n: int
    total: float
    loss: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")


class SiteExecutor(Executor):
    metric = "score"  # name of the per-example metric, e.g. "accuracy" or "dice"

    def __init__(self, model: torch.nn.Module, settings: LocalTrainingSettings) -> None:
        super().__init__()
        torch.set_num_threads(1)  # small models: intra-op threads only contend with the other sites on a shared host
        self.model = model
        self.settings = settings
        self.local_weights: dict | None = None
        self.config_error: str | None = None
        self._warned_mu = False
        self._warned_normaliser = False

    # -- subclass hooks --------------------------------------------------------------------------
    @abstractmethod
    def load(self, fl_ctx: FLContext) -> int:
        """Make the site's data ready (once); return the number of training examples."""

    @abstractmethod
    def fit(self, model: torch.nn.Module, config: TrainConfig, seed: int, fedprox_mu: float | None, fl_ctx: FLContext):
        """Train ``model`` in place (with FedProx's term when ``fedprox_mu`` is set); return a
        :class:`~consortium.learning.loop.TrainResult`."""

    @abstractmethod
    def score(self, model: torch.nn.Module, fl_ctx: FLContext) -> Score:
        """The model's score on the site's test split."""

    def training_loader(self, config: TrainConfig, seed: int, fl_ctx: FLContext):
        """The site's training data as a torch ``DataLoader`` (for DP-SGD, which resamples it)."""
        raise NotImplementedError(f"{type(self).__name__} does not support dp_sgd")

    def loss_function(self):
        """The per-batch training loss (mean over the batch), for DP-SGD."""
        raise NotImplementedError(f"{type(self).__name__} does not support dp_sgd")

    def extra_tasks(self) -> dict:
        return {}

    def after_train(self, round_number: int, fl_ctx: FLContext, config: TrainConfig, seed: int, result,
                    received: Score) -> None:
        """Called after each training task with its result and the received model's score (e.g. to
        train a local-only baseline or track metrics)."""

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def site(fl_ctx: FLContext) -> str:
        return fl_ctx.get_identity_name()

    @staticmethod
    def received_weights(shareable: Shareable) -> dict:
        dxo = from_shareable(shareable)
        if dxo.data_kind != DataKind.WEIGHTS:
            raise ValueError(f"expected a WEIGHTS DXO, got {dxo.data_kind}")
        return dxo.data

    # -- tasks -----------------------------------------------------------------------------------
    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        if event_type == EventType.START_RUN:
            self.check_job_sites(fl_ctx)

    def check_job_sites(self, fl_ctx: FLContext) -> None:
        """Refuse to run when ``site_epochs`` names a site that is not in this job (FLARE gives a
        site the job's clients): every task then fails with the reason, and the job is stopped."""
        clients = getattr(fl_ctx.get_engine(), "get_clients", lambda: None)()
        if not clients:
            return
        try:
            self.settings.check_sites([c.name for c in clients], of="this job")
        except ValueError as e:
            self.config_error = f"executor args: {e}"
            self.log_error(fl_ctx, self.config_error)
            self.system_panic(self.config_error, fl_ctx)

    def execute(self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        handlers = {Task.TRAIN: self._train, Task.VALIDATE: self._validate, Task.SUBMIT_MODEL: self._submit_model,
                    **self.extra_tasks()}
        handler = handlers.get(task_name)
        if handler is None:
            self.log_error(fl_ctx, f"unknown task {task_name!r}")
            return make_reply(ReturnCode.TASK_UNKNOWN)
        if self.config_error:  # the server's round record names the reason (withheld)
            self.log_error(fl_ctx, f"task {task_name} refused: {self.config_error}")
            reply = make_reply(ReturnCode.EXECUTION_EXCEPTION)
            reply.set_header(REFUSAL_HEADER, f"{self.config_error} (at {self.site(fl_ctx)})")
            return reply
        try:
            return handler(shareable, fl_ctx)
        except Exception as e:  # report the failure to the server instead of dying silently
            self.log_exception(fl_ctx, f"task {task_name} failed: {e}")
            return make_reply(ReturnCode.EXECUTION_EXCEPTION)

    def _train(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        n_train = self.load(fl_ctx)
        mu = self.settings.fedprox_mu
        if mu == 0 and not self._warned_mu:
            self.log_warning(fl_ctx, "FedProx configured with fedprox_mu=0: the proximal term vanishes, this is FedAvg")
            self._warned_mu = True
        global_weights = self.received_weights(shareable)
        set_weights(self.model, global_weights)
        before = self.score(self.model, fl_ctx)
        site = self.site(fl_ctx)
        round_number = int(shareable.get_header(AppConstants.CURRENT_ROUND, 0))
        config, seed = self.settings.train_config(site), self.settings.round_seed(round_number, site)
        started = time.perf_counter()
        release = None
        if self.settings.dp_sgd is not None:
            trained, release = train_dp_sgd(self.model, self.training_loader(config, seed, fl_ctx),  # noise: OS entropy
                                             self.loss_function(), config, self.settings.dp_sgd, None, mu)
        else:
            trained = self.fit(self.model, config, seed, mu, fl_ctx)
        train_seconds = time.perf_counter() - started
        self.local_weights = get_weights(self.model)
        diff = {k: self.local_weights[k] - global_weights[k] for k in global_weights}
        result = SiteResult(
            n_samples=n_train,
            local_steps=trained.steps,
            fednova_a=self._normaliser(trained.steps, config, fl_ctx),
            train_loss=trained.mean_loss,
            train_seconds=train_seconds,
            val_metric=self.metric,
            val_n=before.n,
            val_score_sum=before.total,
            val_loss=before.loss,
        )
        self.log_info(fl_ctx, f"round {round_number}: {trained.steps} steps, loss {trained.mean_loss:.4f}, "
                              f"received model {self.metric} {before.mean:.3f}")
        self.after_train(round_number, fl_ctx, config, seed, trained, before)
        shareable = result_shareable(diff, result)
        if release is not None:  # the server, and the site's DP filter, see what was applied
            dxo = from_shareable(shareable)
            declare(dxo.meta, release)
            self.log_info(fl_ctx, f"round {round_number}: DP-SGD sigma {release.noise_multiplier:.4g}, "
                                  f"C {release.clip_norm:g}, q {release.sample_rate:.4g}, {release.steps} steps")
            shareable = dxo.to_shareable()
        return shareable

    def _normaliser(self, steps: int, config: TrainConfig, fl_ctx: FLContext) -> float | None:
        """FedNova's a_k when the local optimiser has a closed form for it; otherwise None, so
        that a FedNova server rejects the result instead of normalising it wrongly."""
        try:
            return local_normaliser(steps, config.lr, config.momentum, self.settings.fedprox_mu or 0.0)
        except ValueError as e:
            if not self._warned_normaliser:
                self.log_warning(fl_ctx, f"results carry no FedNova normaliser: {e}")
                self._warned_normaliser = True
            return None

    def _validate(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        self.load(fl_ctx)
        set_weights(self.model, self.received_weights(shareable))
        s = self.score(self.model, fl_ctx)
        evaluation = Evaluation(self.metric, int(s.n), float(s.total), float(s.loss))
        return DXO(data_kind=DataKind.METRICS, data=evaluation.to_dict()).to_shareable()

    def submitted_weights(self) -> dict | None:
        """The model this site offers for cross-site evaluation (default: its last local training)."""
        return self.local_weights

    def _submit_model(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        weights = self.submitted_weights()
        if weights is None:
            self.log_error(fl_ctx, "submit_model: this site has not trained a model in this job")
            return make_reply(ReturnCode.EXECUTION_EXCEPTION)
        meta = {}
        if self.settings.dp_sgd is not None and weights is self.local_weights:
            meta[MODEL_OF_KEY] = DP_SGD  # w_global + the DP-SGD update already released: post-processing
        return DXO(data_kind=DataKind.WEIGHTS, data=weights, meta=meta).to_shareable()
