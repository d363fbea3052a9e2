"""Verify a site's audit trail (:mod:`consortium.audit.chain`): the first line that was edited,
deleted, moved or cut off, by its line number in the file.

Every line is checked in file order; the first failure is reported:

* ``not JSON`` / ``malformed`` / ``truncated``: the line does not parse, is not a trail line, or
  the file does not end with a newline;
* ``edited``: the line is not byte for byte the canonical JSON of its content, its content does not
  match its hash, or (the hash recomputed by the editor) the next line's ``prev`` does not match it;
* ``reordered``: the line holds a record whose number belongs elsewhere (and the record expected
  here is found later in the file), or a record already seen (``duplicated``);
* ``deleted``: the record expected here is missing (the numbers jump), or the trail ends before the
  record its head file names (the last lines were deleted);
* ``head``: the head file is missing, unreadable or names a record the trail cannot explain;
* with the writer's public key (:mod:`consortium.audit.signing`): ``unsigned`` (a line without a
  signature) or ``forged`` (a signature that does not verify): a line written or rewritten by
  someone without the kit key, even with every hash recomputed and the head updated.

A trail that ends one line after its head (the writer was stopped between the line and its head)
is valid and flagged ``unheaded``: "one unheaded line after a crash"; the next append writes the
head. Without a public key only the hash chain is checked: anyone who can write the files can
then append or rewrite lines undetected (``signed`` is False).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from consortium.audit.chain import (
    GENESIS,
    HEAD_FILE,
    TRAIL_FILE,
    Link,
    canonical_json,
    line_hash,
    parse_line,
    read_head,
    signed_body,
)
from consortium.audit.signing import signature_valid


@dataclass(frozen=True)
class Problem:
    """The first bad line: its number in the file (1-based), a kind from the module docstring, why."""

    line: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class Verification:
    """The outcome: number of lines, where the trail ends, the first problem (None: valid), whether
    every line's signature was checked, and whether the last line has no head (after a crash)."""

    lines: int
    end: Link | None
    problem: Problem | None
    signed: bool = False
    unheaded: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_trail(folder: str | Path, public_key=None) -> Verification:
    """Verify ``<folder>/trail.jsonl`` against ``<folder>/trail.head.json`` (and every line's
    signature against ``public_key``, unless None); FileNotFoundError when there is neither."""
    folder = Path(folder)
    trail, head_file = folder / TRAIL_FILE, folder / HEAD_FILE
    if not trail.exists() and not head_file.exists():
        raise FileNotFoundError(f"{trail}: no audit trail here")
    text = trail.read_bytes().decode("ascii", errors="replace") if trail.exists() else ""
    try:
        head = read_head(head_file)
    except ValueError as e:
        return Verification(_count(text), None, Problem(max(_count(text), 1), "head", str(e)))
    if head is None:
        found = verify_text(text, None, public_key)
        if not found.ok:
            return found
        if found.lines == 1:  # stopped between line 1 and its first head
            return Verification(found.lines, found.end, None, found.signed, unheaded=True)
        return Verification(found.lines, found.end, Problem(
            max(found.lines, 1), "head", f"{head_file} is missing: whether lines were deleted at the end cannot be checked"))
    return verify_text(text, head, public_key)


def _count(text: str) -> int:
    return len(text.splitlines())


def verify_text(text: str, head: Link | None, public_key=None) -> Verification:
    """Verify a trail's content; ``head`` (None: not checked) is where its head file says it ends;
    ``public_key`` (None: not checked, the hash chain only) the writer's, which signed every line."""
    raw = text.split("\n")
    complete = raw[-1] == ""
    if complete:
        raw.pop()
    n = len(raw)
    entries: list[dict | None] = []
    errors: dict[int, str] = {}
    for i, line in enumerate(raw, 1):
        try:
            entries.append(parse_line(line))
        except ValueError as e:
            entries.append(None)
            errors[i] = str(e)
    position = {e["seq"]: i for i, e in reversed(list(enumerate(entries, 1))) if e is not None}
    expected, prev, seen = 1, GENESIS, {}
    for i, (line, entry) in enumerate(zip(raw, entries, strict=True), 1):
        if i == len(raw) and not complete:
            return _bad(n, i, "truncated", "the last line has no newline: its write was cut off, or it was edited")
        if entry is None:
            return _bad(n, i, "not JSON" if errors[i].startswith("not JSON") else "malformed", errors[i])
        if canonical_json(entry) != line:
            return _bad(n, i, "edited", "the line is not in the form it was written in")
        if line_hash(entry) != entry["hash"]:
            return _bad(n, i, "edited", "its content does not match its hash")
        seq = entry["seq"]
        if seq in seen:
            return _bad(n, i, "reordered", f"record {seq} is duplicated (also at line {seen[seq]})")
        if seq > expected:
            if position.get(expected, 0) > i:
                return _bad(n, i, "reordered", f"record {seq} is here but record {expected} is at line {position[expected]}")
            missing = f"record {expected}" if seq == expected + 1 else f"records {expected} to {seq - 1}"
            return _bad(n, i, "deleted", f"{missing} missing before this line (the numbers jump from {expected - 1} to {seq})")
        if seq < expected:
            return _bad(n, i, "reordered", f"record {seq} comes after record {expected - 1}")
        if entry["prev"] != prev:
            if i == 1:
                return _bad(n, 1, "edited", "the first line does not start the chain")
            return _bad(n, i - 1, "edited", f"its hash was recomputed after an edit: line {i} links to another hash")
        if public_key is not None and "sig" not in entry:
            return _bad(n, i, "unsigned", "the line has no signature, though its writer signs every line")
        if public_key is not None and not signature_valid(public_key, signed_body(entry), entry["sig"]):
            return _bad(n, i, "forged", "its signature does not verify against the writer's certificate: "
                                        "it was not written with the kit key")
        seen[seq], expected, prev = i, seq + 1, entry["hash"]
    end = Link(expected - 1, prev) if raw else None
    signed = public_key is not None
    if head is None or head == end:
        return Verification(n, end, None, signed)
    if end is not None and end.seq == head.seq + 1 and entries[-1]["prev"] == head.hash:
        return Verification(n, end, None, signed, unheaded=True)  # stopped between a line and its head
    last = end.seq if end else 0
    if head.seq > last:
        missing = f"record {head.seq}" if head.seq == last + 1 else f"records {last + 1} to {head.seq}"
        return _bad(n, n + 1, "deleted", f"the trail ends at record {last} but its head names record {head.seq}: "
                                         f"{missing} deleted at the end")
    if head.seq == last:
        return _bad(n, n, "edited", "its hash was recomputed after an edit: it differs from the head's")
    return _bad(n, head.seq + 1, "head", f"the head names record {head.seq} but the trail goes on to record {last}")


def _bad(lines: int, line: int, kind: str, detail: str) -> Verification:
    return Verification(lines, None, Problem(line, kind, detail))
