"""A site's executor for tabular (heart-disease) training: a thin adapter over
:mod:`consortium.learning.tabular` and :mod:`consortium.data`.

Tasks handled (names from :class:`consortium.protocol.Task`):

* ``feature_stats``: reply with the site's feature moments (count, sums, sums of squares).
* ``set_standardisation``: keep the pooled mean/std the server sends; training refuses to start
  without it (fail closed: an unscaled model would silently diverge from the others).
* ``train``: evaluate the received global model on the local test split, train locally, reply with
  the update ``w_local - w_global`` (WEIGHT_DIFF) and :class:`~consortium.protocol.ResultMeta`.
* ``validate``: metrics of the received model on the local test split (cross-site evaluation).
* ``submit_model``: the site's last locally trained weights (cross-site evaluation).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import time
import zlib

import torch
from nvflare.apis.dxo import DXO, DataKind, MetaKey, from_shareable
from nvflare.apis.executor import Executor
from nvflare.apis.fl_constant import ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply
from nvflare.apis.signal import Signal
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_opt.pt.fedproxloss import PTFedProxLoss

from consortium.data.heart_disease import load_centre
from consortium.data.standardisation import Standardiser, local_moments
from consortium.learning.fednova import local_normaliser
from consortium.learning.tabular import TrainConfig, evaluate, get_weights, set_weights, train_local
from consortium.protocol import ResultMeta, Task


def build_model(path: str, args: dict) -> torch.nn.Module:
    """Instantiate ``path`` (a ``consortium.`` class) with ``args``."""
    if not path.startswith("consortium."):
        raise ValueError(f"model_path must name a consortium.* class, got {path!r}")
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)(**args)


class TabularExecutor(Executor):
    def __init__(
        self,
        model_path: str = "consortium.learning.tabular.LogisticRegression",
        model_args: dict | None = None,
        epochs: int = 1,
        site_epochs: dict | None = None,
        lr: float = 0.05,
        batch_size: int = 8,
        momentum: float = 0.0,
        fedprox_mu: float | None = None,
        seed: int = 0,
        centre: str | None = None,
        data_path: str | None = None,
    ) -> None:
        """Args:
        model_path / model_args: the model class (must match the server persistor's).
        epochs: local epochs per round; ``site_epochs`` maps a site name to its own count.
        lr, batch_size, momentum: local SGD settings.
        fedprox_mu: FedProx coefficient; None for plain FedAvg, 0 is accepted with a warning.
        seed: base seed; each (round, site) derives its own shuffling seed from it.
        centre / data_path: which heart-disease centre this site is (default: the site's name)
            and an optional path to its ``processed.*.data`` file (default: the packaged one).
        """
        super().__init__()
        torch.set_num_threads(1)  # tiny models: intra-op threads only contend with the other sites on a shared host
        self.model = build_model(model_path, model_args or {})
        self.site_epochs = dict(site_epochs or {})
        self.config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, momentum=momentum)
        for e in self.site_epochs.values():
            dataclasses.replace(self.config, epochs=e)  # validate each entry up front
        if fedprox_mu is not None and fedprox_mu < 0:
            raise ValueError(f"fedprox_mu must be >= 0, got {fedprox_mu}")
        local_normaliser(1, lr, momentum, fedprox_mu or 0.0)  # refuse optimiser settings FedNova cannot normalise
        self.fedprox_mu = fedprox_mu
        self.seed = seed
        self.centre = centre
        self.data_path = data_path
        self.data = None
        self.standardiser: Standardiser | None = None
        self.local_weights = None

    # -- helpers -------------------------------------------------------------------------------
    def _site(self, fl_ctx: FLContext) -> str:
        return fl_ctx.get_identity_name()

    def _load(self, fl_ctx: FLContext):
        if self.data is None:
            centre = self.centre or self._site(fl_ctx)
            self.data = load_centre(centre, self.data_path)
            self.log_info(fl_ctx, f"loaded centre {centre}: {len(self.data.y_train)} train / {len(self.data.y_test)} test rows")
            if self.fedprox_mu == 0:
                self.log_warning(fl_ctx, "FedProx configured with fedprox_mu=0: the proximal term vanishes, this is FedAvg")
        return self.data

    def _config_for(self, site: str) -> TrainConfig:
        return dataclasses.replace(self.config, epochs=self.site_epochs.get(site, self.config.epochs))

    def _receive_weights(self, shareable: Shareable) -> dict:
        dxo = from_shareable(shareable)
        if dxo.data_kind != DataKind.WEIGHTS:
            raise ValueError(f"expected a WEIGHTS DXO, got {dxo.data_kind}")
        return dxo.data

    # -- tasks ---------------------------------------------------------------------------------
    def execute(self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        try:
            handler = {
                Task.FEATURE_STATS: self._feature_stats,
                Task.SET_STANDARDISATION: self._set_standardisation,
                Task.TRAIN: self._train,
                Task.VALIDATE: self._validate,
                Task.SUBMIT_MODEL: self._submit_model,
            }.get(task_name)
            if handler is None:
                self.log_error(fl_ctx, f"unknown task {task_name!r}")
                return make_reply(ReturnCode.TASK_UNKNOWN)
            return handler(shareable, fl_ctx, abort_signal)
        except Exception as e:  # report the failure to the server instead of dying silently
            self.log_exception(fl_ctx, f"task {task_name} failed: {e}")
            return make_reply(ReturnCode.EXECUTION_EXCEPTION)

    def _feature_stats(self, shareable, fl_ctx, abort_signal) -> Shareable:
        moments = local_moments(self._load(fl_ctx).x_train)
        return DXO(data_kind=DataKind.STATISTICS, data=moments.to_dict()).to_shareable()

    def _set_standardisation(self, shareable, fl_ctx, abort_signal) -> Shareable:
        stats = Standardiser.from_dict(from_shareable(shareable).data)
        n_features = self._load(fl_ctx).x_train.shape[1]
        if stats.mean.shape != (n_features,) or stats.std.shape != (n_features,):
            raise ValueError(f"standardisation has shape {stats.mean.shape}, this site has {n_features} features")
        self.standardiser = stats
        return make_reply(ReturnCode.OK)

    def _scaled(self, fl_ctx):
        if self.standardiser is None:
            raise RuntimeError("no pooled standardisation received; the job must run FederatedStandardisation first")
        d = self._load(fl_ctx)
        return self.standardiser(d.x_train), d.y_train, self.standardiser(d.x_test), d.y_test

    def _train(self, shareable, fl_ctx, abort_signal) -> Shareable:
        x_train, y_train, x_test, y_test = self._scaled(fl_ctx)
        global_weights = self._receive_weights(shareable)
        set_weights(self.model, global_weights)
        before = evaluate(self.model, x_test, y_test)
        site = self._site(fl_ctx)
        round_number = shareable.get_header(AppConstants.CURRENT_ROUND, 0)
        seed = self.seed * 1_000_003 + int(round_number) * 1009 + zlib.crc32(site.encode()) % 1000
        proximal = None
        if self.fedprox_mu:
            reference = copy.deepcopy(self.model).requires_grad_(False)
            prox = PTFedProxLoss(mu=self.fedprox_mu)
            proximal = lambda m: prox(m, reference)  # noqa: E731
        config = self._config_for(site)
        started = time.perf_counter()
        result = train_local(self.model, x_train, y_train, config, seed=seed, proximal=proximal)
        train_seconds = time.perf_counter() - started
        self.local_weights = get_weights(self.model)
        diff = {k: self.local_weights[k] - global_weights[k] for k in global_weights}
        meta = {
            MetaKey.NUM_STEPS_CURRENT_ROUND: result.steps,
            ResultMeta.N_SAMPLES.value: len(y_train),
            ResultMeta.LOCAL_STEPS.value: result.steps,
            ResultMeta.NORMALISER.value: local_normaliser(result.steps, config.lr, config.momentum, self.fedprox_mu or 0.0),
            ResultMeta.TRAIN_LOSS.value: result.mean_loss,
            ResultMeta.TRAIN_SECONDS.value: train_seconds,
            ResultMeta.VAL_N.value: before.n,
            ResultMeta.VAL_CORRECT.value: before.correct,
            ResultMeta.VAL_LOSS.value: before.loss,
        }
        self.log_info(fl_ctx, f"round {round_number}: {result.steps} steps, loss {result.mean_loss:.4f}, "
                      f"received model accuracy {before.accuracy:.3f}")
        return DXO(data_kind=DataKind.WEIGHT_DIFF, data=diff, meta=meta).to_shareable()

    def _validate(self, shareable, fl_ctx, abort_signal) -> Shareable:
        _, _, x_test, y_test = self._scaled(fl_ctx)
        set_weights(self.model, self._receive_weights(shareable))
        ev = evaluate(self.model, x_test, y_test)
        metrics = {"accuracy": ev.accuracy, "loss": ev.loss, "n": ev.n, "correct": ev.correct}
        return DXO(data_kind=DataKind.METRICS, data=metrics).to_shareable()

    def _submit_model(self, shareable, fl_ctx, abort_signal) -> Shareable:
        if self.local_weights is None:
            self.log_error(fl_ctx, "submit_model: this site has not trained a local model in this job")
            return make_reply(ReturnCode.EXECUTION_EXCEPTION)
        return DXO(data_kind=DataKind.WEIGHTS, data=self.local_weights).to_shareable()
