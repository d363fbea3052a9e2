"""`consortium audit verify WORKSPACE`: check a site's or the server's audit trail
(``<workspace>/audit/trail.jsonl``, :mod:`consortium.audit`), and at the server every job audit log
kept under ``audit/jobs/`` against the SHA-256 its trail line records
(:mod:`consortium.audit.server_trail`).

Exit code 0: the trail is intact; it prints the number of lines and the hash of the last one
(record it elsewhere: a trail and head rewritten together can only be caught against it).
Exit code 1: it names the first edited, deleted, reordered or cut-off line, or each kept job audit
log that is missing or changed. Exit code 2: no trail.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consortium.audit.chain import TRAIL_FILE
from consortium.audit.server_trail import kept_file_problems
from consortium.audit.verify import verify_trail

AUDIT_FOLDER = "audit"  # consortium.cli.site_privacy.AUDIT_COMPONENT's folder


def add_parser(subparsers) -> None:
    """``audit verify`` under ``subparsers`` (the ``consortium`` command's)."""
    audit = subparsers.add_parser("audit", help="a site's tamper-evident audit trail").add_subparsers(
        dest="action", required=True)
    p = audit.add_parser("verify", help="check a site's or the server's audit trail; name its first edited, deleted "
                                        "or reordered line, and each kept job audit log that changed")
    p.add_argument("site_workspace", type=Path,
                   help="the site's or server's workspace (its startup kit folder; in the simulator WS/<site>), "
                        "or its audit folder")


def trail_folder(path: Path) -> Path:
    """The audit folder for a site workspace, an audit folder or a trail file."""
    if path.is_file():
        return path.parent
    return path if (path / TRAIL_FILE).exists() else path / AUDIT_FOLDER


def run(args: argparse.Namespace) -> int:
    folder = trail_folder(args.site_workspace)
    try:
        result = verify_trail(folder)
    except (FileNotFoundError, OSError) as e:
        print(f"audit verify: {e}", file=sys.stderr)
        return 2
    trail = folder / TRAIL_FILE
    if not result.ok:
        print(f"{trail}: NOT intact: {result.problem}", file=sys.stderr)
        return 1
    kept = kept_file_problems(folder)
    for problem in kept:
        print(f"{trail}: kept file NOT intact: {problem}", file=sys.stderr)
    if kept:
        return 1
    if result.end is None:
        print(f"{trail}: intact and empty")
    else:
        print(f"{trail}: intact, {result.lines} lines; last record {result.end.seq}, hash {result.end.hash}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m consortium.cli.audit verify SITE_WORKSPACE`` (the same as ``consortium audit ...``)."""
    ap = argparse.ArgumentParser(prog="consortium")
    add_parser(ap.add_subparsers(dest="command", required=True))
    return run(ap.parse_args(["audit", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
