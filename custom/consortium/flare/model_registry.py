"""FLARE adapters of the model registry (:mod:`consortium.registry`).

* :class:`ModelRegistryWriter`: a server listener that saves every round's global model as a new
  version in ``<run dir>/models`` (downloaded with the job's result), with the round record's
  contributors, rejections, alerts and ε, the aggregator's server state (FedNova's momentum
  velocity), and the version's pooled score once the sites have measured it. A registry that
  cannot be written is logged as an error and the round goes on.
* :class:`ResumablePTPersistor`: FLARE's ``PTFileModelPersistor`` that can start a job from a
  registry version shipped inside the job folder (``resume_from``, relative to the app folder),
  refusing it when its SHA-256 is not ``resume_sha256``. ``consortium models rollback`` and
  ``consortium job resume`` write such jobs.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from nvflare.apis.event_type import EventType
from nvflare.apis.fl_component import FLComponent
from nvflare.apis.fl_constant import FLContextKey
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.abstract.model import ModelLearnableKey
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.app_event_type import AppEventType
from nvflare.app_opt.pt.file_model_persistor import PTFileModelPersistor

from consortium.allowlist import build_model
from consortium.flare.aggregators.round import ROUND_RECORD_EVENT, RoundAggregator, announced_record
from consortium.protocol.round_record import RoundRecord
from consortium.registry.store import FOLDER, ModelRegistry, RegistryError, load_arrays


def _weights(model) -> dict[str, np.ndarray] | None:
    weights = model.get(ModelLearnableKey.WEIGHTS) if model is not None else None
    if not isinstance(weights, dict) or not all(isinstance(v, np.ndarray) for v in weights.values()):
        return None  # e.g. an encrypted job's model, which this registry does not hold
    return weights


class ModelRegistryWriter(FLComponent):
    def __init__(self, aggregator_id: str = "aggregator") -> None:
        super().__init__()
        self.aggregator_id = aggregator_id
        self.registry: ModelRegistry | None = None
        self._record: RoundRecord | None = None

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        try:
            if event_type == EventType.START_RUN:
                run_dir = fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id())
                self.registry = ModelRegistry(os.path.join(run_dir, FOLDER))
            elif self.registry is None:
                return
            elif event_type == AppEventType.ROUND_STARTED:
                self._starting_model(fl_ctx)
            elif event_type == ROUND_RECORD_EVENT:
                self._record = announced_record(fl_ctx)
                self.registry.set_score(self._record.round, self._record.metric, self._record.pooled_score)
            elif event_type == AppEventType.AFTER_SHAREABLE_TO_LEARNABLE:
                self._new_version(fl_ctx)
        except (OSError, RegistryError, KeyError, TypeError, ValueError) as e:
            self.log_error(fl_ctx, f"model registry: {event_type}: {e}; the round goes on without it")

    def _server_state(self, fl_ctx: FLContext) -> dict[str, np.ndarray]:
        aggregator = fl_ctx.get_engine().get_component(self.aggregator_id)
        return aggregator.server_state() if isinstance(aggregator, RoundAggregator) else {}

    def _starting_model(self, fl_ctx: FLContext) -> None:
        number = fl_ctx.get_prop(AppConstants.CURRENT_ROUND)
        if any(e.version == number for e in self.registry.entries()):
            return
        weights = _weights(fl_ctx.get_prop(AppConstants.GLOBAL_MODEL))
        if weights is not None:
            persistor = fl_ctx.get_engine().get_component("persistor")
            source = persistor.resume_source if isinstance(persistor, ResumablePTPersistor) else None
            self.registry.add(int(number), weights, self._server_state(fl_ctx), source=source or "initial model")

    def _new_version(self, fl_ctx: FLContext) -> None:
        number = fl_ctx.get_prop(AppConstants.CURRENT_ROUND)
        weights = _weights(fl_ctx.get_prop(AppConstants.GLOBAL_MODEL))
        if weights is None or number is None:
            return
        made_by = self._record.to_dict() if self._record is not None and self._record.round == number else {"round": number}
        entry = self.registry.add(int(number) + 1, weights, self._server_state(fl_ctx), made_by)
        self.log_info(fl_ctx, f"model registry: {entry.line()}")


class ResumablePTPersistor(PTFileModelPersistor):
    def __init__(self, *args, resume_from: str | None = None, resume_sha256: str | None = None,
                 resume_source: str | None = None, **kwargs) -> None:
        """``model``: a torch module, a component id, or ``{"path": ..., "args": ...}`` built here
        through the allow-list (FLARE's own persistor imports a dict's path unchecked);
        ``resume_from``: a registry ``.npz`` inside the job's app folder to start from;
        ``resume_sha256``: its hash (required with it); ``resume_source``: where it came from
        (shown in the new job's registry)."""
        model = kwargs.get("model", args[0] if args else None)
        if isinstance(model, dict):  # FLARE's persistor would import its "path" with no allow-list check
            built = build_model(model.get("path"), model.get("args") or {}, where="persistor args.model.path")
            args, kwargs = ((built, *args[1:]), kwargs) if args else (args, {**kwargs, "model": built})
        super().__init__(*args, **kwargs)
        if (resume_from is None) != (resume_sha256 is None):
            raise ValueError(f"persistor: resume_from ({resume_from!r}) and resume_sha256 ({resume_sha256!r}) go together")
        if resume_from is not None and (os.path.isabs(resume_from) or ".." in resume_from.split("/")):
            raise ValueError(f"persistor: resume_from = {resume_from!r} must be a path inside the job's app folder")
        self.resume_from, self.resume_sha256, self.resume_source = resume_from, resume_sha256, resume_source

    def load_model(self, fl_ctx: FLContext):
        if self.resume_from is not None:
            path = os.path.join(fl_ctx.get_prop(FLContextKey.APP_ROOT), self.resume_from)
            try:
                weights, _ = load_arrays(path, self.resume_sha256)
                self.model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
            except (RegistryError, RuntimeError, AttributeError) as e:
                self.system_panic(f"cannot start from {path}: {e}", fl_ctx)
                return None
            self.log_info(fl_ctx, f"starting from {self.resume_source or path} (SHA-256 {self.resume_sha256[:12]} verified)")
        return super().load_model(fl_ctx)
