"""`consortium ...`: run a FLARE consortium on this machine, submit jobs, read results.

    consortium demo                                    all of it: POC up, submit, report, down
    consortium poc up|status|down|kill|restart         the local POC consortium (server + hospitals)
    consortium job validate|submit|simulate|report|export|resume
                                                       a job: check, run (POC or simulator), report,
                                                       write jobs/ from the recipes, resume after a crash
    consortium provision                               production startup kits from provisioning/project.yml
    consortium site request|approve|package|add|revoke a hospital joins (its key stays there) or leaves
    consortium incident freeze|thaw|quarantine|rollback   act on a running POC job
    consortium models list|best|rollback               a job's model versions (registry), a job from one
    consortium audit verify|export-heads               a site's or the server's audit trail
    consortium kit certs|doctor                        certificate expiry; why a kit cannot connect

`consortium GROUP --help` shows a group's commands and an example. Names (sites, orgs, jobs, apps)
follow FLARE's rules and are checked before anything is written. An error is one line on stderr
naming the file, field and value, exit code 2; exit code 3 is a bug (CONSORTIUM_TRACEBACK=1 shows
its traceback).
"""

from __future__ import annotations

import argparse
import os
import sys

from consortium.cli import audit, demo, incident, job, kit, models, poc, provision, site

GROUPS = {"demo": demo, "poc": poc, "job": job, "provision": provision, "site": site, "incident": incident,
          "models": models, "audit": audit, "kit": kit}  # `consortium GROUP`: each module's add_parser and run


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="consortium", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for group in GROUPS.values():
        group.add_parser(sub)
    return ap


def run(args: argparse.Namespace) -> int:
    return GROUPS[args.command].run(args)


TRACEBACK_ENV = "CONSORTIUM_TRACEBACK"  # set to 1 to see the traceback of an error (a bug report)
EXIT_BAD_INPUT, EXIT_BUG = 2, 3


def check_arguments(args: argparse.Namespace) -> None:
    """Names given on the command line, checked against FLARE's rules before any command runs:
    a site (``SITE``: ``poc kill``, ``incident quarantine``, ``site revoke``...) and a job id."""
    from consortium.names import check_name, name_problem

    command = " ".join(w for w in (args.command, getattr(args, "action", None)) if isinstance(w, str))
    site = getattr(args, "site", None)
    if isinstance(site, str):  # `poc kill|restart` also take the server's name, a host name
        host = args.command == "poc" and name_problem("site", site) and not name_problem("server", site)
        check_name("server" if host else "site", site, f"{command}: SITE")
    if isinstance(getattr(args, "job_id", None), str):
        check_name("job", args.job_id, f"{command}: JOB_ID")


def explain(error: BaseException) -> tuple[str, int]:
    """The one line the user reads for ``error``, and the exit code: bad input, a file that is
    not there, a refused action, an unreachable server (2); anything else is a bug (3), shown as
    one line naming :data:`TRACEBACK_ENV`."""
    from nvflare.fuel.flare_api import api_spec as flare

    from consortium.poc.lifecycle import PocError

    if isinstance(error, (flare.NoConnection, flare.SessionClosed, flare.NoReply)):
        return (f"the FLARE server cannot be reached ({type(error).__name__}: {error}); is it running? "
                "`consortium poc status` says (a job it was running continues with `consortium job resume JOB_ID`)"), EXIT_BAD_INPUT
    if isinstance(error, (flare.AuthenticationError, flare.AuthorizationError, flare.InvalidJobDefinition,
                          flare.JobNotFound, flare.JobNotRunning, flare.JobNotDone, flare.InternalError,
                          flare.ClientsStillRunning, flare.NoClientsAvailable, flare.InvalidTarget, flare.CommandError)):
        return f"the FLARE server refused: {type(error).__name__}: {error}", EXIT_BAD_INPUT
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}", EXIT_BAD_INPUT
    if isinstance(error, (ValueError, PocError, OSError)):  # ConfigurationError, RegistryError, ProvisioningError
        return str(error), EXIT_BAD_INPUT
    return (f"internal error {type(error).__name__}: {error} (a bug; run again with {TRACEBACK_ENV}=1 to see where, "
            "and report it)"), EXIT_BUG


def main(argv: list[str] | None = None) -> int:
    """Parse, run, and turn any error into one line on stderr (no traceback unless
    ``CONSORTIUM_TRACEBACK=1``): exit code 2 for bad input and refused actions, 3 for a bug."""
    args = parser().parse_args(argv)
    try:
        check_arguments(args)
        return run(args)
    except KeyboardInterrupt:
        print("consortium: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get(TRACEBACK_ENV):
            raise
        line, code = explain(e)
        print(f"consortium: error: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
