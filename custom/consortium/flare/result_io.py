"""The site result contract in FLARE terms: the one writer every executor uses and the one reader
every aggregator (and filter) uses. The fields themselves are :class:`consortium.protocol.site_result.SiteResult`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from nvflare.apis.dxo import DXO, DataKind, MetaKey, from_shareable
from nvflare.apis.fl_constant import ReservedKey
from nvflare.apis.shareable import Shareable

from consortium.protocol.site_result import SiteResult, read_result


def result_shareable(update: Mapping[str, np.ndarray], result: SiteResult) -> Shareable:
    """A training result: WEIGHT_DIFF DXO ``update`` with ``result`` as its meta (plus FLARE's own
    ``NUM_STEPS_CURRENT_ROUND`` for FLARE components that read it)."""
    meta = result.to_meta()
    if result.local_steps is not None:
        meta[MetaKey.NUM_STEPS_CURRENT_ROUND] = result.local_steps
    return DXO(data_kind=DataKind.WEIGHT_DIFF, data=dict(update), meta=meta).to_shareable()


@dataclass(frozen=True)
class ReceivedResult:
    site: str
    update: dict[str, np.ndarray]
    result: SiteResult


def site_of(shareable: Shareable) -> str:
    return shareable.get_peer_prop(key=ReservedKey.IDENTITY_NAME, default="?")


def read_shareable(shareable: Shareable) -> ReceivedResult:
    """The site, update and :class:`SiteResult` of a training result; ValueError naming the site
    and what is wrong for anything but a WEIGHT_DIFF DXO with a readable result."""
    site = site_of(shareable)
    try:
        dxo = from_shareable(shareable)
    except ValueError as e:
        raise ValueError(f"result from {site} holds no DXO: {e}") from None
    if dxo.data_kind != DataKind.WEIGHT_DIFF:
        kind = getattr(dxo.data_kind, "value", dxo.data_kind)
        raise ValueError(f"result from {site} is {kind}, expected {DataKind.WEIGHT_DIFF.value}")
    if not isinstance(dxo.data, dict):
        raise ValueError(f"result from {site}: update is {type(dxo.data).__name__}, expected a dict of arrays")
    return ReceivedResult(site, dxo.data, read_result(site, dxo.meta))
