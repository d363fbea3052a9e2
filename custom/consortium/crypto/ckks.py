"""CKKS contexts for encrypted aggregation (TenSEAL), checked against the HE standard's security table.

The consortium's scheme is add-only: sites pre-weight their update in plaintext, encrypt it, the
server adds ciphertexts and never multiplies, and the sites apply the plaintext scale after they
decrypt. One data level suffices, so the default modulus chain is ``[60, 40]`` (N = 8192, scale
2^40): ~8x the fp32 bytes per value, against ~14x for FLARE's ``[60, 40, 40]``.

Encryption is symmetric (under the secret key) by default: the sites hold the secret key anyway,
a symmetric CKKS encryption costs a third of a public-key one at N = 8192 (no multiplication by the
public key, one error sample instead of three; ``benchmarks/he_cost.py``), is as secure
(IND-CPA under RLWE), adds in the same way, and the server's context then cannot encrypt at all:
it can neither read nor forge a site's contribution. ``symmetric=False`` gives TenSEAL's public-key
encryption, which a context provisioned before this default keeps.

Security: the total coefficient-modulus bits must not exceed the 128-bit-classical bound of the
Homomorphic Encryption Standard (Albrecht et al. 2018, table 1, ternary secrets) for the ring
degree N; an insecure choice is an error naming the bound.

Key custody (what docs/security.md states): every site holds the same secret key (provisioned once, kept
in the provisioning state); the server holds only the public context. The server alone cannot
decrypt; a site colluding with the server can.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass

import tenseal as ts

# HE standard, 128-bit classical security, max log2(q) per ring degree N
MAX_COEFF_BITS_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}


@dataclass(frozen=True)
class CKKSParameters:
    """Args:
    poly_modulus_degree: ring degree N (slots per ciphertext = N / 2).
    coeff_mod_bit_sizes: the modulus chain; add-only aggregation needs two primes.
    scale_bits: log2 of the encoding scale (precision ~ 2^-scale_bits relative).
    symmetric: sites encrypt under the secret key (default) rather than the public key.
    """

    poly_modulus_degree: int = 8192
    coeff_mod_bit_sizes: tuple[int, ...] = (60, 40)
    scale_bits: int = 40
    symmetric: bool = True

    def __post_init__(self) -> None:
        bound = MAX_COEFF_BITS_128.get(self.poly_modulus_degree)
        if bound is None:
            raise ValueError(f"poly_modulus_degree must be one of {sorted(MAX_COEFF_BITS_128)}, got {self.poly_modulus_degree!r}")
        if len(self.coeff_mod_bit_sizes) < 2:
            raise ValueError(f"coeff_mod_bit_sizes needs at least two primes (TenSEAL refuses one), got {self.coeff_mod_bit_sizes!r}")
        total = sum(self.coeff_mod_bit_sizes)
        if total > bound:
            raise ValueError(f"coeff_mod_bit_sizes {list(self.coeff_mod_bit_sizes)} total {total} bits, above the 128-bit "
                             f"security bound of {bound} bits for poly_modulus_degree {self.poly_modulus_degree}")
        if not 20 <= self.scale_bits <= min(self.coeff_mod_bit_sizes[1:]):
            raise ValueError(f"scale_bits must be in [20, {min(self.coeff_mod_bit_sizes[1:])}] (the data primes), got {self.scale_bits!r}")

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2


def make_context(params: CKKSParameters = CKKSParameters()) -> ts.Context:
    """A fresh secret context (keep it at the sites only)."""
    kind = ts.ENCRYPTION_TYPE.SYMMETRIC if params.symmetric else ts.ENCRYPTION_TYPE.ASYMMETRIC
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=params.poly_modulus_degree,
                     coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes), encryption_type=kind)
    ctx.global_scale = 2.0**params.scale_bits
    return ctx


def key_id_of(public_context: bytes) -> str:
    """The consortium's key id: a short fingerprint of the server's (public) context as provisioned.
    Every participant computes it from those same bytes (sites get a copy in their kit): a context
    loaded with its secret key regenerates its relinearisation keys, and a symmetric one has no
    public key, so no key material of a loaded secret context is stable enough to name the key."""
    return hashlib.sha256(public_context).hexdigest()[:16]


_KEY_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def bind_key_id(ctx: ts.Context, public_context: bytes) -> ts.Context:
    """Name ``ctx``'s key by the provisioned public context ``public_context`` (see :func:`key_id_of`)."""
    _KEY_IDS[ctx] = key_id_of(public_context)
    return ctx


def public_copy(ctx: ts.Context) -> ts.Context:
    """The context without its secret key (and without Galois keys, which an add-only server never
    uses): what the server gets. Both carry the same :func:`key_id`."""
    data = ctx.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=True)
    pub = ts.context_from(data)
    _KEY_IDS[pub] = _KEY_IDS.setdefault(ctx, key_id_of(data))
    return pub


def key_id(ctx: ts.Context) -> str:
    """The key id bound to ``ctx`` (by :func:`bind_key_id` when it was loaded, or by
    :func:`public_copy`); an unbound public context is named by its own bytes."""
    if ctx not in _KEY_IDS:
        if ctx.is_private():
            public_copy(ctx)
        else:
            bind_key_id(ctx, ctx.serialize())
    return _KEY_IDS[ctx]


def check_context(ctx: ts.Context, want_secret: bool) -> None:
    """ValueError unless ``ctx`` is CKKS within the 128-bit bound, and holds a secret key exactly
    when ``want_secret`` (a server context with a secret key could decrypt every site's update)."""
    key_data = ctx.data.seal_context().key_context_data()
    n, bits = int(key_data.parms().poly_modulus_degree()), int(key_data.total_coeff_modulus_bit_count())
    bound = MAX_COEFF_BITS_128.get(n)
    if bound is None or bits > bound:
        raise ValueError(f"HE context: {bits} coefficient-modulus bits at poly_modulus_degree {n} exceeds the 128-bit "
                         f"security bound ({bound} bits)")
    if ctx.is_private() != want_secret:
        raise ValueError("HE context holds a secret key: the server must only ever have the public context"
                         if ctx.is_private() else "HE context has no secret key: a site needs the secret context to decrypt")
