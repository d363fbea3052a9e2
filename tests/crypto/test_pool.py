"""Encryption over a process pool: the same message, decryptable and checked like one made in process."""

from __future__ import annotations

import numpy as np
import pytest

from consortium.crypto.ckks import key_id, make_context, public_copy
from consortium.crypto.packed import decrypt_sum, encrypt_update, layout_of, load_vectors, verify_message
from consortium.crypto.pool import EncryptionPool


def test_a_pool_encrypts_what_one_process_would_and_the_server_adds_it():
    ctx = make_context()
    rng = np.random.default_rng(0)
    update = {"a": rng.standard_normal((3, 4000)).astype(np.float32), "b": rng.standard_normal(50).astype(np.float32)}
    with EncryptionPool(ctx, workers=2) as pool:
        pooled = encrypt_update(ctx, update, 3.0, pool)
        again = encrypt_update(ctx, update, 1.0, pool)  # the pool serves every round of the job
    local = encrypt_update(ctx, update, 3.0)

    assert len(pooled.ciphertexts) == len(local.ciphertexts) == 3
    assert pooled.envelope.key_id == local.envelope.key_id == key_id(ctx)
    server = public_copy(ctx)
    verify_message(pooled, key_id(server))
    total = load_vectors(server, pooled.ciphertexts)
    for acc, v in zip(total, load_vectors(server, again.ciphertexts), strict=True):
        acc += v
    got = decrypt_sum(ctx, [v.serialize() for v in total], layout_of(update), 1 / 4, 4.0)
    for k in update:
        np.testing.assert_allclose(got[k], update[k], atol=1e-5)


@pytest.mark.parametrize("workers", [1, 0, "2", True])
def test_a_pool_needs_at_least_two_workers(workers):
    with pytest.raises(ValueError, match="workers >= 2"):
        EncryptionPool(make_context(), workers)
