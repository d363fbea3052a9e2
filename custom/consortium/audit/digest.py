"""SHA-256 of a result's content, the same on every machine, for the audit trail.

A FLARE result is a dict tree (the DXO: kind, data, meta) of strings, numbers, NumPy arrays and
bytes (HE ciphertexts). :func:`content_sha256` hashes an unambiguous, type-tagged encoding of that
tree, never its values in the clear: a trail line holds the digest, not the data.

Encoding (each item prefixed by a one-byte tag, lengths as decimal ASCII followed by ``:``):
``N`` None, ``T``/``F`` booleans, ``i<digits>;`` integers, ``f`` + IEEE-754 big-endian double,
``s<len>:<utf-8>``, ``b<len>:<bytes>``, ``a<dtype>:<shape>:<len>:<C-order bytes>`` arrays (NumPy
scalars and anything with ``__array__``, e.g. CPU tensors, as arrays), ``x<len>:<type><len>:<bytes>``
TenSEAL objects (FLARE's own HE filters put CKKS vectors in a result) by their serialisation,
``l<n>:`` + items for lists and tuples, ``d<n>:`` + (key, value) pairs ordered by the encoding of
their keys for dicts.
Any other type, and object arrays (whose bytes are pointers), raise TypeError naming the path.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping

import numpy as np


def content_sha256(value) -> str:
    """Hex SHA-256 of ``value``'s canonical encoding (see the module docstring)."""
    h = hashlib.sha256()
    _encode(value, h.update, "$")
    return h.hexdigest()


def _encoded(value, path: str) -> bytes:
    parts: list[bytes] = []
    _encode(value, parts.append, path)
    return b"".join(parts)


def _encode(value, out, path: str) -> None:
    if value is None:
        out(b"N")
    elif isinstance(value, bool):
        out(b"T" if value else b"F")
    elif isinstance(value, int):
        out(b"i%d;" % value)
    elif isinstance(value, float):
        out(b"f" + struct.pack(">d", value))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out(b"s%d:" % len(raw) + raw)
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        out(b"b%d:" % len(raw) + raw)
    elif isinstance(value, Mapping):
        items = sorted(((_encoded(k, f"{path}.<key>"), v, k) for k, v in value.items()), key=lambda t: t[0])
        out(b"d%d:" % len(items))
        for key, v, k in items:
            out(key)
            _encode(v, out, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        out(b"l%d:" % len(value))
        for i, v in enumerate(value):
            _encode(v, out, f"{path}[{i}]")
    elif isinstance(value, np.ndarray | np.generic) or hasattr(value, "__array__"):
        _encode_array(np.asarray(value), out, path)
    elif type(value).__module__.split(".")[0] == "tenseal" and callable(getattr(value, "serialize", None)):
        raw, name = value.serialize(), type(value).__qualname__.encode()  # FLARE's own HE results carry CKKS vectors
        out(b"x%d:" % len(name) + name + b"%d:" % len(raw) + raw)
    else:
        raise TypeError(f"{path}: cannot digest a {type(value).__module__}.{type(value).__qualname__}")


def _encode_array(a: np.ndarray, out, path: str) -> None:
    if a.dtype.hasobject:
        raise TypeError(f"{path}: cannot digest an array of Python objects (dtype {a.dtype})")
    a = np.ascontiguousarray(a)
    shape = ",".join(str(n) for n in a.shape).encode()
    out(b"a" + a.dtype.str.encode() + b":" + shape + b":%d:" % a.nbytes)
    out(a.data if a.nbytes else b"")
