"""Flat CKKS packing of a whole model update, its envelope, and the server's add-only algebra.

A site's update ``{name: array}`` is flattened (names sorted) into one vector, multiplied in
plaintext by the site's coefficient ``c_k`` (FedAvg ``n_k``, FedNova ``n_k / a_k``), followed by
one canary slot holding ``c_k``, and cut into full ciphertexts of N/2 slots. Each ciphertext is
serialised without its context (the receiver holds the context), so a message is ~8x the fp32
bytes with N = 8192, [60, 40] -- FLARE's HE sends the context again with every tensor.

The envelope travels in plaintext beside the ciphertexts: key id, layout digest, ciphertext count
and the SHA-256 of the bytes. The server checks it, adds ciphertexts (:class:`CiphertextSum`,
never a multiplication, never a decryption) and sends the sum back with the plaintext scale and
the expected canary ``sum_k c_k``; each site decrypts, checks the canary and applies
``scale * sum``. The canary catches a ciphertext made under another key and a site whose weighting
settings differ from the server's (it wrote another ``c_k``); it does not catch a dishonest site
that scales its update one way and writes the expected ``c_k`` in the canary slot: that is what
the sites' own plaintext checks and the envelope's metadata are for, and a site colluding against
the round is outside this scheme's threat model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import tenseal as ts

from consortium.crypto.ckks import key_id
from consortium.crypto.pool import EncryptionPool, encrypt_chunks

Layout = tuple[tuple[str, tuple[int, ...], str], ...]
CANARY_TOLERANCE = 1e-3  # absolute, on sum_k c_k (CKKS error at scale 2^40 is ~1e-7 here)


def layout_of(update: Mapping[str, np.ndarray]) -> Layout:
    return tuple((k, tuple(int(d) for d in np.shape(v)), str(np.asarray(v).dtype)) for k, v in sorted(update.items()))


def layout_digest(layout: Layout) -> str:
    return hashlib.sha256(repr(layout).encode()).hexdigest()[:16]


def n_values(layout: Layout) -> int:
    return int(sum(np.prod(shape, dtype=np.int64) for _, shape, _ in layout))


def flatten(update: Mapping[str, np.ndarray], layout: Layout) -> np.ndarray:
    return np.concatenate([np.asarray(update[k], dtype=np.float64).ravel() for k, _, _ in layout]) if layout else np.zeros(0)


def unflatten(flat: np.ndarray, layout: Layout) -> dict[str, np.ndarray]:
    out, i = {}, 0
    for name, shape, dtype in layout:
        size = int(np.prod(shape, dtype=np.int64))
        out[name] = flat[i:i + size].reshape(shape).astype(dtype)
        i += size
    if i != len(flat):
        raise ValueError(f"{len(flat)} values for a layout of {i}")
    return out


@dataclass(frozen=True)
class Envelope:
    key_id: str
    layout_digest: str
    count: int  # ciphertexts
    sha256: str  # of the ciphertext bytes, in order

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> Envelope:
        try:
            return cls(str(d["key_id"]), str(d["layout_digest"]), int(d["count"]), str(d["sha256"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"HE envelope {dict(d) if isinstance(d, Mapping) else d!r} is incomplete: {e}") from None


def digest(ciphertexts: Sequence[bytes]) -> str:
    h = hashlib.sha256()
    for c in ciphertexts:
        h.update(len(c).to_bytes(8, "big"))
        h.update(c)
    return h.hexdigest()


@dataclass(frozen=True)
class EncryptedMessage:
    ciphertexts: list[bytes]
    envelope: Envelope


def encrypt_update(ctx: ts.Context, update: Mapping[str, np.ndarray], coefficient: float,
                   pool: EncryptionPool | None = None) -> EncryptedMessage:
    """``Enc(c * flat(update) ++ [c])`` in full ciphertexts of N/2 slots, over ``pool``'s worker
    processes when one is given (it must hold the same context)."""
    if not (np.isfinite(coefficient) and coefficient > 0):
        raise ValueError(f"coefficient must be a positive number, got {coefficient!r}")
    layout = layout_of(update)
    vec = np.append(flatten(update, layout) * float(coefficient), float(coefficient))
    slots = ctx.data.seal_context().first_context_data().parms().poly_modulus_degree() // 2
    chunks = [vec[i:i + slots] for i in range(0, len(vec), slots)]
    cts = pool.encrypt(chunks) if pool is not None else encrypt_chunks(ctx, chunks)
    return EncryptedMessage(cts, Envelope(key_id(ctx), layout_digest(layout), len(cts), digest(cts)))


def verify_message(msg: EncryptedMessage, want_key: str, want_layout: str | None = None) -> None:
    """ValueError naming what does not match: key, layout, count or the bytes' digest."""
    env = msg.envelope
    if env.key_id != want_key:
        raise ValueError(f"ciphertexts under key {env.key_id}, this consortium's key is {want_key}")
    if want_layout is not None and env.layout_digest != want_layout:
        raise ValueError(f"layout digest {env.layout_digest} differs from the model's {want_layout}")
    if env.count != len(msg.ciphertexts):
        raise ValueError(f"envelope announces {env.count} ciphertexts, {len(msg.ciphertexts)} arrived")
    if digest(msg.ciphertexts) != env.sha256:
        raise ValueError("ciphertext bytes do not match the envelope's SHA-256 (truncated or altered)")


def load_vectors(ctx: ts.Context, ciphertexts: Sequence[bytes]) -> list[ts.CKKSVector]:
    try:
        return [ts.ckks_vector_from(ctx, c) for c in ciphertexts]
    except Exception as e:  # TenSEAL raises ValueError/RuntimeError for a corrupt stream
        raise ValueError(f"ciphertext does not parse under this context: {e}") from None


def expected_slots(layout: Layout, slots: int) -> int:
    """Ciphertexts for a layout: its values plus the canary slot."""
    return -(-(n_values(layout) + 1) // slots)


@dataclass(frozen=True)
class EncryptedSum:
    """A round's encrypted sum with what the sites need to use it."""

    ciphertexts: list[ts.CKKSVector]
    scale: float  # plaintext factor the sites apply after decrypting
    canary: float  # expected sum_k c_k


class CiphertextSum:
    """The :class:`~consortium.aggregation.combine.UpdateAlgebra` of the encrypted round: addition
    only. A coefficient other than 1 is refused (the sites pre-weight; the server never multiplies)."""

    @staticmethod
    def _one(c: float) -> None:
        if c != 1.0:
            raise ValueError(f"the encrypted round only adds: got coefficient {c!r} (sites pre-weight their update)")

    def scaled(self, x: list[ts.CKKSVector], c: float) -> list[ts.CKKSVector]:
        self._one(c)
        return list(x)

    def add_scaled(self, acc: list[ts.CKKSVector], x: list[ts.CKKSVector], c: float) -> list[ts.CKKSVector]:
        self._one(c)
        if len(acc) != len(x):
            raise ValueError(f"{len(x)} ciphertexts, the others have {len(acc)}")
        for a, b in zip(acc, x, strict=True):
            a += b
        return acc

    def finish(self, acc: list[ts.CKKSVector], scale: float) -> EncryptedSum:
        return EncryptedSum(acc, float(scale), float("nan"))


def decrypt_sum(ctx: ts.Context, ciphertexts: Sequence[bytes], layout: Layout, scale: float, canary: float) -> dict[str, np.ndarray]:
    """``scale * Dec(sum)`` as ``{name: array}``; ValueError when the canary is not ``canary``
    (a ciphertext under another key, or a site whose weight does not match its metadata)."""
    vectors = load_vectors(ctx, ciphertexts)
    values = np.concatenate([np.asarray(v.decrypt()) for v in vectors])
    n = n_values(layout)
    if len(values) < n + 1:
        raise ValueError(f"decrypted {len(values)} values, the layout needs {n} and a canary")
    if not abs(values[n] - canary) <= CANARY_TOLERANCE * max(1.0, abs(canary)):
        raise ValueError(f"canary check failed: decrypted {values[n]:.6g}, expected {canary:.6g} (a ciphertext under "
                         "another key, or a site's weight that does not match its metadata); update not applied")
    return unflatten(values[:n] * float(scale), layout)
