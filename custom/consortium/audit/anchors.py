"""Cross-anchoring of the site and server audit trails. No nvflare import.

Every result a site sends carries, in the result header :data:`SITE_HEAD_HEADER`, the head of its
trail *after* the line that records that result (``result_sent``/``result_refused``/...: its record
number and hash; the line holds the digest of the result's content, which excludes headers, so the
head can be computed before it is attached). The server writes each head it receives into its own
trail as a ``site_head`` record (:func:`site_head_record`), or ``site_head_missing`` for a result
without one. Likewise every task the server sends carries the server trail's head in
:data:`SERVER_HEAD_HEADER`, which the site writes into its ``task_received`` line (``server_head``).

So a site trail rewritten after the fact (even by someone with the kit key) disagrees with the
server's copy of its heads, and a deleted one is shown deleted, not "never had one"
(:func:`cross_check`); a rewritten server trail disagrees with the sites' copies of its heads.
What is not caught: lines written after the last head a party sent, and lines a party forged with
its own key before sending the head that covers them.

Exported head list (``consortium audit export-heads``): JSON ``{"format": EXPORT_FORMAT, "heads":
[site_head records]}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from consortium.audit.chain import TRAIL_FILE, Link, parse_line

SITE_HEAD_HEADER = "consortium_site_trail_head"
SERVER_HEAD_HEADER = "consortium_server_trail_head"
EXPORT_FORMAT = "consortium-site-heads-1"
_HASH = re.compile(r"^[0-9a-f]{64}$")


def head_value(link: Link) -> dict:
    """The header value that carries a trail head."""
    return {"seq": link.seq, "hash": link.hash}


def parse_head(value) -> Link | None:
    """A carried head as a Link; None for anything that is not ``{"seq": n >= 1, "hash": 64 hex}``."""
    if not isinstance(value, dict) or set(value) != {"seq", "hash"}:
        return None
    seq, digest = value["seq"], value["hash"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not isinstance(digest, str) or not _HASH.match(digest):
        return None
    return Link(seq, digest)


def site_head_record(site: str, job: str, task: str, task_id: str, carried, return_code: str,
                     refusal: str | None = None) -> dict:
    """The server's record of the head a site's result carried (``site_head_missing`` without one,
    with the reason the site gave for withholding the result, if any)."""
    head = parse_head(carried)
    base = {"site": str(site), "job": str(job), "task": str(task), "task_id": str(task_id), "return_code": str(return_code)}
    if head is None:
        return {"event": "site_head_missing", **base, "refusal": None if refusal is None else str(refusal)[:500],
                "detail": "no trail head in the result" if carried is None else "the result's trail head is malformed"}
    return {"event": "site_head", **base, **head_value(head)}


def trail_entries(folder: Path) -> list[tuple[int, dict]]:
    """(line number, line) of each parseable line of ``<folder>/trail.jsonl`` (none if it is absent)."""
    path = Path(folder) / TRAIL_FILE
    if not path.is_file():
        return []
    out = []
    for n, text in enumerate(path.read_text(encoding="ascii", errors="replace").splitlines(), 1):
        try:
            out.append((n, parse_line(text)))
        except ValueError:
            continue
    return out


def heads_in_trail(server_folder: Path) -> list[dict]:
    """Every ``site_head`` record of the server's trail."""
    return [e["record"] for _, e in trail_entries(server_folder) if e["record"].get("event") == "site_head"]


def export_heads(server_folder: Path, site: str | None = None) -> dict:
    heads = [h for h in heads_in_trail(server_folder) if site is None or h.get("site") == site]
    return {"format": EXPORT_FORMAT, "heads": heads}


def load_exported(path: Path) -> list[dict]:
    """The heads of an exported head list; ValueError naming the file and what is wrong."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a head list ({e})") from None
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT or not isinstance(data.get("heads"), list):
        raise ValueError(f"{path}: not a head list: field 'format' must be {EXPORT_FORMAT!r} with a list 'heads'")
    return [h for h in data["heads"] if isinstance(h, dict)]


def _where(h: dict) -> str:
    return f"record {h.get('seq')} (job {h.get('job')}, task {h.get('task')})"


def cross_check(site: str, site_folder: Path, heads: Iterable[dict], server_folder: Path | None = None) -> list[str]:
    """Each disagreement between ``site``'s trail at ``site_folder`` and the server: a head the
    server holds that the site's trail no longer has (deleted) or has with another hash
    (rewritten); with ``server_folder``, each server head the site recorded that the server's
    trail no longer has. Empty: they agree."""
    mine = [h for h in heads if h.get("site") == site and parse_head({"seq": h.get("seq"), "hash": h.get("hash")})]
    entries = trail_entries(site_folder)
    if mine and not (Path(site_folder) / TRAIL_FILE).exists():
        jobs = sorted({str(h.get("job")) for h in mine})
        last = max(mine, key=lambda h: h["seq"])
        return [f"deleted: the server holds {len(mine)} heads of {site}'s trail (up to {_where(last)}; jobs "
                f"{', '.join(jobs)}), but {Path(site_folder) / TRAIL_FILE} does not exist"]
    by_seq = {e["seq"]: (n, e) for n, e in entries}
    problems = []
    for h in mine:
        found = by_seq.get(h["seq"])
        if found is None:
            problems.append(f"{_where(h)}: deleted: the server holds its head, the site's trail has no such record")
        elif found[1]["hash"] != h["hash"]:
            problems.append(f"line {found[0]}: rewritten: {_where(h)} has hash {found[1]['hash'][:16]}..., the server's "
                            f"copy of that head has {h['hash'][:16]}...")
    if server_folder is not None:
        server = {e["seq"]: e["hash"] for _, e in trail_entries(server_folder)}
        for n, e in entries:
            carried = parse_head(e["record"].get("server_head"))
            if carried is not None and server.get(carried.seq) != carried.hash:
                problems.append(f"line {n} (job {e['record'].get('job')}): the server trail's record {carried.seq} is not "
                                "the one this task carried: the server's trail was rewritten")
    return problems
