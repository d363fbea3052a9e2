"""Checking a site's or the server's audit trail (``<workspace>/audit/trail.jsonl``,
:mod:`consortium.audit`): its hash chain, every line's signature against the kit certificate
(``startup/client.crt`` or ``server.crt``, itself checked against the root CA), at the server every
job audit log kept under ``audit/jobs/``, and against the server's copy of the site's trail heads
(:mod:`consortium.audit.anchors`); and the server's head list, written for a site to be checked
away from the server.

A :class:`Verdict`'s code: 0 intact (its lines say the number of lines, the last hash, who signed,
or plainly that the trail is UNSIGNED, and "one unheaded line after a crash" when the writer
stopped between a line and its head); 1 the first edited, deleted, reordered, unsigned or forged
line, each kept job audit log missing or changed, each head the server holds that the site's
trail no longer has or has rewritten, a trail deleted where the server holds heads of it; 2 no
trail, and no record of one elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from consortium.audit.anchors import cross_check, export_heads, heads_in_trail, load_exported, trail_entries
from consortium.audit.chain import TRAIL_FILE
from consortium.audit.server_trail import kept_file_problems
from consortium.audit.signing import ROOT_CA, common_name, kit_certificate
from consortium.audit.verify import verify_trail
from consortium.fileio import atomic_write

AUDIT_FOLDER = "audit"  # consortium.provisioning.privacy_scopes.AUDIT_COMPONENT's folder


@dataclass
class Verdict:
    """An exit code, the lines for stdout (``said``) and those for stderr (``problems``)."""
    code: int = 0
    said: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def trail_folder(path: Path) -> Path:
    """The audit folder for a site workspace, an audit folder or a trail file."""
    if path.is_file():
        return path.parent
    return path if (path / TRAIL_FILE).exists() else path / AUDIT_FOLDER


def _kit(path: Path, folder: Path) -> Path:
    return path if folder == path / AUDIT_FOLDER else folder.parent


def _signed(folder: Path) -> bool:
    return any("sig" in e for _, e in trail_entries(folder))


def write_heads(server_workspace: Path, site: str | None, out: Path | None) -> str:
    """The site trail heads the server received, as JSON: written to ``out`` (returns a line
    saying so) or returned as the text to print."""
    data = export_heads(trail_folder(server_workspace), site)
    text = json.dumps(data, indent=1) + "\n"
    if out is None:
        return text
    atomic_write(out, text)
    return f"{out}: {len(data['heads'])} heads\n"


def verify(path: Path, against: Path | None = None, kit: Path | None = None, site: str | None = None) -> Verdict:
    """Check the trail of ``path`` (a workspace, an audit folder or a trail file); ``against``: the
    server's workspace or an exported head list. KitKeyError: a kit whose certificate is not the root CA's."""
    folder = trail_folder(path)
    kit = kit or _kit(path, folder)
    trail = folder / TRAIL_FILE
    server = trail_folder(against) if against is not None and against.is_dir() else None
    root_ca = server.parent / "startup" / ROOT_CA if server is not None and (server.parent / "startup" / ROOT_CA).is_file() else None
    cert = kit_certificate(kit, root_ca)
    name = site or (common_name(cert) if cert is not None else kit.name)
    heads = None
    if against is not None:
        heads = heads_in_trail(server) if server is not None else load_exported(against)
        if server is not None and (refused := _server_problem(server)):
            return Verdict(1, problems=[refused])
    if not trail.exists() and not (folder / "trail.head.json").exists():
        problems = cross_check(name, folder, heads or [])
        if problems:
            return Verdict(1, problems=[f"{trail}: NOT intact: {problems[0]}"])
        return Verdict(2, problems=[f"audit verify: {trail}: no audit trail here" + ("" if heads is not None else
                                    " (give --against SERVER_WORKSPACE to tell a deleted trail from none)")])
    if cert is None and _signed(folder):
        return Verdict(1, problems=[f"{trail}: NOT checked: its lines are signed but {kit} holds no kit certificate; give --kit"])
    result = verify_trail(folder, cert.public_key() if cert is not None else None)
    if not result.ok:
        return Verdict(1, problems=[f"{trail}: NOT intact: {result.problem}"])
    problems = [f"kept file NOT intact: {p}" for p in kept_file_problems(folder)]
    if heads is not None:
        problems += [f"NOT intact against the server: {p}" for p in cross_check(name, folder, heads, server)]
    if problems:
        return Verdict(1, problems=[f"{trail}: {p}" for p in problems])
    if result.end is None:
        return Verdict(0, said=[f"{trail}: intact and empty"])
    signer = (f"every line signed by {common_name(cert)!r} (certificate issued by {root_ca or kit / 'startup' / ROOT_CA})"
              if cert is not None else "UNSIGNED: no kit certificate (FLARE's simulator?): only the hash chain is "
                                       "checked, and anyone who can write these files could have rewritten it")
    said = [f"{trail}: intact, {result.lines} lines; last record {result.end.seq}, hash {result.end.hash}; {signer}"]
    if result.unheaded:
        said.append(f"{trail}: one unheaded line after a crash: record {result.end.seq} has no head yet (the next record "
                    "writes it)")
    if heads is not None:
        mine = [h for h in heads if h.get("site") == name]
        said.append(f"{trail}: agrees with the server's {len(mine)} heads of {name}'s trail" +
                    (f" (last: record {max(h['seq'] for h in mine)})" if mine else ""))
    return Verdict(0, said=said)


def _server_problem(server: Path) -> str | None:
    """Why the server's own trail (``server``: its audit folder) proves nothing, or None."""
    cert = kit_certificate(server.parent)
    try:
        result = verify_trail(server, cert.public_key() if cert is not None else None)
    except FileNotFoundError:
        return f"--against {server.parent}: no server audit trail there (give the server's workspace or a head list)"
    if not result.ok:
        return f"{server / TRAIL_FILE}: the server's trail is NOT intact, so its heads prove nothing: {result.problem}"
    return None
