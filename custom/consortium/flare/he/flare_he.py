"""Running FLARE's own HE filters (``nvflare.app_opt.he``) around the consortium's executors.

FLARE's ``HEModelDecryptor`` hands the decrypted global model to the executor as flat vectors and
leaves the reshaping to FLARE's PyTorch client API; the consortium's executors refuse a weight
whose shape differs from the model's (a safety check they keep). :class:`ReshapeToModel`, a task
data filter listed after FLARE's decryptor, restores each flat vector to its layer's shape when
the number of values matches, and refuses anything else. Used by ``benchmarks/he_cost.py`` to time
FLARE's HE in a POC round beside ours on the same model and training.
"""

from __future__ import annotations

import numpy as np
from nvflare.apis.dxo import DataKind, from_shareable
from nvflare.apis.filter import Filter
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable

from consortium.allowlist import build_model
from consortium.learning.loop import get_weights


def reshape_to(weights: dict, shapes: dict[str, tuple[int, ...]]) -> dict:
    """``weights`` with each flat vector reshaped to ``shapes``; ValueError for a layer the model
    lacks or whose number of values differs."""
    out = {}
    for name, value in weights.items():
        if name not in shapes:
            raise ValueError(f"weight {name!r} is not a layer of the model")
        a = np.asarray(value)
        if a.size != int(np.prod(shapes[name])):
            raise ValueError(f"weight {name!r} has {a.size} values, the model's layer has shape {shapes[name]}")
        out[name] = a.reshape(shapes[name])
    return out


class ReshapeToModel(Filter):
    def __init__(self, model_path: str, model_args: dict | None = None) -> None:
        super().__init__()
        model = build_model(model_path, model_args or {}, where="ReshapeToModel args.model_path")
        self.shapes = {k: tuple(v.shape) for k, v in get_weights(model).items()}

    def process(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        dxo = from_shareable(shareable)
        if dxo.data_kind not in (DataKind.WEIGHTS, DataKind.WEIGHT_DIFF):
            return shareable
        dxo.data = reshape_to(dxo.data, self.shapes)
        return dxo.update_shareable(shareable)
