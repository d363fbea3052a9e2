"""`consortium models list|best|rollback`: a job's model versions (its registry), a new job from one."""

from __future__ import annotations

from pathlib import Path

from consortium.cli import options

EXAMPLE = "  consortium models list results/JOB_ID\n  consortium models rollback results/JOB_ID 3 --submit"


def add_parser(sub) -> None:
    models = options.actions(options.group(sub, "models", "a job's model registry", EXAMPLE))
    for name, text in (("list", "every version: pooled score, round, contributors, SHA-256"),
                       ("best", "the version with the best pooled score")):
        models.add_parser(name, help=text).add_argument("run", type=Path, help="a downloaded job result or run folder")
    add_rollback(models, "a new job that starts from VERSION (submitted with --submit)")


def add_rollback(actions, text: str) -> None:
    """``rollback RUN VERSION``: under ``models`` and under ``incident``, one handler (:func:`rollback`)."""
    p = actions.add_parser("rollback", help=text)
    p.add_argument("run", type=Path, help="a downloaded job result or run folder")
    p.add_argument("version", type=int)
    p.add_argument("--out", type=Path, default=None, help="folder for the new job (default: jobs-rollback/<name>_v<VERSION>)")
    p.add_argument("--rounds", type=int, default=None, help="rounds to run (default: the rest of the original plan)")
    p.add_argument("--submit", action="store_true", help="submit it to the running POC and follow it")
    options.workspace(p)
    options.results(p)


def run(args) -> int:
    from consortium.admin import models

    if args.action == "list":
        print("\n".join(models.list_lines(args.run)))
    elif args.action == "best":
        print(models.best(args.run).line())
    else:
        return rollback(args)
    return 0


def rollback(args) -> int:
    from consortium.admin import models

    out = args.out or models.rollback_folder(args.run, args.version)
    job = models.continuation_job(args.run, args.version, out, rounds=args.rounds, label="rollback")
    print(f"job starting from version {args.version}: {job}")
    if args.submit:
        from consortium.jobs.report import poc_site_roots, report
        from consortium.jobs.submit import submit_and_follow
        from consortium.poc.session import running_state

        state = running_state(args.workspace)
        report(submit_and_follow(state, job, args.results), poc_site_roots(state))
    return 0
