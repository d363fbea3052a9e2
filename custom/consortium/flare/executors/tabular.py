"""A site's executor for tabular (heart-disease) training: a thin adapter over
:mod:`consortium.learning.tabular` and :mod:`consortium.data`.

Besides the shared tasks of :class:`~consortium.flare.executors.site.SiteExecutor` (``train``,
``validate``, ``submit_model``) it answers the standardisation workflow:

* ``feature_stats``: the site's feature moments (count, sums, sums of squares) -- no rows.
* ``set_standardisation``: keep the pooled mean/std the server sends; training and evaluation
  refuse to run without it (fail closed: an unscaled model would silently diverge from the others).
"""

from __future__ import annotations

import torch
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.fl_constant import ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply

from consortium.allowlist import build_model  # the one resolver of model paths
from consortium.data.heart_disease import SiteSplit, load_centre
from consortium.data.standardisation import Standardiser, local_moments
from consortium.flare.executors.site import Score, SiteExecutor
from consortium.learning.loop import TrainConfig
from consortium.learning.tabular import evaluate, tabular_loader, train_local
from consortium.protocol.site_result import Task
from consortium.training_settings import LocalTrainingSettings


class TabularExecutor(SiteExecutor):
    metric = "accuracy"

    def __init__(
        self,
        model_path: str = "consortium.learning.tabular.LogisticRegression",
        model_args: dict | None = None,
        centre: str | None = None,
        data_path: str | None = None,
        standardisation: dict | None = None,
        **training,
    ) -> None:
        """Args:
        model_path / model_args: the model class (must match the server persistor's).
        centre / data_path: which heart-disease centre this site is (default: the site's name)
            and an optional path to its ``processed.*.data`` file (default: the packaged one).
        standardisation: a public ``{"mean": [...], "std": [...]}`` (e.g. clinical reference
            ranges, not computed from any site's data) used instead of the federated one, for jobs
            under a DP policy, where the feature moments may not leave the site.
        **training: :class:`~consortium.training_settings.LocalTrainingSettings` (epochs,
            site_epochs, lr, batch_size, momentum, fedprox_mu, seed, dp_sgd).
        """
        model = build_model(model_path, model_args or {}, where="executor args.model_path")
        super().__init__(model, LocalTrainingSettings.from_args(training))
        self.centre = centre
        self.data_path = data_path
        self.data: SiteSplit | None = None
        self.standardiser: Standardiser | None = None
        if standardisation is not None:
            self.standardiser = Standardiser.from_dict(standardisation)
            if self.standardiser.mean.shape != self.standardiser.std.shape or not (self.standardiser.std > 0).all():
                raise ValueError(f"standardisation needs equal-length mean and std with std > 0, got {standardisation!r}")

    def load(self, fl_ctx: FLContext) -> int:
        if self.data is None:
            centre = self.centre or self.site(fl_ctx)
            self.data = load_centre(centre, self.data_path)
            self.log_info(fl_ctx, f"loaded centre {centre}: {len(self.data.y_train)} train / {len(self.data.y_test)} test rows")
        return len(self.data.y_train)

    def _scaled(self, fl_ctx: FLContext):
        if self.standardiser is None:
            raise RuntimeError("no pooled standardisation received; the job must run FederatedStandardisation first")
        self.load(fl_ctx)
        d = self.data
        return self.standardiser(d.x_train), d.y_train, self.standardiser(d.x_test), d.y_test

    def fit(self, model, config: TrainConfig, seed: int, fedprox_mu: float | None, fl_ctx: FLContext):
        x_train, y_train, _, _ = self._scaled(fl_ctx)
        return train_local(model, x_train, y_train, config, seed=seed, fedprox_mu=fedprox_mu)

    def training_loader(self, config: TrainConfig, seed: int, fl_ctx: FLContext):
        x_train, y_train, _, _ = self._scaled(fl_ctx)
        return tabular_loader(x_train, y_train, config.batch_size, seed)

    def loss_function(self):
        return torch.nn.BCEWithLogitsLoss()

    def score(self, model, fl_ctx: FLContext) -> Score:
        _, _, x_test, y_test = self._scaled(fl_ctx)
        ev = evaluate(model, x_test, y_test)
        return Score(n=ev.n, total=float(ev.correct), loss=ev.loss)

    # -- the standardisation workflow's tasks ----------------------------------------------------
    def extra_tasks(self) -> dict:
        return {Task.FEATURE_STATS: self._feature_stats, Task.SET_STANDARDISATION: self._set_standardisation}

    def _feature_stats(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        self.load(fl_ctx)
        return DXO(data_kind=DataKind.STATISTICS, data=local_moments(self.data.x_train).to_dict()).to_shareable()

    def _set_standardisation(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        stats = Standardiser.from_dict(from_shareable(shareable).data)
        self.load(fl_ctx)
        n_features = self.data.x_train.shape[1]
        if stats.mean.shape != (n_features,) or stats.std.shape != (n_features,):
            raise ValueError(f"standardisation has shape {stats.mean.shape}, this site has {n_features} features")
        self.standardiser = stats
        return make_reply(ReturnCode.OK)
