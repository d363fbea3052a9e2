"""The one aggregator every consortium job uses with ScatterAndGather: a thin adapter that reads a
result through :mod:`consortium.flare.result_io`, hands it to a
:class:`~consortium.aggregation.round.RoundAggregation` configured from the job's JSON, and
publishes the round's update and record.

The round's :class:`~consortium.protocol.round_record.RoundRecord` (the summary the round's
arithmetic makes, plus what only the FLARE side knows: the round's start, each site's response
time, training loss, update bytes and HE time, the server's load and combine time, the quarantined
sites and the incident controls applied; see :class:`RoundControls` and
:mod:`consortium.flare.incident`) is logged and announced with the event :data:`ROUND_RECORD_EVENT`,
as ``RoundRecord.to_dict()`` in the FLContext property :data:`ROUND_RECORD_PROP` (listeners read it
with :func:`announced_record`). Writing it anywhere is a listener's job
(:class:`consortium.flare.listeners.progress_writer.RoundProgressWriter`), so an I/O error there
cannot fail a round.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nvflare.apis.dxo import DXO, DataKind
from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import FLContextKey, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable
from nvflare.apis.utils.fl_context_utils import add_job_audit_event
from nvflare.app_common.abstract.aggregator import Aggregator
from nvflare.app_common.abstract.model import ModelLearnableKey
from nvflare.app_common.app_constant import AppConstants

from consortium.aggregation.config import AggregatorConfig
from consortium.aggregation.fednova import TauEff
from consortium.aggregation.round import DEFAULT_ALERT_Z, RoundAggregation
from consortium.aggregation.server_step import ServerMomentum
from consortium.flare.result_io import ReceivedResult, read_shareable, site_of
from consortium.operations.deny_list import DenyList
from consortium.protocol.round_record import RoundRecord
from consortium.protocol.site_result import REFUSAL_HEADER, SiteResult

if TYPE_CHECKING:
    from consortium.protocol.round_record import RoundSummary

ROUND_RECORD_EVENT = "consortium.round_record"
ROUND_RECORD_PROP = "consortium.round_record"  # holds RoundRecord.to_dict(); read it with announced_record()


def announced_record(fl_ctx: FLContext) -> RoundRecord:
    """The round record of the :data:`ROUND_RECORD_EVENT` being handled (the one reader of the
    announcement); ValueError when there is none or it breaks the contract."""
    record = fl_ctx.get_prop(ROUND_RECORD_PROP)
    if record is None:
        raise ValueError(f"{ROUND_RECORD_EVENT} without a record")
    return RoundRecord.from_dict(record, ROUND_RECORD_EVENT)


@dataclass(frozen=True)
class QuorumShortfall:
    """Too few accepted results in the round so far: who answered (accepted or rejected) and why
    that is not enough."""

    answered: frozenset[str]
    reason: str


@dataclass(frozen=True)
class RoundControls:
    """What the workflow tells the aggregator when it broadcasts a round: when it started, which
    sites an admin quarantined (site -> the quarantine's line), and the incident controls applied
    since the last round (their lines, for the round record)."""

    started_at: float | None = None
    quarantined: Mapping[str, str] = field(default_factory=dict)
    incidents: tuple[str, ...] = ()


def update_bytes(update) -> int | None:
    """Array bytes of a plaintext update (None for another payload, e.g. ciphertexts)."""
    if isinstance(update, Mapping) and update and all(hasattr(v, "nbytes") for v in update.values()):
        return int(sum(v.nbytes for v in update.values()))
    return None


class RoundControlled(ABC):
    """What :class:`~consortium.flare.workflows.scatter.ScatterAndGather` tells an aggregator and
    asks it besides FLARE's ``Aggregator`` interface (an aggregator without it gets FLARE's rounds)."""

    @abstractmethod
    def set_round_controls(self, controls: RoundControls) -> None:
        """Before a round's broadcast: its start, the quarantined sites, the incident controls applied."""

    @abstractmethod
    def record_refusal(self, site: str, return_code: str, shareable: Shareable, fl_ctx: FLContext) -> None:
        """A result FLARE turned away before ``accept`` (an error reply, a site's refusal)."""

    @abstractmethod
    def quorum_shortfall(self, fl_ctx: FLContext) -> QuorumShortfall | None:
        """None when the round in progress has enough accepted results."""


class RoundAggregator(Aggregator, RoundControlled):
    def __init__(self, algorithm: str = "fedavg", tau_eff: str = TauEff.NORMALISERS.value, server_momentum: float = 0.0,
                 min_accepted: int = 1, max_update_norm: float | None = None, rule: str = "mean", trim: int = 1,
                 krum_f: int = 1, sites: int | None = None, alert_threshold: float | None = DEFAULT_ALERT_Z,
                 exclude_alerted: bool = False, resume_from: str | None = None, resume_sha256: str | None = None) -> None:
        """See :class:`AggregatorConfig`; every argument is checked here, when the job is built.
        ``resume_from`` / ``resume_sha256``: a model-registry file inside the job's app folder
        whose server state (momentum velocity) this job continues from (``consortium job resume``)."""
        super().__init__()
        self.config = AggregatorConfig(algorithm, tau_eff, server_momentum, min_accepted, max_update_norm, rule, trim,
                                       krum_f, sites, alert_threshold, exclude_alerted)
        self.round = self.config.build()
        self._round_number: int | None = None
        self.controls = RoundControls()
        self._site_seconds: dict[str, float] = {}
        self._site_bytes: dict[str, int] = {}
        self._site_load_seconds: dict[str, float] = {}  # reading a result into the round (ciphertexts: deserialising)
        self._combine_seconds: float | None = None  # the server's time to check and combine the last round
        self._withheld: dict[str, str] = {}  # site -> the reason it gave for withholding this round's result
        self._deny_list: DenyList | None = None  # FLARE's disabled_clients.json of the server, from the run's start
        if (resume_from is None) != (resume_sha256 is None):
            raise ValueError(f"aggregator: resume_from ({resume_from!r}) and resume_sha256 ({resume_sha256!r}) go together")
        self.resume_from, self.resume_sha256 = resume_from, resume_sha256

    def server_state(self) -> dict:
        """What the server must keep across rounds besides the model (momentum velocity), as arrays."""
        velocity = self.round.step.velocity if isinstance(self.round.step, ServerMomentum) else None
        return {f"velocity/{k}": v for k, v in velocity.items()} if velocity else {}

    def restore_server_state(self, state: dict) -> None:
        velocity = {k.removeprefix("velocity/"): v for k, v in state.items() if k.startswith("velocity/")}
        if not isinstance(self.round.step, ServerMomentum):
            if velocity:
                raise ValueError("the saved server state has a momentum velocity but this job has no server_momentum")
            return
        self.round.step.velocity = velocity or None

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        if event_type == EventType.START_RUN:
            self._deny_list = DenyList(Path(fl_ctx.get_engine().get_workspace().get_root_dir()))
        if event_type == EventType.START_RUN and self.resume_from is not None:
            from consortium.fileio import path_under
            from consortium.registry.store import RegistryError, load_arrays

            path = os.path.join(fl_ctx.get_prop(FLContextKey.APP_ROOT), self.resume_from)
            try:  # a file inside the job's app folder, never one the job points to elsewhere
                path = path_under(fl_ctx.get_prop(FLContextKey.APP_ROOT), self.resume_from)
                _, state = load_arrays(path, self.resume_sha256)
                self.restore_server_state(state)
            except (RegistryError, ValueError) as e:
                self.system_panic(f"aggregator: cannot resume from {path}: {e}", fl_ctx)
                return
            if isinstance(self.round.step, ServerMomentum) and not state:
                self.log_warning(fl_ctx, f"{path} holds no momentum velocity: server momentum restarts from zero")
            else:
                self.log_info(fl_ctx, f"server state restored from {path} ({len(state)} arrays)")

    def _current(self, fl_ctx: FLContext) -> RoundAggregation:
        """The round in progress, started afresh (against the current global model) when FLARE's round moves on."""
        number = fl_ctx.get_prop(AppConstants.CURRENT_ROUND)
        if number != self._round_number:
            model = fl_ctx.get_prop(AppConstants.GLOBAL_MODEL)
            self.round.start(number or 0, model.get(ModelLearnableKey.WEIGHTS) if model is not None else None)
            self._round_number = number
            self._site_seconds, self._site_bytes, self._site_load_seconds = {}, {}, {}
            self._withheld = {}
        return self.round

    def quorum_shortfall(self, fl_ctx: FLContext) -> QuorumShortfall | None:
        """None when the round in progress has at least ``min_accepted`` accepted results."""
        rnd = self._current(fl_ctx)
        if len(rnd.accepted) >= rnd.min_accepted:
            return None
        why = "; ".join(f"{s}: {r}" for s, r in sorted(rnd.rejected.items()))
        return QuorumShortfall(frozenset(rnd.accepted) | frozenset(rnd.rejected),
                               f"{len(rnd.accepted)} result(s) accepted ({', '.join(sorted(rnd.accepted)) or 'none'}), "
                               f"min_accepted is {rnd.min_accepted}" + (f"; rejected: {why}" if why else ""))

    def record_refusal(self, site: str, return_code: str, shareable: Shareable, fl_ctx: FLContext) -> None:
        """A result FLARE turned away before ``accept`` (an error reply, a site's refusal). One with
        the site's reason in :data:`REFUSAL_HEADER` (its audit trail, its DP budget, a check at the
        site) is listed in the round record under ``withheld`` with that reason; one without,
        under ``rejected``. Either way it counts as an answer that was not accepted."""
        self._arrived(site)
        rnd = self._current(fl_ctx)
        reason = shareable.get_header(REFUSAL_HEADER)
        if reason:
            self._withheld[site] = str(reason)
            self._rejected(fl_ctx, rnd.reject(site, f"{site} withheld its result ({return_code}): {reason}"))
        else:
            self._rejected(fl_ctx, rnd.reject(site, f"{site} returned {return_code}: no reason given"))

    def _rejected(self, fl_ctx: FLContext, reason: str) -> None:
        """A rejection goes to the log, FLARE's job audit trail and (via the round) the round record."""
        self.log_error(fl_ctx, f"rejected: {reason}")
        add_job_audit_event(fl_ctx, msg=f"consortium rejected round {self.round.round_number}: {reason}")

    def _arrived(self, site: str) -> None:
        if self.controls.started_at is not None:
            self._site_seconds.setdefault(site, time.time() - self.controls.started_at)

    def set_round_controls(self, controls: RoundControls) -> None:
        """Called by the workflow before it broadcasts a round."""
        self.controls = controls

    def accept(self, shareable: Shareable, fl_ctx: FLContext) -> bool:
        rnd = self._current(fl_ctx)
        site = site_of(shareable)
        self._arrived(site)
        revoked = self._deny_list.refusal(site) if self._deny_list is not None else None
        if revoked is not None:
            self._rejected(fl_ctx, rnd.reject(site, revoked))
            return False
        if site in self.controls.quarantined:
            self._rejected(fl_ctx, rnd.reject(site, f"{site} quarantined ({self.controls.quarantined[site]}); result refused"))
            return False
        if shareable.get_return_code(ReturnCode.OK) != ReturnCode.OK:
            self.record_refusal(site, shareable.get_return_code(), shareable, fl_ctx)
            return False
        contributed = shareable.get_cookie(AppConstants.CONTRIBUTION_ROUND)
        if contributed is not None and rnd.round_number is not None and contributed != rnd.round_number:
            self.log_warning(fl_ctx, f"{site}: late result for round {contributed} (now {rnd.round_number}); discarded")
            return False
        started = time.perf_counter()
        try:
            received = self.read(shareable, fl_ctx)
            self._site_load_seconds[site] = time.perf_counter() - started
        except ValueError as e:
            self._rejected(fl_ctx, rnd.reject(site, str(e)))
            return False
        reason = rnd.offer(received.site, received.update, received.result)
        if reason is not None:
            self._rejected(fl_ctx, reason)
            return False
        size = update_bytes(received.update)
        if size is not None:
            self._site_bytes[site] = size
        return True

    def aggregate(self, fl_ctx: FLContext) -> Shareable:
        rnd = self._current(fl_ctx)
        self._round_number = None  # the next accept() starts the next round against the new global model
        started = time.perf_counter()
        update, record = rnd.close(finished_at=time.time())
        record = record.with_withheld(self._withheld)
        self._combine_seconds = time.perf_counter() - started
        accepted = rnd.last_accepted
        self.log_info(fl_ctx, record.line())
        for site, why in record.alerts.items():
            self.log_warning(fl_ctx, f"ALERT round {record.round}: {site}: {why}")
            add_job_audit_event(fl_ctx, msg=f"consortium ALERT round {record.round}: {site}: {why}")
        fl_ctx.set_prop(ROUND_RECORD_PROP, self.round_record(record, rnd).to_dict(), private=True, sticky=False)
        self.fire_event(ROUND_RECORD_EVENT, fl_ctx)
        return self.publish(update, accepted, record.round, fl_ctx)

    def round_record(self, summary: RoundSummary, rnd: RoundAggregation) -> RoundRecord:
        """The round record as announced: the summary and what the FLARE side knows of the round."""
        c = self.controls
        self.controls = RoundControls(quarantined=c.quarantined)  # incidents are told once
        combined = dict(zip(summary.contributors, rnd.last_accepted, strict=True))  # both sorted by site
        return RoundRecord(
            **summary.to_dict(), started_at=c.started_at, site_seconds=dict(sorted(self._site_seconds.items())),
            site_train_loss={s: r.train_loss for s, r in combined.items() if r.train_loss is not None},
            site_update_bytes={s: b for s, b in sorted(self._site_bytes.items()) if s in combined},
            site_he_seconds={s: r.he_seconds for s, r in combined.items() if r.he_seconds is not None},
            combine_seconds=self._combine_seconds,
            load_seconds=sum(t for s, t in self._site_load_seconds.items() if s in combined),
            quarantined=dict(c.quarantined), incidents=list(c.incidents))

    def read(self, shareable: Shareable, fl_ctx: FLContext) -> ReceivedResult:
        """A site's result as the round takes it (ValueError naming what is wrong)."""
        return read_shareable(shareable)

    def publish(self, update, accepted: list[SiteResult], round_number: int, fl_ctx: FLContext) -> Shareable:
        """The round's update as FLARE's shareable generator takes it."""
        return DXO(data_kind=DataKind.WEIGHT_DIFF, data=update).to_shareable()

    def reset(self, fl_ctx: FLContext) -> None:
        self._round_number = None
