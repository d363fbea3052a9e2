"""The registry of an encrypted (HE) job: each round's encrypted sum, ciphertext only, with its
SHA-256 and who made it, and the layout check the server makes before it adds a site's ciphertexts.

The server never holds a model in plaintext (:mod:`consortium.flare.he.server`), so this registry
keeps what it has: ``encrypted_rounds/round_NNNN.ckks`` (the round's ciphertexts, each prefixed
with its length as 8 big-endian bytes) and one line of ``encrypted_rounds/index.jsonl`` per round::

    {"version": round + 1, "round", "file", "sha256", "envelope", "scale", "canary",
     "contributors", "rejected", "pooled_score", "metric"}

(the last four from the round's :class:`~consortium.protocol.round_record.RoundRecord`, when the
record is of that round). A site applies the versions in order to the initial model. Pure: no FLARE
or TenSEAL import; ciphertexts are bytes here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from consortium.protocol.round_record import RoundRecord

FOLDER = "encrypted_rounds"
INDEX = "index.jsonl"


def check_layout(sizes: Sequence[int], want: int, slots: int) -> None:
    """A site's update as ciphertexts of ``sizes`` slots: ``want`` of them (the model's values
    and the canary, :func:`~consortium.crypto.packed.expected_slots`), every one full (``slots``)
    but the last, which holds 1..slots. ValueError saying what arrived, before any is added."""
    if len(sizes) != want or any(n != slots for n in sizes[:-1]) or not (sizes and 0 < sizes[-1] <= slots):
        raise ValueError(f"{len(sizes)} ciphertexts of sizes {sorted(set(sizes))}, the model needs {want} of {slots} slots")


def pack(ciphertexts: Sequence[bytes]) -> bytes:
    """The round file's bytes: each ciphertext prefixed with its length (8 bytes, big-endian)."""
    return b"".join(len(c).to_bytes(8, "big") + c for c in ciphertexts)


class CiphertextRegistry:
    def __init__(self, folder: Path | str) -> None:
        """``folder``: the job's ``encrypted_rounds`` (made on the first save)."""
        self.folder = Path(folder)
        self.index = self.folder / INDEX

    def add(self, round_number: int, ciphertexts: Sequence[bytes], envelope: Mapping, scale: float, canary: float,
            record: RoundRecord | None = None) -> dict | None:
        """Save round ``round_number``'s encrypted sum and index it; None (nothing written) when that
        round is saved already. ``record``: the round's record, for who made it (ignored when it is
        another round's)."""
        path = self.folder / f"round_{round_number:04d}.ckks"
        if path.exists():
            return None
        self.folder.mkdir(exist_ok=True)
        data = pack(ciphertexts)
        path.write_bytes(data)
        made_by = {"contributors": record.contributors, "rejected": record.rejected, "pooled_score": record.pooled_score,
                   "metric": record.metric} if record is not None and record.round == round_number else {}
        entry = {"version": round_number + 1, "round": round_number, "file": path.name,
                 "sha256": hashlib.sha256(data).hexdigest(), "envelope": dict(envelope), "scale": scale, "canary": canary,
                 **made_by}
        with open(self.index, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        return entry
