"""`consortium audit verify WORKSPACE [--against SERVER_WORKSPACE | HEADS.json]`: check a site's or
the server's audit trail (:mod:`consortium.admin.audit`); `consortium audit export-heads
SERVER_WORKSPACE` writes the server's head list, for a site to be checked away from the server.

Exit code 0: intact; 1: it names the first bad line, kept log or head; 2: no trail, and no
record of one elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consortium.cli import options

EXAMPLE = ("  consortium audit verify WS/prod_00/cleveland --against WS/prod_00/server\n"
           "  consortium audit export-heads WS/prod_00/server --out heads.json")


def add_parser(subparsers) -> None:
    """``audit verify`` and ``audit export-heads`` under ``subparsers`` (the ``consortium`` command's)."""
    audit = options.actions(options.group(subparsers, "audit", "a site's or the server's tamper-evident audit trail", EXAMPLE))
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


def run(args: argparse.Namespace) -> int:
    from consortium.admin.audit import verify, write_heads
    from consortium.audit.signing import KitKeyError

    try:
        if getattr(args, "action", "verify") == "export-heads":
            print(write_heads(args.server_workspace, args.site, args.out), end="")
            return 0
        verdict = verify(args.site_workspace, getattr(args, "against", None), getattr(args, "kit", None),
                         getattr(args, "site", None))
    except (KitKeyError, ValueError, OSError) as e:
        print(f"audit: {e}", file=sys.stderr)
        return 1
    for line in verdict.said:
        print(line)
    for line in verdict.problems:
        print(line, file=sys.stderr)
    return verdict.code


def main(argv: list[str] | None = None) -> int:
    """``python -m consortium.cli.audit verify SITE_WORKSPACE`` (the same as ``consortium audit ...``)."""
    ap = argparse.ArgumentParser(prog="consortium")
    add_parser(ap.add_subparsers(dest="command", required=True))
    return run(ap.parse_args(["audit", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
