"""`consortium audit verify WORKSPACE [--against SERVER_WORKSPACE | HEADS.json]`: check a site's or
the server's audit trail (``<workspace>/audit/trail.jsonl``, :mod:`consortium.audit`): its hash
chain, every line's signature against the kit certificate (``startup/client.crt`` or
``server.crt``, itself checked against the root CA), at the server every job audit log kept under
``audit/jobs/``, and with ``--against`` the server's copy of the site's trail heads
(:mod:`consortium.audit.anchors`). `consortium audit export-heads SERVER_WORKSPACE` writes the
server's head list, for a site to be checked away from the server.

Exit code 0: intact; it prints the number of lines, the last hash, who signed (or, plainly, that
the trail is UNSIGNED: no kit, as in FLARE's simulator, so only the hash chain is checked) and
"one unheaded line after a crash" when the writer stopped between a line and its head.
Exit code 1: it names the first edited, deleted, reordered, unsigned or forged line, each kept job
audit log that is missing or changed, each head the server holds that the site's trail no longer
has or has rewritten, and a trail deleted where the server holds heads of it.
Exit code 2: no trail, and no record of one elsewhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from consortium.audit.anchors import cross_check, export_heads, heads_in_trail, load_exported, trail_entries
from consortium.audit.chain import TRAIL_FILE
from consortium.audit.server_trail import kept_file_problems
from consortium.audit.signing import ROOT_CA, KitKeyError, common_name, kit_certificate
from consortium.audit.verify import verify_trail
from consortium.fileio import atomic_write

AUDIT_FOLDER = "audit"  # consortium.provisioning.privacy_scopes.AUDIT_COMPONENT's folder


def add_parser(subparsers) -> None:
    """``audit verify`` and ``audit export-heads`` under ``subparsers`` (the ``consortium`` command's)."""
    audit = subparsers.add_parser("audit", help="a site's tamper-evident audit trail").add_subparsers(
        dest="action", required=True)
    p = audit.add_parser("verify", help="check a site's or the server's audit trail; name its first edited, deleted, "
                                        "forged or reordered line, and each kept job audit log that changed")
    p.add_argument("site_workspace", type=Path,
                   help="the site's or server's workspace (its startup kit folder; in the simulator WS/<site>), "
                        "or its audit folder")
    p.add_argument("--against", type=Path, default=None,
                   help="the server's workspace, or a head list from `audit export-heads`: check the site's trail "
                        "against the heads the server received")
    p.add_argument("--kit", type=Path, default=None, help="the kit whose certificate signed the trail (default: the "
                                                          "workspace; give it when verifying a copied audit folder)")
    p.add_argument("--site", default=None, help="the site's name in the server's heads (default: its certificate's)")
    e = audit.add_parser("export-heads", help="write the site trail heads the server received, as JSON")
    e.add_argument("server_workspace", type=Path)
    e.add_argument("--site", default=None, help="only this site's heads")
    e.add_argument("--out", type=Path, default=None, help="the file to write (default: print)")


def trail_folder(path: Path) -> Path:
    """The audit folder for a site workspace, an audit folder or a trail file."""
    if path.is_file():
        return path.parent
    return path if (path / TRAIL_FILE).exists() else path / AUDIT_FOLDER


def _kit(path: Path, folder: Path) -> Path:
    return path if folder == path / AUDIT_FOLDER else folder.parent


def _signed(folder: Path) -> bool:
    return any("sig" in e for _, e in trail_entries(folder))


def run(args: argparse.Namespace) -> int:
    try:
        if getattr(args, "action", "verify") == "export-heads":
            return _export(args)
        return _verify(args.site_workspace, getattr(args, "against", None), getattr(args, "kit", None),
                       getattr(args, "site", None))
    except (KitKeyError, ValueError, OSError) as e:
        print(f"audit: {e}", file=sys.stderr)
        return 1


def _export(args) -> int:
    data = export_heads(trail_folder(args.server_workspace), args.site)
    text = json.dumps(data, indent=1) + "\n"
    if args.out is None:
        print(text, end="")
    else:
        atomic_write(args.out, text)
        print(f"{args.out}: {len(data['heads'])} heads")
    return 0


def _verify(path: Path, against: Path | None, kit: Path | None, site: str | None) -> int:
    folder = trail_folder(path)
    kit = kit or _kit(path, folder)
    trail = folder / TRAIL_FILE
    server = trail_folder(against) if against is not None and against.is_dir() else None
    root_ca = server.parent / "startup" / ROOT_CA if server is not None and (server.parent / "startup" / ROOT_CA).is_file() else None
    cert = kit_certificate(kit, root_ca)  # KitKeyError: a kit whose certificate is not the root CA's
    name = site or (common_name(cert) if cert is not None else kit.name)
    heads = None
    if against is not None:
        heads = heads_in_trail(server) if server is not None else load_exported(against)
        if server is not None and _verify_server(server) != 0:
            return 1
    if not trail.exists() and not (folder / "trail.head.json").exists():
        problems = cross_check(name, folder, heads or [])
        if problems:
            print(f"{trail}: NOT intact: {problems[0]}", file=sys.stderr)
            return 1
        print(f"audit verify: {trail}: no audit trail here" + ("" if heads is not None else
              " (give --against SERVER_WORKSPACE to tell a deleted trail from none)"), file=sys.stderr)
        return 2
    if cert is None and _signed(folder):
        print(f"{trail}: NOT checked: its lines are signed but {kit} holds no kit certificate; give --kit", file=sys.stderr)
        return 1
    result = verify_trail(folder, cert.public_key() if cert is not None else None)
    if not result.ok:
        print(f"{trail}: NOT intact: {result.problem}", file=sys.stderr)
        return 1
    problems = [f"kept file NOT intact: {p}" for p in kept_file_problems(folder)]
    if heads is not None:
        problems += [f"NOT intact against the server: {p}" for p in cross_check(name, folder, heads, server)]
    for problem in problems:
        print(f"{trail}: {problem}", file=sys.stderr)
    if problems:
        return 1
    if result.end is None:
        print(f"{trail}: intact and empty")
        return 0
    signer = (f"every line signed by {common_name(cert)!r} (certificate issued by {root_ca or kit / 'startup' / ROOT_CA})"
              if cert is not None else "UNSIGNED: no kit certificate (FLARE's simulator?): only the hash chain is "
                                       "checked, and anyone who can write these files could have rewritten it")
    print(f"{trail}: intact, {result.lines} lines; last record {result.end.seq}, hash {result.end.hash}; {signer}")
    if result.unheaded:
        print(f"{trail}: one unheaded line after a crash: record {result.end.seq} has no head yet (the next record "
              "writes it)")
    if heads is not None:
        mine = [h for h in heads if h.get("site") == name]
        print(f"{trail}: agrees with the server's {len(mine)} heads of {name}'s trail" +
              (f" (last: record {max(h['seq'] for h in mine)})" if mine else ""))
    return 0


def _verify_server(server: Path) -> int:
    cert = kit_certificate(server.parent)
    try:
        result = verify_trail(server, cert.public_key() if cert is not None else None)
    except FileNotFoundError:
        print(f"--against {server.parent}: no server audit trail there (give the server's workspace or a head list)",
              file=sys.stderr)
        return 1
    if not result.ok:
        print(f"{server / TRAIL_FILE}: the server's trail is NOT intact, so its heads prove nothing: {result.problem}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m consortium.cli.audit verify SITE_WORKSPACE`` (the same as ``consortium audit ...``)."""
    ap = argparse.ArgumentParser(prog="consortium")
    add_parser(ap.add_subparsers(dest="command", required=True))
    return run(ap.parse_args(["audit", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
