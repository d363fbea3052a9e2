"""The site's audit trail: a JSON Lines file in which every line is chained to the one before it.

Line ``n`` (counted from 1) is the canonical JSON (sorted keys, no spaces, ASCII, no NaN) of::

    {"seq": n, "time": "<UTC, ISO 8601>", "prev": <hash of line n-1>, "record": {...}, "sig": s, "hash": h}

where ``s`` is the writer's signature of the canonical JSON of ``{seq, time, prev, record}``
(:func:`signed_body`; :mod:`consortium.audit.signing`: the kit key, absent where the writer has no
kit, as in FLARE's simulator), ``h`` is the SHA-256 (hex) of the canonical JSON of the same object
without ``"hash"`` (so it covers the signature) and ``prev`` of line 1 is :data:`GENESIS`.
Editing a line breaks its own hash (or, if the editor recomputes it, the next line's ``prev``, and
without the kit key its signature); deleting or moving a line breaks the sequence.

A chain alone cannot show that its *last* lines were deleted: what is left is still a valid chain.
So a head file next to the trail (:data:`HEAD_FILE`) holds ``{"seq", "hash"}`` of the last line and
is replaced atomically after every append; the verifier (:mod:`consortium.audit.verify`) compares
the two. Whoever can rewrite both files consistently (rewrite a suffix and the head) is caught by the
signatures unless they hold the kit key, and by the server's copy of the site's heads
(:mod:`consortium.audit.anchors`) for everything the site sent before.

Writers: every job at a site runs in its own process, so :meth:`AuditTrail.append` holds an
exclusive ``fcntl`` lock on ``<trail>.lock``, checks that the trail still ends where its head says
(else :class:`TrailError`: nothing is appended to a damaged trail), appends one line with a single
write, fsyncs it, then replaces the head (write, fsync, rename), as the privacy ledger does.

Crash safety: a writer killed between the line and its head leaves the trail one line ahead of
its head. That trail verifies (and ``audit verify`` says "one unheaded line after a crash");
the next append first writes the head of that line and appends only once that worked, so there is
never more than one unheaded line. A head that cannot be written after its line raises
:class:`HeadNotWritten` (the line *is* recorded).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from consortium.fileio import atomic_write, exclusive_lock

TRAIL_FILE = "trail.jsonl"
HEAD_FILE = "trail.head.json"
GENESIS = "0" * 64
FIELDS = ("seq", "time", "prev", "record", "hash")
SIGNED = (*FIELDS, "sig")


class TrailError(RuntimeError):
    """The trail cannot be extended: it is unreadable or does not end where its head says."""


class HeadNotWritten(OSError):
    """The line was appended (and fsynced) as record ``link.seq`` but its head file was not written."""

    def __init__(self, link: Link, error: OSError) -> None:
        super().__init__(f"record {link.seq} was appended but its head file could not be written ({error})")
        self.link = link


def canonical_json(obj) -> str:
    """The one text form of ``obj`` that is hashed and written (ValueError for NaN or infinity)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def signed_body(entry: Mapping) -> bytes:
    """What a line's signature covers: the canonical JSON of its seq, time, prev and record."""
    return canonical_json({k: entry[k] for k in ("seq", "time", "prev", "record")}).encode("ascii")


def line_hash(entry: Mapping) -> str:
    """SHA-256 (hex) of a line's canonical JSON without its ``"hash"`` field."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Link:
    """Where the trail ends: the last line's sequence number and hash."""

    seq: int
    hash: str

    def to_dict(self) -> dict:
        return {"seq": self.seq, "hash": self.hash}


def parse_line(text: str) -> dict:
    """One trail line as a dict with the five fields (six when signed); ValueError saying what is wrong."""
    try:
        entry = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(entry, dict) or set(entry) not in (set(FIELDS), set(SIGNED)):
        raise ValueError(f"not a trail line: fields must be {list(FIELDS)}, and 'sig' when signed")
    if "sig" in entry and not isinstance(entry["sig"], str):
        raise ValueError("field 'sig' is not a string")
    if not isinstance(entry["seq"], int) or isinstance(entry["seq"], bool) or entry["seq"] < 1:
        raise ValueError(f"field 'seq' = {entry['seq']!r} is not a positive whole number")
    if not isinstance(entry["record"], dict):
        raise ValueError("field 'record' is not an object")
    return entry


def read_head(path: Path) -> Link | None:
    """The head file's link (None when there is none); ValueError for one that cannot be read."""
    if not path.exists():
        return None
    try:
        head = json.loads(path.read_text())
        return Link(int(head["seq"]), str(head["hash"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: head file cannot be read ({e})") from None


class AuditTrail:
    def __init__(self, folder: str | os.PathLike, signer=None) -> None:
        """Args: folder: the trail's folder (``<site workspace>/audit``), made on the first append;
        signer: a :class:`consortium.audit.signing.LineSigner` that signs every line (None: unsigned)."""
        self.folder = Path(folder)
        self.signer = signer
        self.path = self.folder / TRAIL_FILE
        self.head_path = self.folder / HEAD_FILE

    def _locked(self):
        return exclusive_lock(self.path)

    def _last_line(self) -> str | None:
        """The trail's last line (without its newline), read from the end; None for an empty trail."""
        if not self.path.exists():
            return None
        with open(self.path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return None
            pos, buf = size, b""
            while pos > 0 and buf.count(b"\n") < 2:
                step = min(65536, pos)
                pos -= step
                f.seek(pos)
                buf = f.read(step) + buf
        if not buf.endswith(b"\n"):
            raise TrailError(f"audit trail cannot be extended: {self.path}: its last line is truncated (no "
                             "newline); run `consortium audit verify`")
        return buf[:-1].rsplit(b"\n", 1)[-1].decode("ascii", errors="replace")

    def end(self) -> Link | None:
        """Where the trail ends, checked against its head; TrailError when they disagree."""
        return self._state()[0]

    def _state(self) -> tuple[Link | None, Link | None]:
        """(where the trail ends, what its head says), checked; TrailError when they disagree."""
        try:
            text = self._last_line()
            head = read_head(self.head_path)
            last, prev = None, None
            if text is not None:
                entry = parse_line(text)
                if canonical_json(entry) != text or line_hash(entry) != entry["hash"]:
                    raise ValueError(f"{self.path}: the last line was edited")
                last, prev = Link(entry["seq"], entry["hash"]), entry["prev"]
        except (OSError, ValueError) as e:
            raise TrailError(f"audit trail cannot be extended: {e}") from None
        if last == head or (last is not None and head is None and last.seq == 1):
            return last, head  # consistent (or the site stopped between writing line 1 and its head)
        if last is not None and head is not None and last.seq == head.seq + 1 and prev == head.hash:
            return last, head  # the site stopped between writing a line and its head
        raise TrailError(f"audit trail cannot be extended: {self.path} ends at {last} but its head "
                         f"{self.head_path} records {head}; run `consortium audit verify`")

    def append(self, record: Mapping, now: datetime | None = None) -> Link:
        """Append ``record`` (a JSON object) as the next line; the new end of the trail.

        Raises TrailError when the trail is damaged (nothing appended), ValueError when ``record``
        is not JSON (nothing appended), HeadNotWritten when the line was appended but not its head
        (accepted by the next append and by the verifier) and OSError when the disk refuses the line."""
        if not isinstance(record, Mapping):
            raise ValueError(f"an audit record must be a JSON object, got {type(record).__name__}")
        with self._locked():
            last, head = self._state()
            if last != head:  # one unheaded line after a crash: its head first, or nothing is appended
                try:
                    self._write_head(last)
                except OSError as e:
                    raise TrailError(f"audit trail cannot be extended: the head of record {last.seq} cannot be "
                                     f"written to {self.head_path} ({e}); nothing appended") from None
            entry = {"seq": last.seq + 1 if last else 1,
                     "time": (now or datetime.now(UTC)).isoformat(timespec="milliseconds"),
                     "prev": last.hash if last else GENESIS, "record": dict(record)}
            if self.signer is not None:
                entry["sig"] = self.signer.sign(signed_body(entry))
            entry["hash"] = line_hash(entry)
            line = (canonical_json(entry) + "\n").encode("ascii")
            with open(self.path, "ab") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            link = Link(entry["seq"], entry["hash"])
            try:
                self._write_head(link)
            except OSError as e:
                raise HeadNotWritten(link, e) from e
        return link

    def _write_head(self, link: Link) -> None:
        atomic_write(self.head_path, canonical_json(link.to_dict()) + "\n")
