"""`consortium site request|approve|package|add|revoke`: a hospital joins or leaves the consortium."""

from __future__ import annotations

from pathlib import Path

from consortium.cli import options
from consortium.provisioning.project import Project

EXAMPLE = """  at the hospital:     consortium site request basel --org usb --out basel
  project admin:       consortium site approve basel/basel.request.zip --workspace WS --add-site
  at the hospital:     consortium site package basel.approved.zip --request-dir basel --fingerprint SHA256:...
  or, project admin:   consortium site add basel --org usb --start
  take one out:        consortium site revoke basel --reason "lost laptop\""""


def add_parser(sub) -> None:
    site = options.actions(options.group(sub, "site", "a hospital joins (a kit whose key stays there) or leaves", EXAMPLE))
    p = site.add_parser("request", help="at a hospital: make the site's key and certificate request; send only NAME.request.zip")
    p.add_argument("name", help="the site's name")
    p.add_argument("--org", required=True, help="the hospital's organisation")
    p.add_argument("--out", type=Path, default=None, help="folder for key and request, kept at the site (default: ./NAME)")
    options.project(p, "the consortium's project.yml: its name and kit builders")

    p = site.add_parser("approve", help="project admin: sign a site's request with the consortium's root CA")
    p.add_argument("request_zip", type=Path, help="NAME.request.zip from `consortium site request`")
    p.add_argument("--workspace", type=Path, required=True,
                   help="the provisioning workspace (`consortium provision --output`, or a POC workspace)")
    options.project(p, "project.yml beside the site policy templates to send")
    p.add_argument("--out", type=Path, default=None, help="folder for NAME.approved.zip (default: beside the request)")
    p.add_argument("--add-site", action="store_true", help="add a site not yet in <workspace>/project.yml")
    p.add_argument("--valid-days", type=int, default=1095, help="certificate validity (default: %(default)s)")

    p = site.add_parser("package", help="at a hospital: build the startup kit from an approval bundle")
    p.add_argument("bundle", type=Path, help="NAME.approved.zip from `consortium site approve`")
    p.add_argument("--request-dir", type=Path, required=True, help="the folder of `consortium site request`")
    p.add_argument("--fingerprint", required=True,
                   help="the root CA's SHA-256 fingerprint, as the project admin gave it to you out of band")
    p.add_argument("--workspace", type=Path, default=Path("workspace"),
                   help="where the kit is written: WS/<project>/prod_00/NAME (default: %(default)s)")

    p = site.add_parser("add", help="project admin: a kit for a new hospital under the same root CA")
    p.add_argument("name", help="the new site's name")
    p.add_argument("--org", required=True, help="the hospital's organisation")
    p.add_argument("--workspace", type=Path, default=None,
                   help="the provisioning workspace (`consortium provision --output`; default: the POC's)")
    options.project(p, "project.yml beside the site policy templates")
    p.add_argument("--start", action="store_true", help="POC: start the site and wait until it joins")
    options.profiles(p)

    p = site.add_parser("revoke", help="take a hospital out of the running consortium (as the project admin)")
    p.add_argument("site", help="a site name of project.yml")
    p.add_argument("--undo", action="store_true", help="admit the site again")
    p.add_argument("--reason", default="", help="why (printed; FLARE's audit log records the command and the admin)")
    options.workspace(p)


def run(args) -> int:
    """Errors are ValueErrors naming file, field and value (``consortium`` prints them, exit 2)."""
    return {"request": _request, "approve": _approve, "package": _package, "add": _add, "revoke": _revoke}[args.action](args)


def _request(args) -> int:
    from consortium.names import check_name
    from consortium.provisioning.distributed.request import request_site

    check_name("site", args.name, "site request: NAME")  # before ./NAME is made from it
    out = args.out or Path(args.name)
    zip_path = request_site(args.name, args.org, out, Project.load(args.project))
    print(f"request: {zip_path}\nsend only this zip to the project admin; {out} keeps the private key")
    return 0


def _approve(args) -> int:
    from consortium.provisioning.distributed.approve import approve
    from consortium.provisioning.distributed.bundle import Bundle

    bundle = approve(args.request_zip, args.workspace, Project.load(args.project), args.out,
                     add_site=args.add_site, valid_days=args.valid_days)
    manifest = Bundle.read(bundle)[0].manifest
    print(f"approved: {bundle}\nroot CA fingerprint (tell the site out of band): {manifest['rootca_fingerprint']}")
    if args.add_site:
        print(f"{manifest['name']} is a site of {args.workspace / 'project.yml'}; add it to {args.project} too")
    return 0


def _package(args) -> int:
    from consortium.provisioning.distributed.package import package

    print(f"startup kit: {package(args.bundle, args.request_dir, args.fingerprint, args.workspace)}")
    return 0


def _add(args) -> int:
    from consortium.defaults import default_workspace
    from consortium.poc.join import start_in_poc
    from consortium.poc.session import running_state
    from consortium.provisioning.add_site import add_site

    workspace = args.workspace or default_workspace()
    if args.start:
        running_state(workspace, "--start")  # before the kit is made
    kit = add_site(args.name, args.org, workspace, Project.load(args.project))
    print(f"new kit: {kit} (existing kits untouched)")
    if args.start:
        start_in_poc(args.name, workspace, args.profiles)
    return 0


def _revoke(args) -> int:
    from consortium.admin.revoke import revoke_site
    from consortium.poc.session import running_state

    revoke_site(running_state(args.workspace), args.site, undo=args.undo, reason=args.reason)
    return 0
