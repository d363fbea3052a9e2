"""A site's half of encrypted aggregation: two filters over :mod:`consortium.crypto.packed`.

* :class:`HEDecryptTaskData` (task data filter, train/validate): keeps the site's copy of the
  global model. Round 0 brings the plaintext initial model (random, public); every later task
  brings the previous round's encrypted sum, its plaintext scale and the expected canary: the
  filter checks the envelope and the canary, applies ``w <- w + scale * Dec(sum)`` and hands the
  executor plaintext WEIGHTS, so executors need no change. A sum for a round it did not expect (a
  missed round) or a plaintext model after round 0 is refused.
* :class:`HEEncryptResult` (task result filter, every task): runs the plaintext per-site checks
  (the server can no longer see values), pre-weights the update by the site's coefficient
  (FedAvg ``n_k``, FedNova ``n_k / a_k``), encrypts it and sends only ciphertexts and the plaintext
  :class:`~consortium.protocol.site_result.SiteResult`. Any other result carrying weights (``submit_model``)
  is refused: no plaintext model leaves a site.

Keys: the site's ``startup/client_context.tenseal`` from provisioning, loaded with FLARE's signature
check; in the simulator, ``$CONSORTIUM_HE_KEYS/client_context.tenseal``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import tenseal as ts
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.filter import Filter
from nvflare.apis.fl_constant import ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply

from consortium.aggregation.checks import DEFAULT_CHECKS, NormBound, run_checks
from consortium.aggregation.weighting import make_weighting
from consortium.crypto.ckks import bind_key_id, check_context, key_id
from consortium.crypto.packed import EncryptedMessage, Envelope, decrypt_sum, encrypt_update, layout_of, verify_message
from consortium.crypto.pool import EncryptionPool
from consortium.protocol.site_result import read_result

HE_KEYS_ENV = "CONSORTIUM_HE_KEYS"
CLIENT_CONTEXT = "client_context.tenseal"
SERVER_CONTEXT = "server_context.tenseal"
HE_META = "consortium_he"  # meta marker: "site_update" or "round_sum"


def _load_bytes(name: str, fl_ctx: FLContext) -> bytes:
    """A context file's bytes: from ``$CONSORTIUM_HE_KEYS`` (simulator) or the startup kit, where a
    missing, unsigned or altered file is refused in secure mode (the check of FLARE's
    ``load_tenseal_context_from_workspace``, which returns the context but not its bytes)."""
    keys = os.environ.get(HE_KEYS_ENV)
    if keys:
        return (Path(keys) / name).read_bytes()
    from nvflare.apis.fl_constant import FLContextKey
    from nvflare.fuel.sec.security_content_service import LoadResult, SecurityContentService

    data, rc = SecurityContentService.load_content(name)
    manager = SecurityContentService.security_content_manager
    if rc == LoadResult.NOT_SIGNED and manager is not None and not manager.valid_config:
        # a kit packaged from a request (`consortium site package`) has no signature.json, which would have
        # to sign the site's private key: its CKKS contexts carry the root CA's signatures in their own
        # file, checked by FLARE's manager against the kit's rootCA.pem in the same way
        data, rc = _load_distributed_kit(SecurityContentService.content_folder, name)
    bad = [LoadResult.INVALID_CONTENT, LoadResult.NO_SUCH_CONTENT]
    if fl_ctx.get_prop(FLContextKey.SECURE_MODE, True):
        bad += [LoadResult.INVALID_SIGNATURE, LoadResult.NOT_SIGNED]
    if rc in bad or not data:
        raise ValueError(f"cannot load {name}: {rc}")
    return data


def _load_distributed_kit(startup: str, name: str):
    """(bytes, LoadResult) of ``name`` checked against ``startup/consortium_he_signature.json``
    (:mod:`consortium.provisioning.distributed.approve`); NOT_SIGNED where the kit has no such file."""
    from nvflare.fuel.sec.security_content_service import SecurityContentManager

    from consortium.protocol.files import HE_SIGNATURE_FILE

    return SecurityContentManager(startup, signature_filename=HE_SIGNATURE_FILE).load_content(name)


def load_context(fl_ctx: FLContext, secret: bool) -> ts.Context:
    """This participant's CKKS context, checked (secret at a site, public at the server), its key
    named by the provisioned public context (the server's own, a site's copy of it)."""
    name = CLIENT_CONTEXT if secret else SERVER_CONTEXT
    try:
        data = _load_bytes(name, fl_ctx)
        public = data if not secret else _load_bytes(SERVER_CONTEXT, fl_ctx)
        ctx = ts.context_from(data)
    except (OSError, ValueError) as e:
        raise ValueError(f"no usable HE context {name!r} ({e}): provision the consortium with the HEKeysBuilder of "
                         "provisioning/project.yml (`consortium poc up` or `consortium provision`)") from None
    check_context(ctx, want_secret=secret)
    return bind_key_id(ctx, public)


def message_to_dict(msg: EncryptedMessage) -> dict:
    return {"ciphertexts": list(msg.ciphertexts), "envelope": msg.envelope.to_dict()}


def message_from_dict(site: str, data) -> EncryptedMessage:
    if not isinstance(data, dict) or not isinstance(data.get("ciphertexts"), list):
        raise ValueError(f"HE message from {site} has no ciphertext list")
    cts = data["ciphertexts"]
    if not all(isinstance(c, bytes) for c in cts):
        raise ValueError(f"HE message from {site}: ciphertexts must be bytes")
    return EncryptedMessage(cts, Envelope.from_dict(data.get("envelope") or {}))


@dataclass
class _SiteModel:
    """The site's copy of the global model, shared by its two filters within the job process."""

    context: ts.Context
    weights: dict[str, np.ndarray] | None = None
    applied_round: int = -1  # the last round whose sum is in ``weights``
    decrypt_seconds: float = 0.0  # the last round sum's decryption, reported with the next update
    pool: EncryptionPool | None = None  # encryption workers, when the site's filter asks for them

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
    received: dict = field(default_factory=dict)


_MODELS: dict[tuple[str, str], _SiteModel] = {}


def site_model(fl_ctx: FLContext) -> _SiteModel:
    """This site's state for the running job; a site's state of an earlier job is dropped (the
    secret context and the plaintext model do not outlive the job in a long-lived process)."""
    job, site = str(fl_ctx.get_job_id()), fl_ctx.get_identity_name()
    for old in [k for k in _MODELS if k[1] == site and k[0] != job]:
        _MODELS.pop(old).close()
    if (job, site) not in _MODELS:
        _MODELS[(job, site)] = _SiteModel(load_context(fl_ctx, secret=True))
    return _MODELS[(job, site)]


class HEDecryptTaskData(Filter):
    def process(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        state = site_model(fl_ctx)
        dxo = from_shareable(shareable)
        kind = dxo.get_meta_prop(HE_META)
        if kind is None:
            if dxo.data_kind != DataKind.WEIGHTS or state.weights is not None:
                raise ValueError(f"HE job: refusing plaintext {dxo.data_kind} task data after the initial model")
            state.weights = {k: np.asarray(v) for k, v in dxo.data.items()}  # round 0: the public initial model
            return shareable
        if kind != "round_sum":
            raise ValueError(f"HE job: unexpected task data {kind!r}")
        rnd = int(dxo.get_meta_prop("round"))
        if state.weights is None:
            raise ValueError("HE job: an encrypted round sum arrived before the initial model")
        if rnd == state.applied_round + 1:
            started = time.perf_counter()
            msg = message_from_dict("the server", dxo.data)
            verify_message(msg, key_id(state.context))
            update = decrypt_sum(state.context, msg.ciphertexts, layout_of(state.weights),
                                 float(dxo.get_meta_prop("scale")), float(dxo.get_meta_prop("canary")))
            state.weights = {k: (state.weights[k] + update[k]).astype(state.weights[k].dtype) for k in state.weights}
            state.applied_round = rnd
            state.decrypt_seconds = time.perf_counter() - started
        elif rnd != state.applied_round:
            raise ValueError(f"HE job: this site holds the model after round {state.applied_round} and received the sum "
                             f"of round {rnd}: a missed round cannot be replayed; rejoin in a new job")
        return DXO(data_kind=DataKind.WEIGHTS, data=dict(state.weights)).update_shareable(shareable)


class HEEncryptResult(Filter):
    def __init__(self, algorithm: str = "fedavg", tau_eff: str = "normalisers", max_update_norm: float | None = None,
                 encrypt_workers: int = 1) -> None:
        """Args: algorithm / tau_eff: the server aggregator's (the coefficient each site applies);
        max_update_norm: reject this site's own update above this L2 norm before it is encrypted;
        encrypt_workers: processes that encrypt a large update (1: in the job's process; a site
        machine with several cores sets its core count, see :mod:`consortium.crypto.pool`)."""
        super().__init__()
        if isinstance(encrypt_workers, bool) or not isinstance(encrypt_workers, int) or not 1 <= encrypt_workers <= 256:
            raise ValueError(f"HEEncryptResult: encrypt_workers must be an integer in 1..256, got {encrypt_workers!r}")
        self.encrypt_workers = encrypt_workers
        self.weighting = make_weighting(algorithm, tau_eff)
        self.checks = DEFAULT_CHECKS + ((NormBound(max_update_norm),) if max_update_norm is not None else ())

    def process(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        if shareable.get_return_code(ReturnCode.OK) != ReturnCode.OK or set(shareable) <= {"__headers__"}:
            return shareable  # an error or a bare acknowledgement: no data
        site = fl_ctx.get_identity_name()
        try:
            dxo = from_shareable(shareable)
        except ValueError:
            self.log_error(fl_ctx, f"HE job: refusing to release a result from {site} that is not a DXO")
            return make_reply(ReturnCode.EXECUTION_EXCEPTION)
        if dxo.data_kind in (DataKind.METRICS, DataKind.STATISTICS):
            return shareable  # scores and standardisation moments: no model values
        if dxo.data_kind != DataKind.WEIGHT_DIFF:
            self.log_error(fl_ctx, f"HE job: refusing to release a plaintext {dxo.data_kind} result from {site}")
            return make_reply(ReturnCode.EXECUTION_EXCEPTION)
        state = site_model(fl_ctx)
        result = read_result(site, dxo.meta)
        run_checks(site, dxo.data, state.weights, self.checks)
        self.weighting.check(result)
        started = time.perf_counter()
        if self.encrypt_workers > 1 and state.pool is None:
            state.pool = EncryptionPool(state.context, self.encrypt_workers)  # once per job; its start is HE time too
        msg = encrypt_update(state.context, dxo.data, self.weighting.coefficient(result), state.pool)
        he_seconds = state.decrypt_seconds + time.perf_counter() - started  # telemetry: HE's cost at this site
        state.decrypt_seconds = 0.0
        result = replace(result, he_seconds=he_seconds)
        out = DXO(data_kind=DataKind.APP_DEFINED, data=message_to_dict(msg), meta=result.to_meta() | {HE_META: "site_update"})
        return out.update_shareable(shareable)
