"""What every consortium recipe assembles, from a validated configuration: the server (persistor,
aggregator, round listeners, ScatterAndGather, cross-site evaluation) and the sites (one executor,
the job's filters), plaintext or under encrypted aggregation. A family (heart, imaging) supplies
its model, its executor, its tasks and the components only it needs.

Under HE the server keeps ciphertexts only: the persistor, shareable generator and aggregator are
the encrypted ones, no model registry or cross-site evaluation (they need a plaintext model), and
the sites decrypt the global model and encrypt their pre-weighted update with the job's filters
(the recipes are the one generator of HE jobs).
"""

from __future__ import annotations

from nvflare.job_config.defs import FilterType
from nvflare.recipe.spec import Recipe

from consortium.aggregation.config import AggregatorConfig
from consortium.allowlist import resolve_listed
from consortium.recipes.components import ComponentSpec, ExecutorSpec, FilterSpec, WorkflowSpec
from consortium.recipes.config import JobConfig
from consortium.recipes.job import ConsortiumJob

TRAIN, VALIDATE, SUBMIT_MODEL = "train", "validate", "submit_model"


class ConsortiumRecipe(Recipe):
    """A FLARE Recipe whose job is assembled from ``config`` (checked when it was made); see the
    family recipes for the arguments."""

    def __init__(self, config: JobConfig) -> None:
        if not isinstance(config, JobConfig):
            raise ValueError(f"{type(self).__name__} needs a configuration, got {config!r}")
        meta = {k: v for k, v in (("description", config.description), ("scope", config.scope)) if v is not None}
        super().__init__(ConsortiumJob(config.name, config.min_clients, meta))
        self.config = config
        self._assemble()

    # -- what a family supplies ----------------------------------------------------------------
    def model(self) -> dict:
        """The global model as the persistor builds it: ``{"path": ..., "args": {...}}``."""
        raise NotImplementedError

    def site_tasks(self) -> list[str]:
        """The tasks the executor serves besides ``submit_model``."""
        return [TRAIN, VALIDATE]

    def executor(self, tasks: list[str]) -> ExecutorSpec:
        raise NotImplementedError

    def site_components(self) -> list[ComponentSpec]:
        return []

    def server_listeners(self) -> list[ComponentSpec]:
        """Family components placed before the metrics exporter."""
        return []

    def first_workflows(self) -> list[WorkflowSpec]:
        """Workflows that run before ScatterAndGather."""
        return []

    # -- assembly ------------------------------------------------------------------------------
    @property
    def server_algorithm(self) -> str:
        """FedProx changes the sites' loss only: its server is FedAvg's."""
        return "fednova" if self.config.algorithm == "fednova" else "fedavg"

    def _aggregator(self) -> ComponentSpec:
        c = self.config
        if c.he:
            args = {"algorithm": self.server_algorithm, "tau_eff": c.tau_eff, "min_accepted": c.min_clients}
            return ComponentSpec("aggregator", "consortium.flare.he.server.EncryptedRoundAggregator", args)
        args = {"algorithm": self.server_algorithm}
        if self.server_algorithm == "fednova":
            args["tau_eff"] = c.tau_eff
        args["min_accepted"] = c.min_clients
        if c.max_update_norm is not None:
            args["max_update_norm"] = c.max_update_norm
        AggregatorConfig(**args).build()  # the aggregator's own checks, now rather than at the server
        return ComponentSpec("aggregator", "consortium.flare.aggregators.round.RoundAggregator", args)

    def server_components(self) -> list[ComponentSpec]:
        c, model = self.config, self.model()
        resolve_listed(model["path"], "model", where="persistor args.model.path")
        if c.he:
            head = [ComponentSpec("persistor", "consortium.flare.he.server.EncryptedRoundPersistor", {"model": model}),
                    ComponentSpec("shareable_generator", "consortium.flare.he.server.EncryptedRoundShareableGenerator")]
        else:
            head = [ComponentSpec("persistor", "consortium.flare.model_registry.ResumablePTPersistor", {"model": model}),
                    ComponentSpec("shareable_generator",
                                  "nvflare.app_common.shareablegenerators.full_model_shareable_generator.FullModelShareableGenerator")]
        head += [self._aggregator(), ComponentSpec("progress_writer", "consortium.flare.listeners.progress_writer.RoundProgressWriter")]
        if not c.he:
            head += [ComponentSpec("model_registry", "consortium.flare.model_registry.ModelRegistryWriter"),
                     ComponentSpec("model_locator", "nvflare.app_opt.pt.file_model_locator.PTFileModelLocator",
                                   {"pt_persistor_id": "persistor"}),
                     ComponentSpec("json_generator", "nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator")]
        return [*head, *self.server_listeners(),
                ComponentSpec("metrics_exporter", "consortium.flare.listeners.metrics_exporter.RoundMetricsListener",
                              {"port": c.metrics_port})]

    def workflows(self) -> list[WorkflowSpec]:
        c, iv = self.config, self.config.intervals
        sag = {"min_clients": c.min_clients, "num_rounds": c.rounds, "start_round": 0,
               "wait_time_after_min_received": iv.wait_after_min_received, "aggregator_id": "aggregator",
               "persistor_id": "persistor", "shareable_generator_id": "shareable_generator", "train_task_name": TRAIN,
               "train_timeout": iv.train_timeout, "task_check_period": iv.poll,
               # under HE every round's ciphertext is kept (the registry's place) and FLARE snapshots none
               "persist_every_n_rounds": 1 if c.he else 5, "snapshot_every_n_rounds": 0 if c.he else 5,
               "memory_gc_rounds": 10, "max_round_retries": 1}
        if c.he:
            last = WorkflowSpec("he_evaluation", "consortium.flare.he.server.HEGlobalEvaluation",
                                {"shareable_generator_id": "shareable_generator", "task_check_period": iv.poll})
        else:
            last = WorkflowSpec("cross_site_eval", "consortium.flare.workflows.scatter.CrossSiteModelEval",
                                {"model_locator_id": "model_locator", "task_check_period": iv.poll,
                                 "submit_model_timeout": iv.evaluation_timeout, "validation_timeout": iv.evaluation_timeout})
        sag_spec = WorkflowSpec("scatter_and_gather", "consortium.flare.workflows.scatter.ScatterAndGather", sag)
        return [*self.first_workflows(), sag_spec, last]

    def tasks(self) -> list[str]:
        """The executor's tasks: no ``submit_model`` under HE (no plaintext model leaves a site)."""
        return self.site_tasks() + ([] if self.config.he else [SUBMIT_MODEL])

    def result_filters(self, tasks: list[str]) -> list[FilterSpec]:
        c = self.config
        if c.he:  # FLARE matches job filters by exact task name: every task's result passes the encrypt filter
            args = {"algorithm": self.server_algorithm, "tau_eff": c.tau_eff}
            if c.max_update_norm is not None:  # the server cannot see norms any more: each site checks its own
                args["max_update_norm"] = c.max_update_norm
            return [FilterSpec("consortium.flare.he.site.HEEncryptResult", args, sorted(tasks))]
        if c.update_privacy is not None:
            return [FilterSpec("consortium.flare.filters.dp.GaussianUpdatePrivacy", c.update_privacy, tasks)]
        return []

    def data_filters(self) -> list[FilterSpec]:
        return [FilterSpec("consortium.flare.he.site.HEDecryptTaskData", {}, [TRAIN, VALIDATE])] if self.config.he else []

    def _assemble(self) -> None:
        job, iv = self._job, self.config.intervals
        job.to_server({"np_download_chunk_size": 0, "server": {"heart_beat_timeout": iv.heart_beat_timeout,
                                                              "task_request_interval": iv.poll}})
        for comp in self.server_components():
            job.to_server(comp, id=comp.id)
        for workflow in self.workflows():
            job.to_server(workflow, id=workflow.id)
        job.to_clients({"np_download_chunk_size": 0, "client": {"default_task_fetch_interval": iv.poll}})
        tasks = self.tasks()
        job.to_clients(self.executor(tasks), tasks=tasks)
        for f in self.result_filters(tasks):
            job.to_clients(f, filter_type=FilterType.TASK_RESULT, tasks=f.tasks)
        for f in self.data_filters():
            job.to_clients(f, filter_type=FilterType.TASK_DATA, tasks=f.tasks)
        for comp in self.site_components():
            job.to_clients(comp, id=comp.id)
