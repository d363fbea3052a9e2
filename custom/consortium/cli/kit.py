"""`consortium kit certs|doctor`: a startup kit's certificates, and why it cannot connect."""

from __future__ import annotations

from pathlib import Path

from consortium.cli import options

EXAMPLE = "  consortium kit certs WS/heart_consortium/prod_00\n  consortium kit doctor WS/heart_consortium/prod_00/cleveland"


def add_parser(sub) -> None:
    kit = options.actions(options.group(sub, "kit", "startup kits: certificate expiry, connection diagnosis", EXAMPLE))
    p = kit.add_parser("certs", help="list every kit's certificate with its expiry (warns a month ahead)")
    p.add_argument("kits", type=Path, help="a provisioning's prod_NN folder, or one kit")
    p = kit.add_parser("doctor", help="name why a startup kit cannot connect")
    p.add_argument("kit", type=Path, help="a site's or an admin's startup kit folder (or a server's: files and chain only)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds for each network step (default: %(default)s)")


def run(args) -> int:
    from consortium.admin.certs import certificates
    from consortium.admin.doctor import diagnose

    if args.action == "certs":
        for row in certificates(args.kits):
            print(row.line())
        return 0
    findings = diagnose(args.kit, timeout=args.timeout)
    for f in findings:
        print(f.line())
    return 0 if all(f.ok for f in findings) else 1
