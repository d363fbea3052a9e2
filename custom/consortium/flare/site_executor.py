"""What every consortium training executor shares: task dispatch, local optimiser settings
(per-site epochs, FedProx, FedNova normaliser) and the result contract.

A training result is the update ``w_local - w_global`` (WEIGHT_DIFF) with
:class:`~consortium.protocol.ResultMeta`: sample count, local steps, FedNova's ``a_k``, training
loss and time, and the received global model's score on the site's test split (``val_n`` examples,
``val_score_sum`` = sum of the per-example metric, e.g. correct predictions or Dice).
Subclasses implement :meth:`load`, :meth:`fit` and :meth:`score` over pure training functions.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import zlib
from abc import abstractmethod
from dataclasses import dataclass

import torch
from nvflare.apis.dxo import DXO, DataKind, MetaKey, from_shareable
from nvflare.apis.executor import Executor
from nvflare.apis.fl_constant import ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply
from nvflare.apis.signal import Signal
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_opt.pt.fedproxloss import PTFedProxLoss

from consortium.learning.fednova import local_normaliser
from consortium.learning.tabular import TrainConfig, get_weights, set_weights
from consortium.protocol import ResultMeta, Task


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

    def __init__(self, model: torch.nn.Module, epochs: int, site_epochs: dict | None, lr: float, batch_size: int,
                 momentum: float, fedprox_mu: float | None, seed: int) -> None:
        super().__init__()
        torch.set_num_threads(1)  # small models: intra-op threads only contend with the other sites on a shared host
        self.model = model
        self.config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, momentum=momentum)
        self.site_epochs = dict(site_epochs or {})
        for e in self.site_epochs.values():
            dataclasses.replace(self.config, epochs=e)  # validate each entry up front
        if fedprox_mu is not None and fedprox_mu < 0:
            raise ValueError(f"fedprox_mu must be >= 0, got {fedprox_mu}")
        self.fedprox_mu = fedprox_mu
        self.seed = seed
        self.local_weights: dict | None = None
        self._warned_mu = False
        self._warned_normaliser = False

    # -- subclass hooks --------------------------------------------------------------------------
    @abstractmethod
    def load(self, fl_ctx: FLContext) -> int:
        """Make the site's data ready (once); return the number of training examples."""

    @abstractmethod
    def fit(self, model: torch.nn.Module, config: TrainConfig, seed: int, proximal, fl_ctx: FLContext):
        """Train ``model`` in place; return an object with ``steps`` and ``mean_loss``."""

    @abstractmethod
    def score(self, model: torch.nn.Module, fl_ctx: FLContext) -> Score:
        """The model's score on the site's test split."""

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

    def config_for(self, site: str) -> TrainConfig:
        return dataclasses.replace(self.config, epochs=self.site_epochs.get(site, self.config.epochs))

    def round_seed(self, round_number: int, site: str) -> int:
        return self.seed * 1_000_003 + int(round_number) * 1009 + zlib.crc32(site.encode()) % 1000

    def proximal_term(self, model: torch.nn.Module):
        """FedProx's ``mu/2 ||w - w_global||^2`` against a frozen copy of the received model."""
        if not self.fedprox_mu:
            return None
        reference = copy.deepcopy(model).requires_grad_(False)
        prox = PTFedProxLoss(mu=self.fedprox_mu)
        return lambda m: prox(m, reference)

    @staticmethod
    def received_weights(shareable: Shareable) -> dict:
        dxo = from_shareable(shareable)
        if dxo.data_kind != DataKind.WEIGHTS:
            raise ValueError(f"expected a WEIGHTS DXO, got {dxo.data_kind}")
        return dxo.data

    # -- tasks -----------------------------------------------------------------------------------
    def execute(self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        handlers = {Task.TRAIN: self._train, Task.VALIDATE: self._validate, Task.SUBMIT_MODEL: self._submit_model,
                    **self.extra_tasks()}
        handler = handlers.get(task_name)
        if handler is None:
            self.log_error(fl_ctx, f"unknown task {task_name!r}")
            return make_reply(ReturnCode.TASK_UNKNOWN)
        try:
            return handler(shareable, fl_ctx)
        except Exception as e:  # report the failure to the server instead of dying silently
            self.log_exception(fl_ctx, f"task {task_name} failed: {e}")
            return make_reply(ReturnCode.EXECUTION_EXCEPTION)

    def _train(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        n_train = self.load(fl_ctx)
        if self.fedprox_mu == 0 and not self._warned_mu:
            self.log_warning(fl_ctx, "FedProx configured with fedprox_mu=0: the proximal term vanishes, this is FedAvg")
            self._warned_mu = True
        global_weights = self.received_weights(shareable)
        set_weights(self.model, global_weights)
        before = self.score(self.model, fl_ctx)
        site = self.site(fl_ctx)
        round_number = int(shareable.get_header(AppConstants.CURRENT_ROUND, 0))
        config, seed = self.config_for(site), self.round_seed(round_number, site)
        started = time.perf_counter()
        result = self.fit(self.model, config, seed, self.proximal_term(self.model), fl_ctx)
        train_seconds = time.perf_counter() - started
        self.local_weights = get_weights(self.model)
        diff = {k: self.local_weights[k] - global_weights[k] for k in global_weights}
        meta = {
            **self._normaliser_meta(result.steps, config, fl_ctx),
            MetaKey.NUM_STEPS_CURRENT_ROUND: result.steps,
            ResultMeta.N_SAMPLES.value: n_train,
            ResultMeta.LOCAL_STEPS.value: result.steps,
            ResultMeta.TRAIN_LOSS.value: result.mean_loss,
            ResultMeta.TRAIN_SECONDS.value: train_seconds,
            ResultMeta.VAL_METRIC.value: self.metric,
            ResultMeta.VAL_N.value: before.n,
            ResultMeta.VAL_SCORE_SUM.value: before.total,
            ResultMeta.VAL_LOSS.value: before.loss,
        }
        self.log_info(fl_ctx, f"round {round_number}: {result.steps} steps, loss {result.mean_loss:.4f}, "
                              f"received model {self.metric} {before.mean:.3f}")
        self.after_train(round_number, fl_ctx, config, seed, result, before)
        return DXO(data_kind=DataKind.WEIGHT_DIFF, data=diff, meta=meta).to_shareable()

    def _normaliser_meta(self, steps: int, config: TrainConfig, fl_ctx: FLContext) -> dict:
        """FedNova's a_k when the local optimiser has a closed form for it; otherwise nothing, so
        that a FedNova server rejects the result instead of normalising it wrongly."""
        try:
            return {ResultMeta.NORMALISER.value: local_normaliser(steps, config.lr, config.momentum, self.fedprox_mu or 0.0)}
        except ValueError as e:
            if not self._warned_normaliser:
                self.log_warning(fl_ctx, f"results carry no FedNova normaliser: {e}")
                self._warned_normaliser = True
            return {}

    def _validate(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        self.load(fl_ctx)
        set_weights(self.model, self.received_weights(shareable))
        s = self.score(self.model, fl_ctx)
        metrics = {self.metric: s.mean, "loss": s.loss, "n": s.n, "score_sum": s.total, "metric": self.metric}
        return DXO(data_kind=DataKind.METRICS, data=metrics).to_shareable()

    def submitted_weights(self) -> dict | None:
        """The model this site offers for cross-site evaluation (default: its last local training)."""
        return self.local_weights

    def _submit_model(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        weights = self.submitted_weights()
        if weights is None:
            self.log_error(fl_ctx, "submit_model: this site has not trained a model in this job")
            return make_reply(ReturnCode.EXECUTION_EXCEPTION)
        return DXO(data_kind=DataKind.WEIGHTS, data=weights).to_shareable()
