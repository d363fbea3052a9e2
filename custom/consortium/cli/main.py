"""`consortium ...`: run a FLARE consortium on this machine, submit jobs, read results.

    consortium poc up | status | down      the local POC consortium (server + four hospitals)
    consortium validate JOB                 check a job folder before submitting it
    consortium submit JOB                   submit through the admin API, follow rounds, download
    consortium report RESULT                per-site table, learning curve, report.md
    consortium simulate JOB                 run a job in FLARE's simulator with the site policies
    consortium jobs export [--out DIR]      write jobs/ from the recipes (consortium.recipes)
    consortium provision                    production startup kits from provisioning/project.yml
    consortium demo                         all of it: up, submit, report, down
    consortium models list|best|rollback    a job's model versions (registry), start a job from one
    consortium rollback RUN VERSION         the same as `models rollback` (the incident command)
    consortium resume JOB_ID                continue a POC job whose server died, from its last version
    consortium poc kill|restart SITE        crash one site (or the server) on purpose, start it again
    consortium poc up --monitoring          also Prometheus, scraping the jobs' round metrics
    consortium freeze|thaw JOB_ID           stop / resume sending new global models of a running job
    consortium quarantine JOB_ID SITE       refuse a site's results from the job's next round on
    consortium revoke-site SITE [--undo]    take a hospital out of the consortium (FLARE's deny list)
    consortium certs KITS                   every kit's certificate and its expiry
    consortium doctor KIT                   why a kit cannot connect
    consortium audit verify WORKSPACE [--against SERVER_WS|HEADS.json]
                                            check a site's or the server's audit trail (signatures, the server's kept
                                            job audit logs; --against: the site's heads the server holds)
    consortium audit export-heads SERVER_WS the sites' trail heads the server holds, as a file to check against
    consortium site request NAME --org ORG  at a hospital: its key and certificate request (the key stays there)
    consortium approve NAME.request.zip     the project admin signs it with the consortium's root CA
    consortium package NAME.approved.zip    at the hospital: its startup kit (policies, HE keys) from the approval
    consortium add-site NAME --org ORG      the project admin adds a hospital; every existing kit unchanged

Names (sites, orgs, jobs, apps) follow FLARE's rules and are checked before anything is written.
An error is one line on stderr naming the file, field and value, exit code 2; exit code 3 is a
bug (CONSORTIUM_TRACEBACK=1 shows its traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from consortium.defaults import default_path
from consortium.poc.site_data import DEFAULT_PROFILES
from consortium.provisioning.project import Project

DEFAULT_PROJECT = default_path("provisioning/project.yml")
DEFAULT_WORKSPACE = (Path(os.environ["CONSORTIUM_POC_WORKSPACE"]) if os.environ.get("CONSORTIUM_POC_WORKSPACE")
                     else default_path("poc_workspace") / "state")
DEFAULT_JOBS = (default_path("jobs/heart_fedprox"), default_path("jobs/seg_fedavg"))


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE,
                   help="POC workspace (default: $CONSORTIUM_POC_WORKSPACE or poc_workspace/state)")
    p.add_argument("--project", type=Path, default=DEFAULT_PROJECT, help="project.yml (default: %(default)s)")


def _add_profiles(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profiles", type=Path, default=DEFAULT_PROFILES,
                   help="scanner profiles from which each site makes its imaging data (default: %(default)s)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="consortium", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    poc = sub.add_parser("poc", help="the local POC consortium").add_subparsers(dest="action", required=True)
    p = poc.add_parser("up", help="provision from project.yml and start the server and every site")
    _add_common(p)
    p.add_argument("--port", type=int, default=None, help="server port (default: project.yml's fed_learn_port)")
    _add_profiles(p)
    p.add_argument("--monitoring", action="store_true",
                   help="also start Prometheus (Debian's `prometheus`; `make monitoring` installs it) with the consortium's rules")
    p.add_argument("--metrics-port", type=int, default=None, help="the jobs' metrics exporter port to scrape (default: 9464)")
    p.add_argument("--prometheus-port", type=int, default=None, help="Prometheus' port on 127.0.0.1 (default: 9090)")
    for name, text in (("status", "is the POC running, which sites are connected"), ("down", "stop every POC process")):
        _add_common(poc.add_parser(name, help=text))
    for name, text in (("kill", "kill one site (or 'server') with all its processes, as a crash would"),
                       ("restart", "start a killed site (or the server) again from its kit")):
        p = poc.add_parser(name, help=text)
        p.add_argument("site", help="a site name of project.yml, or the server's name")
        _add_common(p)

    models = sub.add_parser("models", help="a job's model registry").add_subparsers(dest="action", required=True)
    for name, text in (("list", "every version: pooled score, round, contributors, SHA-256"),
                       ("best", "the version with the best pooled score")):
        models.add_parser(name, help=text).add_argument("run", type=Path, help="a downloaded job result or run folder")
    for p in (models.add_parser("rollback", help="a new job that starts from VERSION (submitted with --submit)"),
              sub.add_parser("rollback", help="the incident command: `models rollback` (a new job from a registry version)")):
        p.add_argument("run", type=Path, help="a downloaded job result or run folder")
        p.add_argument("version", type=int)
        p.add_argument("--out", type=Path, default=None, help="folder for the new job (default: jobs-rollback/<name>_v<VERSION>)")
        p.add_argument("--rounds", type=int, default=None, help="rounds to run (default: the rest of the original plan)")
        p.add_argument("--submit", action="store_true", help="submit it to the running POC and follow it")
        _add_common(p)
        p.add_argument("--results", type=Path, default=Path("results"), help="where results are downloaded (default: %(default)s)")

    for name, text in (("freeze", "stop sending new global models of a running POC job (sites keep the last one)"),
                       ("thaw", "resume a frozen job's rounds"),
                       ("quarantine", "refuse a site's results in a running POC job from its next round on")):
        p = sub.add_parser(name, help=text)
        p.add_argument("job_id", help="the running job's id")
        if name == "quarantine":
            p.add_argument("site", help="a site name of project.yml")
        p.add_argument("--reason", default="", help="why (written to the audit trail and the round record)")
        _add_common(p)

    p = sub.add_parser("resume", help="continue a POC job whose server died, from its last saved version")
    p.add_argument("job_id", help="the job's id (its run folder is kept in the server's workspace)")
    _add_common(p)
    p.add_argument("--results", type=Path, default=Path("results"), help="where results are downloaded (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before the job is aborted (default: %(default)s)")

    p = sub.add_parser("validate", help="check a job folder (files, JSON, allowed classes, min_clients, site names)")
    p.add_argument("job", type=Path, help="the job folder (meta.json + app/config)")
    p.add_argument("--project", type=Path, default=DEFAULT_PROJECT, help="project.yml (default: %(default)s)")

    p = sub.add_parser("submit", help="submit a job to the running POC through the admin API")
    p.add_argument("job", type=Path, help="the job folder (a temporary copy is submitted)")
    _add_common(p)
    p.add_argument("--results", type=Path, default=Path("results"), help="where results are downloaded (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before the job is aborted (default: %(default)s)")

    p = sub.add_parser("report", help="write report.md + learning_curve.png for a downloaded job result")
    p.add_argument("result", type=Path, help="a downloaded job result folder (results/<job id>)")
    p.add_argument("--site-workspaces", type=Path, default=None,
                   help="folder holding each site's workspace (e.g. a POC's prod_00), for imaging pictures")

    p = sub.add_parser("simulate", help="run a job in the FLARE simulator with the consortium's site policies")
    p.add_argument("job", type=Path, help="the job folder")
    p.add_argument("-w", "--sim-workspace", type=Path, required=True, help="the simulator's workspace folder")
    p.add_argument("--project", type=Path, default=DEFAULT_PROJECT, help="project.yml: its sites are simulated (default: %(default)s)")
    p.add_argument("-t", "--threads", type=int, default=4, help="simulator threads (default: %(default)s)")
    _add_profiles(p)

    jobs = sub.add_parser("jobs", help="the shipped jobs, defined as recipes").add_subparsers(dest="action", required=True)
    p = jobs.add_parser("export", help="write every shipped job's folder from its recipe (consortium.recipes.catalogue)")
    p.add_argument("--out", type=Path, default=default_path("jobs"), help="folder for the job folders (default: %(default)s)")
    p.add_argument("names", nargs="*", help="only these jobs (default: all)")

    p = sub.add_parser("provision", help="production startup kits (TLS certificates, roles, site policies)")
    p.add_argument("--project", type=Path, default=DEFAULT_PROJECT, help="project.yml (default: %(default)s)")
    p.add_argument("--output", type=Path, required=True, help="folder for the kits (a provisioning workspace)")
    p.add_argument("--server-storage", type=Path, default=None,
                   help="absolute folder on the server host for job and snapshot storage (default: /var/lib/nvflare/<project>)")

    p = sub.add_parser("demo", help="POC up, submit a job, report, POC down")
    _add_common(p)
    p.add_argument("--job", type=Path, action="append", default=None,
                   help=f"job to run (repeatable; default: {' and '.join(str(j) for j in DEFAULT_JOBS)})")
    p.add_argument("--port", type=int, default=None, help="server port (default: project.yml's fed_learn_port)")
    p.add_argument("--results", type=Path, default=Path("results"), help="where results are downloaded (default: %(default)s)")
    _add_profiles(p)

    p = sub.add_parser("revoke-site", help="take a hospital out of the running consortium (as the project admin)")
    p.add_argument("site", help="a site name of project.yml")
    p.add_argument("--undo", action="store_true", help="admit the site again")
    p.add_argument("--reason", default="", help="why (printed; FLARE's audit log records the command and the admin)")
    _add_common(p)
    p = sub.add_parser("certs", help="list every kit's certificate with its expiry (warns a month ahead)")
    p.add_argument("kits", type=Path, help="a provisioning's prod_NN folder, or one kit")
    p = sub.add_parser("doctor", help="name why a startup kit cannot connect")
    p.add_argument("kit", type=Path, help="a site's or an admin's startup kit folder (or a server's: files and chain only)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds for each network step (default: %(default)s)")
    from consortium.cli import audit as audit_cli
    from consortium.provisioning import add_site as add_site_cli
    from consortium.provisioning.distributed import approve as distributed_cli
    audit_cli.add_parser(sub)
    distributed_cli.add_parser(sub)
    add_site_cli.add_parser(sub)
    return ap


def report(result: Path, site_roots: dict[str, Path] | None = None) -> Path:
    """Table, learning curve and report.md; for imaging jobs with the sites' data folders at hand
    (POC: this machine), one picture per site of the final model's prediction."""
    from consortium.reports.job_report import load_results, print_table, write_report

    results = load_results(result)
    print_table(results)
    pictures = []
    if results.metric == "dice" and site_roots:
        from consortium.reports.imaging_pictures import render_site_pictures

        data = {s: root / "data" / "imaging" for s, root in site_roots.items() if (root / "data" / "imaging").is_dir()}
        job = results.folder / "job" if (results.folder / "job").is_dir() else results.workspace
        pictures = render_site_pictures(results.workspace, data, results.folder / "pictures", job)
    path = write_report(results, pictures)
    print(f"report: {path}")
    return path


def _site_roots(state) -> dict[str, Path]:
    return {c: Path(state.kits) / c for c in state.clients}


def simulate(job: Path, workspace: Path, project: Project, threads: int, profiles: Path | None = None) -> int:
    """FLARE's simulator with the site policies (:class:`~consortium.recipes.envs.ConsortiumSimEnv`,
    the environment a recipe's ``job.py`` runs in): the job folder as it stands, checked as
    ``validate`` checks it; each simulated site gets its imaging data made from ``profiles`` and an
    HE job a key pair for the run. Returns the simulator's exit code."""
    from consortium.recipes.envs import ConsortiumSimEnv
    from consortium.recipes.job import FolderJob

    return ConsortiumSimEnv(project=project, workspace=workspace, threads=threads, profiles=profiles).simulate(FolderJob(job))


def export_jobs(out: Path, names: list[str] | None = None) -> list[Path]:
    """Every shipped job's folder (or the named ones) written from its recipe into ``out``."""
    from consortium.recipes.catalogue import export_jobs as export

    folders = export(out, names or None)
    for folder in folders:
        print(f"exported {folder}")
    return folders


def demo(args) -> None:
    from consortium.jobs.submit import submit_and_follow
    from consortium.poc import lifecycle as poc

    args.job = args.job or list(DEFAULT_JOBS)
    state = poc.up(Project.load(args.project), args.workspace, port=args.port, profiles=args.profiles)
    try:
        for job in args.job:
            report(submit_and_follow(state, job, args.results), _site_roots(state))
    finally:
        poc.down(args.workspace)


def _running_state(workspace: Path):
    from consortium.poc import lifecycle as poc
    state = poc.PocState.load(workspace.resolve() / poc.STATE_FILE)
    if state is None or not poc.running(state):
        raise poc.PocError(f"no running POC in {workspace}; start one with `consortium poc up`")
    return state


def models_command(args) -> int:
    from consortium.admin import models
    if args.action == "list":
        print("\n".join(models.list_lines(args.run)))
    elif args.action == "best":
        print(models.best(args.run).line())
    else:
        out = args.out or models.rollback_folder(args.run, args.version)
        job = models.continuation_job(args.run, args.version, out, rounds=args.rounds, label="rollback")
        print(f"job starting from version {args.version}: {job}")
        if args.submit:
            from consortium.jobs.submit import submit_and_follow

            state = _running_state(args.workspace)
            report(submit_and_follow(state, job, args.results), _site_roots(state))
    return 0


def resume(workspace: Path, job_id: str, results: Path, timeout: float = 900.0, echo=print) -> Path:
    """Continue POC job ``job_id`` (its server died mid-job and was restarted) from the last
    version in its registry, for the rounds left of its plan; its stuck RUNNING record is cleared
    first. Returns the new job's downloaded result."""
    import tempfile

    from consortium.admin import models
    from consortium.jobs.submit import submit_and_follow
    from consortium.jobs.watch import SERVER
    from consortium.poc.lifecycle import PocError
    from consortium.registry import ModelRegistry

    state = _running_state(workspace)
    run = state.server_dir() / job_id
    if not run.is_dir():
        raise PocError(f"{run}: no run folder for job {job_id} on this POC's server")
    from consortium.jobs.watch import SiteWatch

    if SERVER in SiteWatch(state, job_id).job_processes():
        raise PocError(f"job {job_id} is still running on the server; nothing to resume")
    latest = ModelRegistry.of_run(run).latest()
    end = models.planned_end(models.job_config(run)[1], run)
    if latest.version >= end:
        raise PocError(f"job {job_id} saved version {latest.version}, its last planned round: nothing to resume")
    was = models.clear_stuck_record(Path(state.workspace) / "jobs-storage", job_id,
                                    f"server died at version {latest.version}; resumed by `consortium resume`")
    echo(f"job {job_id}: record was {was or 'missing'}; resuming from version {latest.version} "
         f"({end - latest.version} rounds left of {end})")
    with tempfile.TemporaryDirectory(prefix="consortium-resume-") as tmp:
        job = models.continuation_job(run, latest.version, Path(tmp) / "job", label="resume")
        return submit_and_follow(state, job, results, timeout=timeout, echo=echo)


def run(args) -> int:
    from consortium.poc import lifecycle as poc
    if args.command == "poc":
        if args.action == "up":
            poc.up(Project.load(args.project), args.workspace, port=args.port, profiles=args.profiles,
                   monitoring=args.monitoring, metrics_port=args.metrics_port, prometheus_port=args.prometheus_port)
        elif args.action == "status":
            print(json.dumps(poc.status(args.workspace), indent=2))
        elif args.action == "kill":
            poc.kill_site(args.workspace, args.site)
        elif args.action == "restart":
            poc.restart_site(args.workspace, args.site)
        else:
            poc.down(args.workspace)
    elif args.command == "models":
        return models_command(args)
    elif args.command == "rollback":
        args.action = "rollback"
        return models_command(args)
    elif args.command in ("freeze", "thaw", "quarantine"):
        from consortium.admin.incidents import request
        from consortium.operations.incidents import Action

        request(_running_state(args.workspace), args.job_id, Action(args.command), getattr(args, "site", None), args.reason)
    elif args.command == "resume":
        report(resume(args.workspace, args.job_id, args.results, timeout=args.timeout), None)
    elif args.command == "validate":
        from consortium.jobs.validate import AllowList, check_job

        project = Project.load(args.project)
        meta = check_job(args.job, sites=project.clients, allowed=AllowList.of_project(project))
        print(f"{args.job}: ok ({meta.get('name', args.job.name)})")
    elif args.command == "submit":
        from consortium.jobs.submit import submit_and_follow

        state = _running_state(args.workspace)
        report(submit_and_follow(state, args.job, args.results, timeout=args.timeout), _site_roots(state))
    elif args.command == "report":
        roots = ({d.name: d for d in args.site_workspaces.iterdir() if d.is_dir()} if args.site_workspaces else None)
        report(args.result, roots)
    elif args.command == "simulate":
        return simulate(args.job, args.sim_workspace, Project.load(args.project), args.threads, args.profiles)
    elif args.command == "jobs":
        export_jobs(args.out, args.names)
    elif args.command == "provision":
        from consortium.provisioning.project import default_server_storage
        from consortium.provisioning.provision import provision

        project = Project.load(args.project)
        storage = args.server_storage or default_server_storage(project)
        kits = provision(project, args.output.resolve(), poc=False, server_storage=storage)
        print(f"startup kits: {kits}\nthe server keeps job and snapshot storage in {storage} on its host")
    elif args.command == "demo":
        demo(args)
    elif args.command == "revoke-site":
        from consortium.admin.revoke import revoke_site

        revoke_site(_running_state(args.workspace), args.site, undo=args.undo, reason=args.reason)
    elif args.command == "certs":
        from consortium.admin.doctor import certificates

        for row in certificates(args.kits):
            print(row.line())
    elif args.command == "doctor":
        from consortium.admin.doctor import diagnose

        findings = diagnose(args.kit, timeout=args.timeout)
        for f in findings:
            print(f.line())
        return 0 if all(f.ok for f in findings) else 1
    elif args.command == "audit":
        from consortium.cli import audit as audit_cli

        return audit_cli.run(args)
    elif args.command in ("site", "approve", "package", "add-site"):
        from consortium.provisioning import add_site as add_site_cli
        from consortium.provisioning.distributed import approve as distributed_cli
        return (add_site_cli if args.command == "add-site" else distributed_cli).run(args)
    return 0


TRACEBACK_ENV = "CONSORTIUM_TRACEBACK"  # set to 1 to see the traceback of an error (a bug report)
EXIT_BAD_INPUT, EXIT_BUG = 2, 3


def check_arguments(args: argparse.Namespace) -> None:
    """Names given on the command line, checked against FLARE's rules before any command runs:
    a site (``SITE``: ``poc kill``, ``quarantine``, ``revoke-site``...) and a job id."""
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
                "`consortium poc status` says (a job it was running continues with `consortium resume JOB_ID`)"), EXIT_BAD_INPUT
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
