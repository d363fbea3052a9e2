"""Kits whose private key never leaves the hospital: FLARE's distributed provisioning
(``nvflare cert request`` / ``approve``, ``nvflare package``) with what a consortium kit needs.

    consortium site request NAME --org ORG --out DIR     at the hospital: key, CSR, request zip in DIR
    consortium approve NAME.request.zip --workspace WS    the project admin: sign with the root CA of WS
    consortium package NAME.approved.zip --request-dir DIR --fingerprint SHA256:...   at the hospital

``approve`` signs with the root CA that ``consortium provision`` made and keeps in
``<WS>/<project>/state/cert.json`` (kits of both paths trust each other) and refuses a name that
is not a client of ``<WS>/project.yml`` (``--add-site`` adds it). Besides FLARE's signed zip it
bundles the site policy templates and, where the consortium uses HE, its CKKS contexts, the
secret one sealed to the site's new certificate (:mod:`consortium.provisioning.distributed.bundle`).
``package`` checks the root CA against the fingerprint the admin gave out of band, the bundle's
signature and hashes, lets FLARE build the kit, then installs the site policies
(:func:`~consortium.provisioning.provision.install_site_policies`) and the HE contexts with the root CA's
signatures of them in ``startup/consortium_he_signature.json`` (FLARE's signature.json format:
a distributed kit has no ``signature.json``, which would have to sign the site's private key).
FLARE runs as a subprocess (its command handlers exit the process on error).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

from consortium.defaults import default_path
from consortium.fileio import path_under
from consortium.names import check_name
from consortium.provisioning.distributed import bundle as ab
from consortium.provisioning.project import Project

COMMANDS = ("site", "approve", "package")

KIT_BUILDERS = ("WorkspaceBuilder", "StaticFileBuilder", "CertBuilder")  # FLARE's, run by `nvflare package`


class ProvisioningError(ValueError):
    """A request, approval or kit refused; the message names the file, field and value."""


def nvflare(args: list[str], what: str) -> dict:
    """Run ``nvflare --format json ARGS``; its ``data`` or ProvisioningError with FLARE's reason."""
    proc = subprocess.run([sys.executable, "-m", "nvflare.cli", "--format", "json", *args],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    answer = _last_json(proc.stdout) or _last_json(proc.stderr)
    if proc.returncode == 0 and answer and answer.get("status") == "ok":
        return answer.get("data") or {}
    if not answer:
        raise ProvisioningError(f"{what}: nvflare {' '.join(args[:2])} failed (exit {proc.returncode}): "
                                f"{(proc.stderr or proc.stdout).strip()[-600:]}")
    reason = "; ".join(str(answer[k]) for k in ("error_code", "message", "hint", "detail") if answer.get(k))
    raise ProvisioningError(f"{what}: refused by nvflare {' '.join(args[:2])}: {reason}")


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def request_site(name: str, org: str, out: Path, project: Project) -> Path:
    """Key, CSR and ``NAME.request.zip`` in ``out`` (mode 0700); only the zip is to be sent.
    ``name`` and ``org`` are checked against FLARE's rules before anything is written."""
    check_name("site", name, "site request: NAME")
    check_name("org", org, "site request: --org")
    builders = [b for b in project.config.get("builders") or [] if str(b.get("path", "")).rsplit(".", 1)[-1] in KIT_BUILDERS]
    definition = {"name": project.name, "participants": [{"name": name, "type": "client", "org": org}],
                  "builders": builders}
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory() as tmp:
        participant = path_under(tmp, f"{name}.yml")
        participant.write_text(yaml.safe_dump(definition, sort_keys=False))
        data = nvflare(["cert", "request", "-p", str(participant), "--out", str(out)], f"site request {name!r}")
    return Path(data["request_zip"])


def read_request(request_zip: Path) -> dict:
    """``request.json`` of a FLARE request zip (FLARE checks it again, with the CSR, at approval)."""
    try:
        with zipfile.ZipFile(request_zip) as zf:
            meta = json.loads(zf.read("request.json"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise ProvisioningError(f"{request_zip}: not a request zip of `consortium site request` ({e})") from None
    if not isinstance(meta, dict):
        raise ProvisioningError(f"{request_zip}: request.json must be a JSON object")
    return meta


def check_allowed(request: dict, consortium: Project, source: Path, add_site: bool) -> None:
    """ProvisioningError unless ``request`` asks for a site of ``consortium`` (or, with
    ``add_site``, for a new name that no participant uses)."""
    where = f"{source}: request.json field"
    if request.get("project") != consortium.name:
        raise ProvisioningError(f"{where} 'project' = {request.get('project')!r}; this consortium is "
                                f"{consortium.name!r} ({consortium.path})")
    if request.get("kind") != "site" or request.get("cert_type") != "client":
        raise ProvisioningError(f"{where} 'kind' = {request.get('kind')!r}: only site requests are approved here")
    name, org = request.get("name"), request.get("org")
    check_name("site", name, f"{where} 'name'")
    check_name("org", org, f"{where} 'org'")
    known = {p.get("name"): p for p in consortium.config["participants"]}
    if name in known and known[name].get("type") != "client":
        raise ProvisioningError(f"{where} 'name' = {name!r} is the {known[name].get('type')} of {consortium.path}")
    if name in known and known[name].get("org") != org:
        raise ProvisioningError(f"{where} 'org' = {org!r}, but {consortium.path} has site {name!r} in org "
                                f"{known[name].get('org')!r}")
    if name not in known and not add_site:
        raise ProvisioningError(f"{where} 'name' = {name!r} is not a site of {consortium.path} (sites: "
                                f"{consortium.clients}); approve with --add-site to add it")


def _root_ca(state: Path):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from nvflare.lighter.utils import load_crt_bytes

    path = state / "cert.json"
    try:
        certs = json.loads(path.read_text())
        return load_crt_bytes(certs["root_cert"].encode()), load_pem_private_key(certs["root_pri_key"].encode(), None)
    except (OSError, KeyError, ValueError) as e:
        raise ProvisioningError(f"{path}: no root CA of this consortium ({type(e).__name__}: {e}); "
                                "provision it first with `consortium provision --output WS`") from None


def _write_ca_dir(folder: Path, project: Project, root_cert, root_key) -> Path:
    """FLARE's CA folder (rootCA.pem/.key, ca.json) and project profile for ``nvflare cert approve``."""
    from cryptography.hazmat.primitives import serialization
    from nvflare.tool.cert.fingerprint import cert_fingerprint_sha256

    folder.mkdir(mode=0o700)
    (folder / "rootCA.pem").write_bytes(root_cert.public_bytes(serialization.Encoding.PEM))
    key = os.open(folder / "rootCA.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(key, "wb") as f:
        f.write(root_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    (folder / "ca.json").write_text(json.dumps({"project": project.name, "provision_version": "00",
                                                "rootCA_fingerprint": cert_fingerprint_sha256(root_cert)}))
    server = project.server
    static = next((b.get("args") or {} for b in project.config.get("builders") or []
                   if str(b.get("path", "")).endswith("StaticFileBuilder")), {})
    profile = {"name": project.name, "scheme": static.get("scheme", "http"),  # FLARE's StaticFileBuilder default
               "connection_security": server.get("connection_security", "mtls"),
               "server": {"host": server.get("default_host") or server["name"], "fed_learn_port": project.port,
                          "admin_port": int(server.get("admin_port", project.port))}}
    (folder / "profile.yml").write_text(yaml.safe_dump(profile))
    return folder


def uses_he(project: Project) -> bool:
    return any(str(b.get("path", "")).endswith("HEKeysBuilder") for b in project.config.get("builders") or [])


def approve(request_zip: Path, workspace: Path, policies: Project, out: Path | None = None,
            add_site: bool = False, valid_days: int = 1095) -> Path:
    """``NAME.approved.zip`` in ``out`` (default: beside the request) for a request to the
    consortium provisioned in ``workspace``; ``policies`` gives the site policy templates."""
    from nvflare.lighter.utils import load_crt_bytes, sign_content
    from nvflare.tool.cert.fingerprint import cert_fingerprint_sha256

    from consortium.provisioning.builders.he_keys import PUBLIC_STATE_FILE, STATE_FILE

    request_zip, workspace = request_zip.resolve(), workspace.resolve()
    consortium = Project.load(workspace / "project.yml")
    request = read_request(request_zip)
    check_allowed(request, consortium, request_zip, add_site)
    name, org, request_id = request["name"], request["org"], request["request_id"]
    target = path_under(out or request_zip.parent, f"{name}.approved.zip")
    if target.exists():
        raise ProvisioningError(f"{target} exists; move it away before approving again")
    state = workspace / consortium.name / "state"
    root_cert, root_key = _root_ca(state)
    config = consortium.config
    if name not in consortium.clients:
        config = {**config, "participants": [*config["participants"], {"name": name, "type": "client", "org": org}]}
    members = {ab.PROJECT: yaml.safe_dump(config, sort_keys=False).encode()}
    for member in ab.POLICIES:
        members[member] = (policies.policies_dir / Path(member).name).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        ca = _write_ca_dir(Path(tmp) / "ca", consortium, root_cert, root_key)
        signed = Path(tmp) / f"{name}.signed.zip"
        nvflare(["cert", "approve", str(request_zip), "--ca-dir", str(ca), "--profile", str(ca / "profile.yml"),
                 "--out", str(signed), "--valid-days", str(valid_days)], f"approve {request_zip}")
        members[signed.name] = signed.read_bytes()
    he = uses_he(consortium)
    if he:
        with zipfile.ZipFile(io.BytesIO(members[f"{name}.signed.zip"])) as zf:
            site_cert = load_crt_bytes(zf.read(f"{name}.crt"))
        client, server = (state / STATE_FILE).read_bytes(), (state / PUBLIC_STATE_FILE).read_bytes()
        members[ab.CLIENT_SEALED] = ab.seal(client, site_cert.public_key(), seal_context(consortium.name, name, request_id))
        members[ab.SERVER_CONTEXT] = server
        members[ab.HE_SIGNATURE] = json.dumps({"client_context.tenseal": sign_content(client, root_key),
                                               "server_context.tenseal": sign_content(server, root_key)}).encode()
    manifest = {"project": consortium.name, "name": name, "org": org, "request_id": request_id, "he": he,
                "rootca_fingerprint": cert_fingerprint_sha256(root_cert)}
    ab.Bundle(manifest, members).write(target, root_key)
    if name not in consortium.clients:
        (workspace / "project.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def seal_context(project: str, name: str, request_id: str) -> str:
    return f"{project}/{name}/{request_id}/client_context.tenseal"


def add_parser(sub) -> None:
    """``site request``, ``approve`` and ``package`` under the ``consortium`` command's subparsers."""
    site = sub.add_parser("site", help="at a hospital: request a kit whose private key stays there")
    p = site.add_subparsers(dest="action", required=True).add_parser(
        "request", help="make the site's key and certificate request; send only NAME.request.zip")
    p.add_argument("name", help="the site's name")
    p.add_argument("--org", required=True, help="the hospital's organisation")
    p.add_argument("--out", type=Path, default=None, help="folder for key and request, kept at the site (default: ./NAME)")
    p.add_argument("--project", type=Path, default=default_path("provisioning/project.yml"),
                   help="the consortium's project.yml: its name and kit builders (default: %(default)s)")

    p = sub.add_parser("approve", help="project admin: sign a site's request with the consortium's root CA")
    p.add_argument("request_zip", type=Path, help="NAME.request.zip from `consortium site request`")
    p.add_argument("--workspace", type=Path, required=True,
                   help="the provisioning workspace (`consortium provision --output`, or a POC workspace)")
    p.add_argument("--project", type=Path, default=default_path("provisioning/project.yml"),
                   help="project.yml beside the site policy templates to send (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="folder for NAME.approved.zip (default: beside the request)")
    p.add_argument("--add-site", action="store_true", help="add a site not yet in <workspace>/project.yml")
    p.add_argument("--valid-days", type=int, default=1095, help="certificate validity (default: %(default)s)")

    p = sub.add_parser("package", help="at a hospital: build the startup kit from an approval bundle")
    p.add_argument("bundle", type=Path, help="NAME.approved.zip from `consortium approve`")
    p.add_argument("--request-dir", type=Path, required=True, help="the folder of `consortium site request`")
    p.add_argument("--fingerprint", required=True,
                   help="the root CA's SHA-256 fingerprint, as the project admin gave it to you out of band")
    p.add_argument("--workspace", type=Path, default=Path("workspace"),
                   help="where the kit is written: WS/<project>/prod_00/NAME (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Errors are ValueErrors naming file, field and value (``consortium`` prints them, exit 2)."""
    if args.command == "site":
        check_name("site", args.name, "site request: NAME")  # before ./NAME is made from it
        out = args.out or Path(args.name)
        zip_path = request_site(args.name, args.org, out, Project.load(args.project))
        print(f"request: {zip_path}\nsend only this zip to the project admin; {out} keeps the private key")
    elif args.command == "approve":
        bundle = approve(args.request_zip, args.workspace, Project.load(args.project), args.out,
                         add_site=args.add_site, valid_days=args.valid_days)
        manifest = ab.Bundle.read(bundle)[0].manifest
        print(f"approved: {bundle}\nroot CA fingerprint (tell the site out of band): {manifest['rootca_fingerprint']}")
        if args.add_site:
            print(f"{manifest['name']} is a site of {args.workspace / 'project.yml'}; add it to {args.project} too")
    else:
        from consortium.provisioning.distributed.package import package

        print(f"startup kit: {package(args.bundle, args.request_dir, args.fingerprint, args.workspace)}")
    return 0
