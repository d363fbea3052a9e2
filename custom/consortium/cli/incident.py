"""`consortium incident freeze|thaw|quarantine|rollback`: act on a running POC job."""

from __future__ import annotations

from consortium.cli import models, options

EXAMPLE = ("  consortium incident freeze JOB_ID --reason \"suspect update\"\n"
           "  consortium incident quarantine JOB_ID cleveland\n  consortium incident thaw JOB_ID\n"
           "  consortium incident rollback results/JOB_ID 3 --submit")


def add_parser(sub) -> None:
    incident = options.actions(options.group(sub, "incident", "stop, resume or roll back a running POC job", EXAMPLE))
    for name, text in (("freeze", "stop sending new global models of a running POC job (sites keep the last one)"),
                       ("thaw", "resume a frozen job's rounds"),
                       ("quarantine", "refuse a site's results in a running POC job from its next round on")):
        p = incident.add_parser(name, help=text)
        p.add_argument("job_id", help="the running job's id")
        if name == "quarantine":
            p.add_argument("site", help="a site name of project.yml")
        p.add_argument("--reason", default="", help="why (written to the audit trail and the round record)")
        options.workspace(p)
    models.add_rollback(incident, "a new job from a registry version (the same as `models rollback`)")


def run(args) -> int:
    if args.action == "rollback":
        return models.rollback(args)
    from consortium.admin.incidents import request
    from consortium.operations.incidents import Action
    from consortium.poc.session import running_state

    request(running_state(args.workspace), args.job_id, Action(args.action), getattr(args, "site", None), args.reason)
    return 0
