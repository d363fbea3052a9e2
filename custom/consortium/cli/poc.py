"""`consortium poc up|status|down|kill|restart`: the local POC consortium (server + hospitals)."""

from __future__ import annotations

import json

from consortium.cli import options
from consortium.provisioning.project import Project

EXAMPLE = "  consortium poc up --monitoring && consortium poc status && consortium poc down"


def add_parser(sub) -> None:
    poc = options.actions(options.group(sub, "poc", "the local POC consortium: server and every site on this machine", EXAMPLE))
    p = poc.add_parser("up", help="provision from project.yml and start the server and every site")
    options.workspace(p)
    p.add_argument("--port", type=int, default=None, help="server port (default: project.yml's fed_learn_port)")
    options.profiles(p)
    p.add_argument("--monitoring", action="store_true",
                   help="also start Prometheus (Debian's `prometheus`; `make monitoring` installs it) with the consortium's rules")
    p.add_argument("--metrics-port", type=int, default=None, help="the jobs' metrics exporter port to scrape (default: 9464)")
    p.add_argument("--prometheus-port", type=int, default=None, help="Prometheus' port on 127.0.0.1 (default: 9090)")
    for name, text in (("status", "is the POC running, which sites are connected"), ("down", "stop every POC process")):
        options.workspace(poc.add_parser(name, help=text))
    for name, text in (("kill", "kill one site (or the server) with all its processes, as a crash would"),
                       ("restart", "start a killed site (or the server) again from its kit")):
        p = poc.add_parser(name, help=text)
        p.add_argument("site", help="a site name of project.yml, or the server's name")
        options.workspace(p)


def run(args) -> int:
    from consortium.poc import lifecycle as poc

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
    return 0
