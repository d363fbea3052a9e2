"""Kits whose private key never leaves the hospital: FLARE's distributed provisioning
(``nvflare cert request`` / ``approve``, ``nvflare package``) with what a consortium kit needs:
the project admin's approval (``consortium site approve NAME.request.zip --workspace WS``).

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
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import yaml

from consortium.fileio import path_under
from consortium.names import check_name
from consortium.provisioning.distributed import bundle as ab
from consortium.provisioning.distributed.request import ProvisioningError, nvflare
from consortium.provisioning.project import Project


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


def makes_he_keys(project: Project) -> bool:
    """Whether the project provisions CKKS keys (its builders include the HE keys builder)."""
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
    he = makes_he_keys(consortium)
    if he:
        with zipfile.ZipFile(io.BytesIO(members[f"{name}.signed.zip"])) as zf:
            site_cert = load_crt_bytes(zf.read(f"{name}.crt"))
        client, server = (state / STATE_FILE).read_bytes(), (state / PUBLIC_STATE_FILE).read_bytes()
        members[ab.CLIENT_SEALED] = ab.seal(client, site_cert.public_key(), ab.seal_context(consortium.name, name, request_id))
        members[ab.SERVER_CONTEXT] = server
        members[ab.HE_SIGNATURE] = json.dumps({"client_context.tenseal": sign_content(client, root_key),
                                               "server_context.tenseal": sign_content(server, root_key)}).encode()
    manifest = {"project": consortium.name, "name": name, "org": org, "request_id": request_id, "he": he,
                "rootca_fingerprint": cert_fingerprint_sha256(root_cert)}
    ab.Bundle(manifest, members).write(target, root_key)
    if name not in consortium.clients:
        (workspace / "project.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return target
