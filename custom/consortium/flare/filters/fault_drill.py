"""A fire drill for a consortium: a site result filter that corrupts this site's training update
on purpose, so admins (and the POC tests) can watch the server's defences act on a real job.

    {"tasks": ["train"], "filters": [{"path": "consortium.flare.filters.fault_drill.FaultDrill",
                                      "args": {"faults": {"hungary": ["nan", "shape", "huge"]}}}]}

A site named in ``faults`` replaces its update, round after round, by the listed faults in turn:
``nan`` (one value NaN), ``shape`` (one tensor a value short), ``huge`` (scaled by 10^4),
``sign_flip_x50`` (the poisoning of ``benchmarks/poisoning.py``), ``none`` (an honest round).
Sites not named are untouched.
Never part of a production job: ``consortium job validate`` names it in its output.
"""

from __future__ import annotations

from nvflare.apis.dxo import DataKind, from_shareable
from nvflare.apis.filter import Filter
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable

from consortium.operations.drills import FAULTS, corrupt


class FaultDrill(Filter):
    def __init__(self, faults: dict[str, list[str]]) -> None:
        super().__init__()
        if not isinstance(faults, dict) or not faults:
            raise ValueError(f"FaultDrill: faults must map site names to lists of faults, got {faults!r}")
        for site, seq in faults.items():
            if not isinstance(seq, list) or not seq or any(f not in FAULTS for f in seq):
                raise ValueError(f"FaultDrill: faults[{site!r}] = {seq!r} must be a non-empty list of {FAULTS}")
        self.faults = faults
        self.count = 0

    def process(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        site = fl_ctx.get_identity_name()
        seq = self.faults.get(site)
        if not seq:
            return shareable
        dxo = from_shareable(shareable)
        if dxo.data_kind not in (DataKind.WEIGHT_DIFF, DataKind.WEIGHTS):
            return shareable
        fault = seq[self.count % len(seq)]
        self.count += 1
        if fault == "none":
            return shareable
        dxo.data = corrupt(dxo.data, fault)
        self.log_warning(fl_ctx, f"FIRE DRILL: {site} sends a corrupted update ({fault})")
        return dxo.update_shareable(shareable)
