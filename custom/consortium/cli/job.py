"""`consortium job validate|submit|simulate|report|export|resume`: a job, from its folder to its report."""

from __future__ import annotations

from pathlib import Path

from consortium.cli import options
from consortium.defaults import JOBS_DIR
from consortium.provisioning.project import Project

EXAMPLE = ("  consortium job validate jobs/heart_fedprox\n  consortium job submit jobs/heart_fedprox\n"
           "  consortium job simulate jobs/heart_fedavg -w /tmp/sim")


def add_parser(sub) -> None:
    job = options.actions(options.group(sub, "job", "a job: check it, run it on the POC or the simulator, report it", EXAMPLE))
    p = job.add_parser("validate", help="check a job folder (files, JSON, allowed classes, min_clients, site names)")
    p.add_argument("job", type=Path, help="the job folder (meta.json + app/config)")
    options.project(p)

    p = job.add_parser("submit", help="submit a job to the running POC through the admin API, follow it, report it")
    p.add_argument("job", type=Path, help="the job folder (a temporary copy is submitted)")
    options.workspace(p)
    options.results(p, timeout=True)

    p = job.add_parser("simulate", help="run a job in the FLARE simulator with the consortium's site policies")
    p.add_argument("job", type=Path, help="the job folder")
    p.add_argument("-w", "--sim-workspace", type=Path, required=True, help="the simulator's workspace folder")
    options.project(p, "project.yml: its sites are simulated")
    p.add_argument("-t", "--threads", type=int, default=4, help="simulator threads (default: %(default)s)")
    options.profiles(p)

    p = job.add_parser("report", help="write report.md + learning_curve.png for a downloaded job result")
    p.add_argument("result", type=Path, help="a downloaded job result folder (results/<job id>)")
    p.add_argument("--site-workspaces", type=Path, default=None,
                   help="folder holding each site's workspace (e.g. a POC's prod_00), for imaging pictures")

    p = job.add_parser("export", help="write every shipped job's folder from its recipe (consortium.recipes.catalogue)")
    p.add_argument("--out", type=Path, default=JOBS_DIR, help="folder for the job folders (default: %(default)s)")
    p.add_argument("names", nargs="*", help="only these jobs (default: all)")

    p = job.add_parser("resume", help="continue a POC job whose server died, from its last saved version")
    p.add_argument("job_id", help="the job's id (its run folder is kept in the server's workspace)")
    options.workspace(p)
    options.results(p, timeout=True)


def run(args) -> int:
    from consortium.jobs.report import folder_site_roots, poc_site_roots, report

    if args.action == "validate":
        from consortium.jobs.validate import AllowList, check_job

        project = Project.load(args.project)
        meta = check_job(args.job, sites=project.clients, allowed=AllowList.of_project(project))
        print(f"{args.job}: ok ({meta.get('name', args.job.name)})")
    elif args.action == "submit":
        from consortium.jobs.submit import submit_and_follow
        from consortium.poc.session import running_state

        state = running_state(args.workspace)
        report(submit_and_follow(state, args.job, args.results, timeout=args.timeout), poc_site_roots(state))
    elif args.action == "simulate":
        from consortium.recipes.simulate import simulate

        return simulate(args.job, args.sim_workspace, Project.load(args.project), args.threads, args.profiles)
    elif args.action == "report":
        report(args.result, folder_site_roots(args.site_workspaces) if args.site_workspaces else None)
    elif args.action == "export":
        from consortium.recipes.catalogue import export_jobs

        for folder in export_jobs(args.out, args.names or None):
            print(f"exported {folder}")
    else:
        from consortium.admin.resume import resume

        report(resume(args.workspace, args.job_id, args.results, timeout=args.timeout), None)
    return 0
