"""FLARE's own HE decryptor hands flat vectors to the executor: ReshapeToModel restores the
model's shapes, and refuses a vector of the wrong size or an unknown layer."""

from __future__ import annotations

import numpy as np
import pytest
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.fl_context import FLContext

from consortium.flare.he.flare_he import ReshapeToModel, reshape_to

MODEL = {"model_path": "consortium.learning.tabular.LogisticRegression", "model_args": {"in_features": 3}}


def test_flat_vectors_get_the_model_s_shapes():
    f = ReshapeToModel(**MODEL)
    flat = {k: np.arange(int(np.prod(s)), dtype=np.float32) for k, s in f.shapes.items()}
    out = from_shareable(f.process(DXO(DataKind.WEIGHTS, flat).to_shareable(), FLContext())).data
    assert {k: v.shape for k, v in out.items()} == f.shapes
    assert all(np.array_equal(out[k].ravel(), flat[k]) for k in flat)


@pytest.mark.parametrize("weights, words", [({"nope": np.zeros(3)}, "not a layer"), (None, "values")])
def test_a_wrong_size_or_unknown_layer_is_refused(weights, words):
    shapes = ReshapeToModel(**MODEL).shapes
    if weights is None:
        name = next(iter(shapes))
        weights = {name: np.zeros(int(np.prod(shapes[name])) + 1)}
    with pytest.raises(ValueError, match=words):
        reshape_to(weights, shapes)
