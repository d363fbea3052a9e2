"""``consortium site package``: the hospital turns an approval bundle into its startup kit.

Checks, in order, before anything is written: the root CA in FLARE's signed zip has the
fingerprint the project admin gave out of band; the bundle's manifest is that root CA's signature
and lists exactly the members present, with their hashes; the bundle is for the site whose key is
in the request folder. HE contexts are opened with the site's private key and checked (CKKS,
secret at the site) and against the root CA's signatures. Then FLARE's ``nvflare package`` builds
the kit (it checks the signed zip, the request id, and that key and certificate match), and the
site policies and HE contexts are installed; a kit that cannot get them is removed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import yaml

from consortium.fileio import SECRET_MODE, path_under, restrict_secrets
from consortium.names import check_name
from consortium.protocol.files import HE_SIGNATURE_FILE
from consortium.provisioning.distributed import bundle as ab
from consortium.provisioning.distributed.request import ProvisioningError, nvflare
from consortium.provisioning.project import Project
from consortium.provisioning.provision import install_site_policies


def _signed_member(signed_zip: bytes, member: str, source: Path) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(signed_zip)) as zf:
            return zf.read(member)
    except (KeyError, zipfile.BadZipFile) as e:
        raise ProvisioningError(f"{source}: FLARE's signed zip has no usable {member} ({e})") from None


def verified_bundle(path: Path, fingerprint: str) -> tuple[ab.Bundle, object]:
    """The bundle and its root CA certificate, after the fingerprint, signature and hash checks."""
    from nvflare.lighter.utils import load_crt_bytes
    from nvflare.tool.cert.fingerprint import cert_fingerprint_sha256, normalize_sha256_fingerprint

    expected = normalize_sha256_fingerprint(fingerprint or "")
    if not expected:
        raise ProvisioningError(f"--fingerprint = {fingerprint!r} is not a SHA-256 fingerprint (SHA256:AA:BB:...); "
                                "ask the project admin for the root CA fingerprint `consortium site approve` printed")
    bundle, raw, signature = ab.Bundle.read(path)
    name = bundle.manifest.get("name")
    signed = bundle.members.get(f"{name}.signed.zip")
    if not isinstance(name, str) or signed is None:
        raise ProvisioningError(f"{path}: {ab.MANIFEST} field 'name' = {name!r} names no signed zip in the bundle")
    root = load_crt_bytes(_signed_member(signed, "rootCA.pem", path))
    actual = cert_fingerprint_sha256(root)
    if actual != expected:
        raise ProvisioningError(f"{path}: root CA fingerprint is {actual}, not the expected --fingerprint {expected}: "
                                "this bundle was not approved by your consortium's CA")
    bundle.verify(raw, signature, root.public_key(), path)
    signed_meta = json.loads(_signed_member(signed, "signed.json", path))
    for field in ("name", "project", "request_id", "org"):
        if signed_meta.get(field) != bundle.manifest.get(field):
            raise ProvisioningError(f"{path}: {ab.MANIFEST} field {field!r} = {bundle.manifest.get(field)!r} but the "
                                    f"signed zip says {signed_meta.get(field)!r}")
    return bundle, root


def _he_contexts(bundle: ab.Bundle, root, request_dir: Path, source: Path) -> dict[str, bytes]:
    """``{file name: bytes}`` of the HE contexts for the kit's startup/, opened and checked."""
    import tenseal as ts
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from nvflare.lighter.utils import verify_content

    from consortium.crypto.ckks import check_context

    m = bundle.manifest
    key_path = request_dir / f"{m['name']}.key"
    try:
        key = load_pem_private_key(key_path.read_bytes(), None)
    except (OSError, ValueError) as e:
        raise ProvisioningError(f"{key_path}: the site's private key cannot be read ({e})") from None
    client = ab.unseal(bundle.members[ab.CLIENT_SEALED], key, ab.seal_context(m["project"], m["name"], m["request_id"]),
                       f"{source}: {ab.CLIENT_SEALED}")
    server = bundle.members[ab.SERVER_CONTEXT]
    signatures = json.loads(bundle.members[ab.HE_SIGNATURE])
    files = {"client_context.tenseal": client, "server_context.tenseal": server}
    for name, data in files.items():
        try:
            verify_content(data, signatures[name], root.public_key())
        except Exception:
            raise ProvisioningError(f"{source}: {ab.HE_SIGNATURE} has no valid root CA signature of {name}") from None
    try:
        check_context(ts.context_from(client), want_secret=True)
        check_context(ts.context_from(server), want_secret=False)
    except Exception as e:
        raise ProvisioningError(f"{source}: HE contexts unusable: {e}") from None
    return {**files, HE_SIGNATURE_FILE: bundle.members[ab.HE_SIGNATURE]}


def install_policies(kit: Path, name: str, bundle: ab.Bundle) -> None:
    """The consortium's site policies for ``name`` written into ``kit`` by
    :func:`install_site_policies`, which installs a whole consortium: it runs on a scratch folder
    where ``name`` is a link to ``kit`` and every other site of the bundle's project.yml a stand-in
    (its ``resources.json.default`` this kit's, an empty ``fed_*.json``), whose files are thrown away."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for member, data in bundle.members.items():
            if member == ab.PROJECT or member in ab.POLICIES:
                (tmp / member).parent.mkdir(parents=True, exist_ok=True)
                (tmp / member).write_bytes(data)
        project = Project.load(tmp / ab.PROJECT)
        if name not in project.clients:
            raise ProvisioningError(f"{ab.PROJECT} in the bundle: 'participants' has no client {name!r}")
        kits = tmp / "kits"
        kits.mkdir()
        (kits / name).symlink_to(kit, target_is_directory=True)
        default = kit / "local" / "resources.json.default"
        server = project.server["name"]
        for site in (server, *project.clients):
            if site != name:
                for folder in ("local", "startup"):
                    (kits / site / folder).mkdir(parents=True)
                shutil.copyfile(default, kits / site / "local" / default.name)
                fed = "fed_server.json" if site == server else "fed_client.json"  # the policies extend it
                (kits / site / "startup" / fed).write_text("{}\n")
        install_site_policies(project, kits)


def name_the_server(kit: Path, bundle: ab.Bundle) -> None:
    """``nvflare package`` names the server the site authenticates (``servers[0].identity``) by
    its host; a consortium's server has its own name in project.yml (``server``, reached at its
    ``default_host``), which its certificate carries: the kit expects that name."""
    server = next(p["name"] for p in yaml.safe_load(bundle.members[ab.PROJECT])["participants"] if p.get("type") == "server")
    path = kit / "startup" / "fed_client.json"
    config = json.loads(path.read_text())
    for entry in config.get("servers", []):
        entry["identity"] = server
    path.write_text(json.dumps(config, indent=2))


def package(bundle_path: Path, request_dir: Path, fingerprint: str, workspace: Path) -> Path:
    """The site's startup kit, ``<workspace>/<project>/prod_00/<name>``; see the module docstring."""
    bundle_path, request_dir, workspace = bundle_path.resolve(), request_dir.resolve(), workspace.resolve()
    bundle, root = verified_bundle(bundle_path, fingerprint)
    name = check_name("site", bundle.manifest["name"], f"{bundle_path}: {ab.MANIFEST} field 'name'")
    request = request_dir / "request.json"
    try:
        local_id = json.loads(request.read_text()).get("request_id")
    except (OSError, ValueError) as e:
        raise ProvisioningError(f"{request}: not the request folder of `consortium site request` ({e})") from None
    if local_id != bundle.manifest.get("request_id"):
        raise ProvisioningError(f"{request}: field 'request_id' = {local_id!r}, but the bundle answers request "
                                f"{bundle.manifest.get('request_id')!r}: use that request's folder")
    he = _he_contexts(bundle, root, request_dir, bundle_path) if bundle.carries_he_contexts else {}
    with tempfile.TemporaryDirectory() as tmp:
        signed = path_under(tmp, f"{name}.signed.zip")
        signed.write_bytes(bundle.members[signed.name])
        data = nvflare(["package", str(signed), "-w", str(workspace), "--request-dir", str(request_dir),
                        "--fingerprint", fingerprint], f"package {bundle_path}")
    kit = Path(str(data.get("output_dir"))).resolve()
    if kit == workspace or not kit.is_relative_to(workspace):
        raise ProvisioningError(f"{bundle_path}: nvflare package wrote the kit to {data.get('output_dir')!r}, not under "
                                f"--workspace {workspace}")
    try:
        install_policies(kit, name, bundle)
        name_the_server(kit, bundle)
        for file, content in he.items():  # CKKS contexts readable by their owner only, from the start
            fd = os.open(kit / "startup" / file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(content)
        restrict_secrets(kit)  # the key and anything else FLARE's `nvflare package` wrote
    except BaseException:
        shutil.rmtree(kit, ignore_errors=True)  # no kit without its policies and keys
        raise
    return kit
