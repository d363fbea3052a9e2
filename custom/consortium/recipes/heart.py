"""The heart-disease family: logistic regression on the 13 UCI Heart Disease features at each
hospital (:class:`~consortium.flare.executors.tabular.TabularExecutor`), FedAvg, FedProx or FedNova,
plaintext, under encrypted aggregation or under DP.

Features are standardised with federated moments (a first workflow, each site's counts and sums)
or, under DP, where those moments may not leave the sites, with public ranges given in the
configuration (``standardisation``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from consortium.recipes.base import TRAIN, VALIDATE, ConsortiumRecipe
from consortium.recipes.components import ComponentSpec, ExecutorSpec, WorkflowSpec
from consortium.recipes.config import JobConfig, positive_number

MODEL = "consortium.learning.tabular.LogisticRegression"
FEATURES = 13
STANDARDISATION_WAIT_S = 10  # the standardisation workflow waits this long for the sites after min_clients answered
# public standardisation of the 13 model features for DP jobs: rounded reference values, set from no
# site's data (the federated moments may not leave a site under DP)
REFERENCE_STANDARDISATION = {
    "mean": [55.0, 0.5, 130.0, 220.0, 0.5, 150.0, 0.5, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5],
    "std": [10.0, 0.5, 20.0, 50.0, 0.5, 25.0, 0.5, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5],
}


@dataclass(frozen=True)
class HeartConfig(JobConfig):
    """:class:`~consortium.recipes.config.JobConfig` with the heart family's defaults, and

    standardisation: public ``{"mean": [13 values], "std": [13 values > 0]}`` (e.g. clinical
        reference ranges, from no site's data) instead of the federated moments; required under DP.
    """

    name: str = "heart_fedavg"
    max_update_norm: float | None = 10.0
    standardisation: Mapping | None = None

    def check(self) -> None:
        super().check()
        s = self.standardisation
        if s is not None:
            ok = isinstance(s, Mapping) and set(s) == {"mean", "std"} and all(
                isinstance(s[k], list | tuple) and len(s[k]) == FEATURES for k in ("mean", "std"))
            if not (ok and all(isinstance(v, int | float) for v in s["mean"]) and all(map(positive_number, s["std"]))):
                self.fail("standardisation", f"must be {{'mean': [{FEATURES} numbers], 'std': [{FEATURES} numbers > 0]}}")
        elif self.dp:
            self.fail("standardisation", "a DP job needs public ranges: the federated feature moments would leave the "
                                         "sites without noise")


class HeartRecipe(ConsortiumRecipe):
    """A heart-disease job from a :class:`HeartConfig`::

        recipe = HeartRecipe(HeartConfig(name="heart_fedprox", algorithm="fedprox", fedprox_mu=1.0))
        recipe.export("jobs")                       # jobs/heart_fedprox
        recipe.execute(ConsortiumSimEnv())          # or ConsortiumPocEnv(), ConsortiumProdEnv(kit)
    """

    config: HeartConfig

    def __init__(self, config: HeartConfig | None = None) -> None:
        super().__init__(config if config is not None else HeartConfig())

    @property
    def federated_standardisation(self) -> bool:
        return self.config.standardisation is None

    def model(self) -> dict:
        return {"path": MODEL, "args": {"in_features": FEATURES}}

    def site_tasks(self) -> list[str]:
        first = ["feature_stats", "set_standardisation"] if self.federated_standardisation else []
        return [*first, TRAIN, VALIDATE]

    def executor(self, tasks: list[str]) -> ExecutorSpec:
        c = self.config
        args = {"model_path": MODEL, "model_args": {"in_features": FEATURES}, "epochs": c.epochs, "lr": c.lr,
                "batch_size": c.batch_size}
        if c.momentum:
            args["momentum"] = c.momentum
        if c.fedprox_mu is not None:
            args["fedprox_mu"] = c.fedprox_mu
        args["seed"] = c.seed
        optional = (("site_epochs", c.site_epochs or None), ("standardisation", c.standardisation), ("dp_sgd", c.dp_sgd))
        args |= {k: v if not isinstance(v, Mapping) else dict(v) for k, v in optional if v is not None}
        return ExecutorSpec("executor", "consortium.flare.executors.tabular.TabularExecutor", args)

    def first_workflows(self) -> list[WorkflowSpec]:
        if not self.federated_standardisation:
            return []
        args = {"min_clients": self.config.min_clients, "wait_time_after_min_received": STANDARDISATION_WAIT_S}
        return [WorkflowSpec("standardisation", "consortium.flare.workflows.standardisation.FederatedStandardisation", args)]

    def site_components(self) -> list[ComponentSpec]:
        return []
