"""Flat packing, the envelope and the add-only encrypted round: decrypted sums equal the plaintext
round to 1e-6 per weight, and what does not belong is refused."""

from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts

from consortium.aggregation.combine import WeightedSum
from consortium.aggregation.weighting import FedAvgWeighting, FedNovaWeighting, PreWeighted
from consortium.crypto.ckks import key_id, make_context, public_copy
from consortium.crypto.packed import (
    CiphertextSum,
    EncryptedMessage,
    decrypt_sum,
    encrypt_update,
    flatten,
    layout_of,
    load_vectors,
    unflatten,
    verify_message,
)
from consortium.protocol.site_result import SiteResult

RESULTS = [SiteResult(n_samples=199, local_steps=125, fednova_a=125.0), SiteResult(n_samples=172, local_steps=66, fednova_a=66.0),
           SiteResult(n_samples=30, local_steps=4, fednova_a=4.0), SiteResult(n_samples=85, local_steps=22, fednova_a=22.0)]


@pytest.fixture(scope="module")
def ctx():
    return make_context()


def updates(n_params, sites, seed=0):
    rng = np.random.default_rng(seed)
    return [{"conv.weight": (rng.standard_normal((n_params - 10) // 2) * 0.05).astype(np.float32).reshape(-1, 1),
             "conv.bias": (rng.standard_normal(10) * 0.05).astype(np.float32),
             "fc.weight": (rng.standard_normal(n_params - 10 - (n_params - 10) // 2) * 0.05).astype(np.float32)}
            for _ in range(sites)]


def encrypted_round(ctx, ups, results, weighting):
    """Sites pre-weight and encrypt; the server (public context) adds; the sites decrypt."""
    server = public_copy(ctx)
    pre = PreWeighted(weighting)
    rule = WeightedSum(CiphertextSum())
    for u, r in zip(ups, results, strict=True):
        msg = encrypt_update(ctx, u, weighting.coefficient(r))
        verify_message(msg, key_id(server))
        rule.add(load_vectors(server, msg.ciphertexts), pre.coefficient(r))
    total = rule.result(pre.scale(results))
    return decrypt_sum(ctx, [v.serialize() for v in total.ciphertexts], layout_of(ups[0]), total.scale, pre.canary(results))


def plaintext_round(ups, results, weighting):
    rule = WeightedSum()
    for u, r in zip(ups, results, strict=True):
        rule.add(u, weighting.coefficient(r))
    return rule.result(weighting.scale(results))


@pytest.mark.parametrize("n_params, sites", [(40_700, 4), (1_000_000, 2)])
@pytest.mark.parametrize("weighting", [FedAvgWeighting(), FedNovaWeighting()], ids=["fedavg", "fednova"])
def test_decrypted_aggregate_equals_the_plaintext_one(ctx, n_params, sites, weighting):
    ups, results = updates(n_params, sites), RESULTS[:sites]

    got, want = encrypted_round(ctx, ups, results, weighting), plaintext_round(ups, results, weighting)

    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-6)


def test_packing_round_trips():
    u = updates(1000, 1)[0]
    layout = layout_of(u)
    back = unflatten(flatten(u, layout), layout)
    for k in u:
        np.testing.assert_array_equal(back[k], u[k])


def test_a_message_is_about_8x_the_fp32_bytes(ctx):
    msg = encrypt_update(ctx, updates(40_700, 1)[0], 1.0)
    assert 7.9 < sum(map(len, msg.ciphertexts)) / (40_700 * 4) < 8.5


def test_the_server_context_cannot_decrypt(ctx):
    msg = encrypt_update(ctx, updates(100, 1)[0], 1.0)
    server_view = load_vectors(public_copy(ctx), msg.ciphertexts)
    with pytest.raises(ValueError, match="secret"):
        server_view[0].decrypt()


def test_a_ciphertext_under_another_key_fails_the_canary(ctx):
    other = make_context()  # same parameters, other keys
    ups = updates(5000, 2)
    mine, theirs = encrypt_update(ctx, ups[0], 10.0), encrypt_update(other, ups[1], 20.0)
    server = public_copy(ctx)
    rule = WeightedSum(CiphertextSum())
    rule.add(load_vectors(server, mine.ciphertexts), 1.0)
    rule.add(load_vectors(server, theirs.ciphertexts), 1.0)  # parses: same parameters
    total = rule.result(1 / 30)

    with pytest.raises(ValueError, match="canary check failed"):
        decrypt_sum(ctx, [v.serialize() for v in total.ciphertexts], layout_of(ups[0]), total.scale, 30.0)
    with pytest.raises(ValueError, match="this consortium's key is"):
        verify_message(theirs, key_id(ctx))  # and its envelope names another key


def test_a_truncated_or_altered_ciphertext_is_refused(ctx):
    msg = encrypt_update(ctx, updates(100, 1)[0], 1.0)
    truncated = EncryptedMessage([msg.ciphertexts[0][:-100]], msg.envelope)
    flipped = bytearray(msg.ciphertexts[0])
    flipped[5000] ^= 0xFF
    altered = EncryptedMessage([bytes(flipped)], msg.envelope)

    for bad in (truncated, altered):
        with pytest.raises(ValueError, match="SHA-256"):
            verify_message(bad, key_id(ctx))
    with pytest.raises(ValueError, match="does not parse"):
        load_vectors(ctx, truncated.ciphertexts)


def test_layout_and_count_must_match_the_envelope(ctx):
    msg = encrypt_update(ctx, updates(100, 1)[0], 1.0)
    with pytest.raises(ValueError, match="layout digest"):
        verify_message(msg, key_id(ctx), want_layout="0000000000000000")
    with pytest.raises(ValueError, match="announces 1 ciphertexts, 2 arrived"):
        verify_message(EncryptedMessage(msg.ciphertexts * 2, msg.envelope), key_id(ctx))


def test_the_server_algebra_only_adds(ctx):
    v = [ts.ckks_vector(ctx, [1.0])]
    with pytest.raises(ValueError, match="only adds"):
        CiphertextSum().scaled(v, 2.0)
    with pytest.raises(ValueError, match="only adds"):
        CiphertextSum().add_scaled(v, v, 0.5)


@pytest.mark.parametrize("c", [0.0, -1.0, float("nan")])
def test_a_site_coefficient_must_be_positive(ctx, c):
    with pytest.raises(ValueError, match="coefficient"):
        encrypt_update(ctx, updates(100, 1)[0], c)
