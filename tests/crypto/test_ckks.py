"""CKKS parameters checked against the HE standard; contexts with and without the secret key."""

from __future__ import annotations

import pytest

from consortium.crypto.ckks import CKKSParameters, check_context, key_id, make_context, public_copy


def test_default_parameters_are_add_only_and_secure():
    p = CKKSParameters()
    assert (p.poly_modulus_degree, p.coeff_mod_bit_sizes, p.slots) == (8192, (60, 40), 4096)


@pytest.mark.parametrize("n, bits, bound", [(8192, (60, 60, 60, 60), 218), (4096, (60, 40, 40), 109), (2048, (30, 30), 54)])
def test_a_modulus_above_the_128_bit_bound_is_refused_naming_it(n, bits, bound):
    with pytest.raises(ValueError, match=f"above the 128-bit security bound of {bound} bits for poly_modulus_degree {n}"):
        CKKSParameters(poly_modulus_degree=n, coeff_mod_bit_sizes=bits, scale_bits=30)


@pytest.mark.parametrize("kwargs, name", [({"poly_modulus_degree": 1000}, "poly_modulus_degree"),
                                          ({"coeff_mod_bit_sizes": (60,)}, "two primes"),
                                          ({"scale_bits": 50}, "scale_bits")])
def test_other_bad_parameters_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CKKSParameters(**kwargs)


@pytest.mark.parametrize("symmetric", [True, False])
def test_public_copy_has_no_secret_key_and_the_same_key_id(symmetric):
    ctx = make_context(CKKSParameters(symmetric=symmetric))
    pub = public_copy(ctx)

    assert ctx.is_private() and not pub.is_private()
    assert key_id(ctx) == key_id(pub)
    assert key_id(make_context()) != key_id(ctx)


def test_a_server_context_with_a_secret_key_is_refused():
    ctx = make_context()
    with pytest.raises(ValueError, match="server must only ever have the public context"):
        check_context(ctx, want_secret=False)
    with pytest.raises(ValueError, match="a site needs the secret context"):
        check_context(public_copy(ctx), want_secret=True)
    check_context(ctx, want_secret=True)
    check_context(public_copy(ctx), want_secret=False)


@pytest.mark.parametrize("symmetric", [True, False])
def test_the_server_adds_what_a_site_encrypted_and_can_neither_decrypt_nor_under_symmetric_keys_encrypt(symmetric):
    import tenseal as ts

    ctx = make_context(CKKSParameters(symmetric=symmetric))
    server = public_copy(ctx)
    a = ts.ckks_vector_from(server, ts.ckks_vector(ctx, [1.0, 2.0]).serialize())
    a += ts.ckks_vector_from(server, ts.ckks_vector(ctx, [0.5, -1.0]).serialize())

    assert ts.ckks_vector_from(ctx, a.serialize()).decrypt() == pytest.approx([1.5, 1.0], abs=1e-6)
    with pytest.raises(ValueError, match="secret_key"):
        a.decrypt()
    if symmetric:  # the server cannot make a ciphertext: it cannot forge a site's contribution
        with pytest.raises(ValueError, match="doesn't support encryption"):
            ts.ckks_vector(server, [1.0])
