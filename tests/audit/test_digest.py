"""The content digest: the same for the same content whatever the dict order, different for any
change of value, dtype, shape or type, and an error for what it cannot encode."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from consortium.audit.digest import content_sha256

UPDATE = {"DXO": {"kind": "WEIGHT_DIFF", "data": {"w": np.array([[0.5, -1.0]], dtype=np.float32)},
                  "meta": {"n_samples": 200, "dp_epsilon": 1.5}}}


def test_an_empty_dict_is_the_sha256_of_its_encoding():
    assert content_sha256({}) == hashlib.sha256(b"d0:").hexdigest()


def test_key_order_does_not_matter():
    reordered = {"DXO": {"meta": {"dp_epsilon": 1.5, "n_samples": 200}, "data": UPDATE["DXO"]["data"], "kind": "WEIGHT_DIFF"}}
    assert content_sha256(reordered) == content_sha256(UPDATE)


@pytest.mark.parametrize("change", [
    lambda u: u["DXO"]["data"].update(w=np.array([[0.5, -1.0]], dtype=np.float64)),  # dtype
    lambda u: u["DXO"]["data"].update(w=np.array([0.5, -1.0], dtype=np.float32)),  # shape
    lambda u: u["DXO"]["data"].update(w=np.array([[0.5, -1.0000001]], dtype=np.float32)),  # value
    lambda u: u["DXO"]["meta"].update(n_samples=200.0),  # int vs float
    lambda u: u["DXO"].update(kind=b"WEIGHT_DIFF"),  # bytes vs str
])
def test_any_change_changes_the_digest(change):
    changed = {"DXO": {k: dict(v) if isinstance(v, dict) else v for k, v in UPDATE["DXO"].items()}}
    change(changed)
    assert content_sha256(changed) != content_sha256(UPDATE)


def test_ciphertexts_are_digested_as_bytes():
    assert content_sha256({"ciphertexts": [b"\x00\x01", b"\x02"]}) != content_sha256({"ciphertexts": [b"\x00", b"\x01\x02"]})


def test_an_unknown_type_is_refused_naming_where_it_is():
    with pytest.raises(TypeError, match=r"\$\.DXO\.meta\.when"):
        content_sha256({"DXO": {"meta": {"when": object()}}})


def test_an_object_array_is_refused():
    with pytest.raises(TypeError, match="objects"):
        content_sha256({"w": np.array([{}, None], dtype=object)})


def test_flare_s_own_ckks_vectors_are_digested_by_their_serialisation():
    import tenseal as ts

    from consortium.crypto.ckks import CKKSParameters, make_context

    ctx = make_context(CKKSParameters(coeff_mod_bit_sizes=(60, 40, 40)))
    a, b = ts.ckks_vector(ctx, [1.0, 2.0]), ts.ckks_vector(ctx, [1.0, 2.0])  # fresh randomness: other ciphertexts
    assert content_sha256({"w": a}) == content_sha256({"w": ts.ckks_vector_from(ctx, a.serialize())})
    assert content_sha256({"w": a}) != content_sha256({"w": b})
