"""The server's half of encrypted aggregation: it adds ciphertexts, never multiplies, never decrypts.

What the server knows in plaintext (and why): which sites were accepted, their
:class:`~consortium.protocol.site_result.SiteResult` (``n_k``, FedNova's ``tau_k``/``a_k``, reporting fields), so
it can compute the scale ``s`` (FedAvg ``1/sum n``; FedNova ``sum n_k a_k / (sum n)^2``) and the
canary ``sum_k c_k``; the model's layout (names, shapes) and the initial, random model. It never
holds a trained model or update in plaintext: sites keep the global model and apply
``w <- w + s * Dec(sum)`` themselves (one data level, ~8x fp32 bytes). The cost of that choice:
the server cannot apply server momentum (refused), a site that misses a round cannot rejoin the
job (its filter refuses the next sum; the persisted round sums would allow a replay), and the
final model is evaluated at the sites (:class:`HEGlobalEvaluation`), not by the server.

* :class:`EncryptedRoundAggregator`: checks the envelope (key id, layout digest, count, SHA-256)
  and the plaintext result, adds; a plaintext result is rejected.
* :class:`EncryptedRoundShareableGenerator`: round 0 sends the initial model, later rounds the
  previous round's encrypted sum with its scale and canary.
* :class:`EncryptedRoundPersistor`: the initial model from its class; saves each round's sum
  (ciphertext only) under the job's ``encrypted_rounds/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import tenseal as ts
import torch
from nvflare.apis.client import Client
from nvflare.apis.controller_spec import Task
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.event_type import EventType
from nvflare.apis.fl_context import FLContext
from nvflare.apis.impl.controller import Controller
from nvflare.apis.shareable import Shareable
from nvflare.apis.signal import Signal
from nvflare.app_common.abstract.model import ModelLearnable, ModelLearnableKey, make_model_learnable
from nvflare.app_common.abstract.model_persistor import ModelPersistor
from nvflare.app_common.abstract.shareable_generator import ShareableGenerator
from nvflare.app_common.app_constant import AppConstants

from consortium.aggregation.combine import WeightedSum
from consortium.aggregation.round import RoundAggregation
from consortium.aggregation.weighting import PreWeighted, make_weighting
from consortium.allowlist import build_model
from consortium.crypto.ckks import key_id
from consortium.crypto.packed import (
    CiphertextSum,
    EncryptedSum,
    Envelope,
    digest,
    expected_slots,
    layout_digest,
    layout_of,
    load_vectors,
    verify_message,
)
from consortium.flare.aggregators.round import ROUND_RECORD_EVENT, RoundAggregator, announced_record
from consortium.flare.he.site import HE_META, load_context, message_from_dict
from consortium.flare.result_io import ReceivedResult, site_of
from consortium.flare.workflows.scatter import HonourTaskCheckPeriod
from consortium.learning.loop import get_weights
from consortium.protocol.evaluation import Evaluation
from consortium.protocol.round_record import RoundRecord
from consortium.protocol.site_result import SiteResult, read_result
from consortium.registry.ciphertext import FOLDER, CiphertextRegistry, check_layout


class EncryptedRoundAggregator(RoundAggregator):
    def __init__(self, algorithm: str = "fedavg", tau_eff: str = "normalisers", min_accepted: int = 1) -> None:
        """Args: as :class:`~consortium.flare.aggregators.round.RoundAggregator`, without server
        momentum (the server never holds the model) and without a norm bound (checked at the sites)."""
        super().__init__(algorithm, tau_eff, 0.0, min_accepted)
        self.weighting = PreWeighted(make_weighting(algorithm, tau_eff))
        self.round = RoundAggregation(self.weighting, checks=(), rule=WeightedSum(CiphertextSum()), min_accepted=min_accepted,
                                      alert_threshold=None)  # the server cannot see values: no norm statistics
        self.context: ts.Context | None = None

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        if event_type == EventType.START_RUN:
            try:
                self.context = load_context(fl_ctx, secret=False)
            except ValueError as e:
                self.log_error(fl_ctx, f"HE job cannot run: {e}")
                self.system_panic(f"HE job cannot run: {e}", fl_ctx)

    def read(self, shareable: Shareable, fl_ctx: FLContext) -> ReceivedResult:
        site = site_of(shareable)
        if self.context is None:
            raise ValueError("this server has no usable HE context")
        dxo = from_shareable(shareable)
        if dxo.get_meta_prop(HE_META) != "site_update":
            raise ValueError(f"result from {site} is not encrypted ({dxo.data_kind}); an HE job accepts only ciphertexts")
        msg = message_from_dict(site, dxo.data)
        reference = self.round.reference
        try:
            verify_message(msg, key_id(self.context), layout_digest(layout_of(reference)) if reference is not None else None)
            vectors = load_vectors(self.context, msg.ciphertexts)
            self._site_bytes[site] = sum(len(c) for c in msg.ciphertexts)  # what crossed the wire (telemetry)
            if reference is not None:  # every ciphertext full-size, as many as the layout needs: checked before any is added
                slots = self.context.data.seal_context().first_context_data().parms().poly_modulus_degree() // 2
                check_layout([v.size() for v in vectors], expected_slots(layout_of(reference), slots), slots)
        except ValueError as e:
            raise ValueError(f"result from {site}: {e}") from None
        return ReceivedResult(site, vectors, read_result(site, dxo.meta))

    def publish(self, update: EncryptedSum, accepted: list[SiteResult], round_number: int, fl_ctx: FLContext) -> Shareable:
        cts = [v.serialize() for v in update.ciphertexts]
        reference = self.round.reference
        env = Envelope(key_id(self.context), layout_digest(layout_of(reference)) if reference is not None else "",
                       len(cts), digest(cts))
        meta = {HE_META: "round_sum", "round": round_number, "scale": update.scale, "canary": self.weighting.canary(accepted)}
        return DXO(data_kind=DataKind.APP_DEFINED, data={"ciphertexts": cts, "envelope": env.to_dict()}, meta=meta).to_shareable()


class EncryptedRoundShareableGenerator(ShareableGenerator):
    def learnable_to_shareable(self, model: ModelLearnable, fl_ctx: FLContext) -> Shareable:
        held = model.get(ModelLearnableKey.META, {}).get(HE_META)
        if held is None:  # round 0: the initial (random, public) model
            return DXO(data_kind=DataKind.WEIGHTS, data=model[ModelLearnableKey.WEIGHTS]).to_shareable()
        return DXO(data_kind=DataKind.APP_DEFINED, data=held["data"], meta=held["meta"]).to_shareable()

    def shareable_to_learnable(self, shareable: Shareable, fl_ctx: FLContext) -> ModelLearnable:
        dxo = from_shareable(shareable)
        if dxo.get_meta_prop(HE_META) != "round_sum":
            raise ValueError(f"HE job: the aggregator returned {dxo.data_kind}, not an encrypted round sum")
        base = fl_ctx.get_prop(AppConstants.GLOBAL_MODEL)
        return make_model_learnable(base[ModelLearnableKey.WEIGHTS], {HE_META: {"data": dxo.data, "meta": dict(dxo.meta)}})


class EncryptedRoundPersistor(ModelPersistor):
    def __init__(self, model) -> None:
        """Args: model: the network (FLARE builds it from ``{"path": ..., "args": ...}`` in the job
        config, as for ``PTFileModelPersistor``), the same as the sites'."""
        super().__init__()
        self._record: RoundRecord | None = None  # the last round's record, for who made its sum
        if isinstance(model, dict):
            model = build_model(model["path"], model.get("args") or {})
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model must be a torch module or {{'path': ..., 'args': ...}}, got {type(model).__name__}")
        self.initial = get_weights(model)

    def load_model(self, fl_ctx: FLContext) -> ModelLearnable:
        return make_model_learnable(dict(self.initial), {})

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        super().handle_event(event_type, fl_ctx)
        if event_type == ROUND_RECORD_EVENT:  # who made the round's sum, for its registry entry
            try:
                self._record = announced_record(fl_ctx)
            except ValueError as e:
                self.log_error(fl_ctx, f"{e}; the round's registry entry will not say who made it")

    def save_model(self, learnable: ModelLearnable, fl_ctx: FLContext) -> None:
        held = learnable.get(ModelLearnableKey.META, {}).get(HE_META)
        if held is None:
            return
        run_dir = Path(fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id()))
        meta = held["meta"]
        CiphertextRegistry(run_dir / FOLDER).add(int(meta["round"]), held["data"]["ciphertexts"], held["data"]["envelope"],
                                                 meta["scale"], meta["canary"], self._record)


class HEGlobalEvaluation(HonourTaskCheckPeriod, Controller):
    """After training: send the last round's sum to every site, which applies it and scores the
    final global model on its own test split; the scores form the job's cross-site table (global
    model column) as ``cross_site_val/cross_val_results.json``. No model leaves a site."""

    def __init__(self, shareable_generator_id: str = "shareable_generator", task_name: str = "validate",
                 timeout: int = 600, task_check_period: float = 0.05) -> None:
        super().__init__(task_check_period=task_check_period)
        self.generator_id, self.task_name, self.timeout = shareable_generator_id, task_name, timeout

    def start_controller(self, fl_ctx: FLContext) -> None:
        self.generator = fl_ctx.get_engine().get_component(self.generator_id)
        if not isinstance(self.generator, EncryptedRoundShareableGenerator):
            self.system_panic(f"component {self.generator_id!r} must be an EncryptedRoundShareableGenerator", fl_ctx)

    def control_flow(self, abort_signal: Signal, fl_ctx: FLContext) -> None:
        model = fl_ctx.get_prop(AppConstants.GLOBAL_MODEL)
        if model is None:
            self.system_panic("no global model to evaluate", fl_ctx)
            return
        clients = fl_ctx.get_engine().get_clients()
        task = Task(name=self.task_name, data=self.generator.learnable_to_shareable(model, fl_ctx), timeout=self.timeout)
        self.broadcast_and_wait(task, fl_ctx, targets=None, min_responses=len(clients), wait_time_after_min_received=0,
                                abort_signal=abort_signal)
        table = {}
        for ct in task.client_tasks:
            if ct.result is None:
                continue
            try:
                dxo = from_shareable(ct.result)
            except ValueError:
                self.log_error(fl_ctx, f"{ct.client.name}: no evaluation of the final model")
                continue
            if dxo.data_kind == DataKind.METRICS:
                try:
                    table[ct.client.name] = {"SRV_server": Evaluation.from_dict(dxo.data, ct.client.name).to_dict()}
                except ValueError as e:
                    self.log_error(fl_ctx, f"evaluation of the final model left out: {e}")
        out = Path(fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id())) / "cross_site_val"
        os.makedirs(out, exist_ok=True)
        (out / "cross_val_results.json").write_text(json.dumps(table, indent=2))
        self.log_info(fl_ctx, f"final global model evaluated at {sorted(table)}")

    def stop_controller(self, fl_ctx: FLContext) -> None:
        pass

    def process_result_of_unknown_task(self, client: Client, task_name: str, client_task_id: str, result: Shareable,
                                       fl_ctx: FLContext) -> None:
        pass

