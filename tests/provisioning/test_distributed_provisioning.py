"""Keys that never leave the hospital: `consortium site request` at the site, `approve` by the
project admin with the root CA of `consortium provision`, `package` at the site."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest
from cryptography import x509

from consortium.cli.main import main
from consortium.protocol.files import HE_SIGNATURE_FILE
from consortium.provisioning.builders.he_keys import PUBLIC_STATE_FILE, STATE_FILE
from consortium.provisioning.distributed import bundle as ab
from consortium.provisioning.distributed.approve import approve
from consortium.provisioning.distributed.bundle import seal_context
from consortium.provisioning.distributed.package import package
from consortium.provisioning.distributed.request import ProvisioningError, request_site
from consortium.provisioning.project import Project
from consortium.provisioning.provision import provision

SITE, ORG = "basel", "university_hospital_basel"


@pytest.fixture(scope="module")
def flow(project, tmp_path_factory):
    """A provisioned consortium (the admin's workspace) and one site taken through request,
    approve (as a new site) and package with the `consortium` command."""
    root = tmp_path_factory.mktemp("distributed")
    admin, hospital = root / "admin", root / "hospital"
    kits = provision(project, admin / "ws", poc=False)
    request_dir = hospital / "request"
    assert main(["site", "request", SITE, "--org", ORG, "--out", str(request_dir), "--project", str(project.path)]) == 0
    (admin / "inbox").mkdir()
    request = (admin / "inbox" / f"{SITE}.request.zip")
    request.write_bytes((request_dir / f"{SITE}.request.zip").read_bytes())  # only the zip travels
    assert main(["site", "approve", str(request), "--workspace", str(admin / "ws"), "--project", str(project.path),
                 "--out", str(admin / "outbox"), "--add-site"]) == 0
    bundle = hospital / f"{SITE}.approved.zip"
    bundle.write_bytes((admin / "outbox" / bundle.name).read_bytes())
    fingerprint = ab.Bundle.read(bundle)[0].manifest["rootca_fingerprint"]
    assert main(["site", "package", str(bundle), "--request-dir", str(request_dir), "--fingerprint", fingerprint,
                 "--workspace", str(hospital / "ws")]) == 0
    kit = hospital / "ws" / project.name / "prod_00" / SITE
    return {"root": root, "admin": admin, "hospital": hospital, "kits": kits, "request_dir": request_dir,
            "request": request, "bundle": bundle, "fingerprint": fingerprint, "kit": kit,
            "state": admin / "ws" / project.name / "state"}


def _new_request(flow, name: str, org: str = ORG) -> Path:
    out = flow["root"] / "requests" / name
    return request_site(name, org, out, Project.load(flow["admin"] / "ws" / "project.yml"))


def test_packaged_kit_chains_to_the_root_ca_of_the_provisioned_kits(flow):
    provisioned_root = (flow["kits"] / "cleveland" / "startup" / "rootCA.pem").read_bytes()
    root = x509.load_pem_x509_certificate(provisioned_root)
    cert = x509.load_pem_x509_certificate((flow["kit"] / "startup" / "client.crt").read_bytes())

    cert.verify_directly_issued_by(root)  # raises when another CA signed it
    assert (flow["kit"] / "startup" / "rootCA.pem").read_bytes() == provisioned_root
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == SITE


def _files_with(folder: Path, needle: bytes) -> list[str]:
    """Files under ``folder`` holding ``needle``, looking inside zip files (and zips in zips)."""
    def scan(data: bytes, where: str) -> list[str]:
        hits = [where] if needle in data else []
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for n in zf.namelist():
                    hits += scan(zf.read(n), f"{where}!{n}")
        return hits
    return [h for p in sorted(folder.rglob("*")) if p.is_file() for h in scan(p.read_bytes(), str(p))]


def test_site_private_key_stays_in_the_request_folder(flow, isolated_home):
    key = (flow["request_dir"] / f"{SITE}.key").read_bytes()
    body = b"".join(key.splitlines()[1:-1])[:64]  # the key's PEM body, however it is wrapped
    assert b"PRIVATE KEY" in key and len(body) == 64

    assert _files_with(flow["admin"], key.strip()) == []
    assert [h for h in _files_with(flow["admin"], body)] == []
    assert [h for h in _files_with(isolated_home / ".nvflare", body) if "cert_approves" in h] == []
    assert (flow["kit"] / "startup" / "client.key").read_bytes() == key  # the hospital's own kit


def test_every_secret_of_the_three_steps_is_readable_by_its_owner_only(flow):
    from consortium.fileio import is_secret

    for folder in (flow["admin"] / "ws", flow["request_dir"], flow["kit"]):
        secrets = {p: stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file() and is_secret(p)}
        assert secrets and {str(p): oct(m) for p, m in secrets.items() if m != 0o600} == {}, folder
    assert (flow["kit"] / "startup" / "server_context.tenseal") in set(flow["kit"].rglob("*"))


def test_packaged_kit_has_the_site_policies_and_the_consortium_he_contexts(flow, project):
    from nvflare.lighter.utils import verify_content

    local, startup = flow["kit"] / "local", flow["kit"] / "startup"
    provisioned = flow["kits"] / "cleveland"
    assert (local / "authorization.json").read_bytes() == (project.policies_dir / "authorization.json").read_bytes()
    assert json.loads((local / "resources.json").read_text())["class_allow_list"] == \
        json.loads((provisioned / "local" / "resources.json").read_text())["class_allow_list"]
    privacy = json.loads((local / "privacy.json").read_text())
    assert "consortium.flare.audit.site.SiteAuditTrail" in [c["path"] for c in privacy["components"]]

    assert (startup / "client_context.tenseal").read_bytes() == (flow["state"] / STATE_FILE).read_bytes()
    assert (startup / "server_context.tenseal").read_bytes() == (flow["state"] / PUBLIC_STATE_FILE).read_bytes()
    assert stat.S_IMODE((startup / "client_context.tenseal").stat().st_mode) == 0o600
    root = x509.load_pem_x509_certificate((startup / "rootCA.pem").read_bytes())
    signatures = json.loads((startup / HE_SIGNATURE_FILE).read_text())
    for name in ("client_context.tenseal", "server_context.tenseal"):
        verify_content((startup / name).read_bytes(), signatures[name], root.public_key())


def test_the_he_secret_key_travels_sealed_to_the_site_key(flow):
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    m = ab.Bundle.read(flow["bundle"])[0]
    secret = (flow["state"] / STATE_FILE).read_bytes()
    context = seal_context(m.manifest["project"], SITE, m.manifest["request_id"])
    site_key = load_pem_private_key((flow["request_dir"] / f"{SITE}.key").read_bytes(), None)
    sealed = m.members[ab.CLIENT_SEALED]

    assert ab.unseal(sealed, site_key, context, "t") == secret
    with pytest.raises(ab.BundleError, match="cannot open with this site's private key"):
        ab.unseal(sealed, rsa.generate_private_key(public_exponent=65537, key_size=2048), context, "t")
    with pytest.raises(ab.BundleError, match="sealed for"):
        ab.unseal(sealed, site_key, seal_context(m.manifest["project"], "cleveland", m.manifest["request_id"]), "t")
    assert _files_with(flow["admin"] / "outbox", secret[1000:1256]) == []  # no plaintext in what leaves the admin


def test_approve_refuses_a_name_that_is_not_a_site_and_writes_nothing(flow, capsys):
    request = _new_request(flow, "stranger")
    project_yml = (flow["admin"] / "ws" / "project.yml").read_bytes()

    rc = main(["site", "approve", str(request), "--workspace", str(flow["admin"] / "ws"), "--out", str(flow["root"] / "o1")])

    err = capsys.readouterr().err
    assert rc == 2
    assert f"{request}: request.json field 'name' = 'stranger' is not a site of" in err and "--add-site" in err
    assert not (flow["root"] / "o1").exists()
    assert (flow["admin"] / "ws" / "project.yml").read_bytes() == project_yml


def test_approve_refuses_a_known_site_requested_by_another_org(flow):
    request = _new_request(flow, "cleveland", org="not_cleveland")
    with pytest.raises(ProvisioningError, match=r"field 'org' = 'not_cleveland', but .* has site 'cleveland' in org"):
        approve(request, flow["admin"] / "ws", _project_of(flow), flow["root"] / "o2")


def _project_of(flow):
    return Project.load(Path(__file__).resolve().parents[2] / "provisioning" / "project.yml")


def _rezip(source: Path, target: Path, change) -> Path:
    with zipfile.ZipFile(source) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    change(members)
    with zipfile.ZipFile(target, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    return target


def test_approve_refuses_a_tampered_request(flow):
    request = _new_request(flow, "hungary", org="hungarian_institute_of_cardiology")

    def swap_csr(members):  # another key's CSR under the same request.json
        other = _new_request(flow, "hungary-2")
        with zipfile.ZipFile(other) as zf:
            members["hungary.csr"] = zf.read("hungary-2.csr")
    tampered = _rezip(request, flow["root"] / "tampered.request.zip", swap_csr)

    with pytest.raises(ProvisioningError, match="refused by nvflare cert approve: .*CSR"):
        approve(tampered, flow["admin"] / "ws", _project_of(flow), flow["root"] / "o3")


@pytest.mark.parametrize("member", [ab.PROJECT, ab.SERVER_CONTEXT, f"{SITE}.signed.zip"])
def test_package_refuses_a_bundle_with_an_altered_member(flow, tmp_path, member):
    def alter(members):
        members[member] = members[member] + b"\n"
    tampered = _rezip(flow["bundle"], tmp_path / "t.approved.zip", alter)

    with pytest.raises(ValueError, match=f"member {member} does not match its SHA-256"):
        package(tampered, flow["request_dir"], flow["fingerprint"], tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


def test_package_refuses_a_bundle_whose_manifest_was_rewritten(flow, tmp_path):
    def drop_he(members):
        manifest = json.loads(members[ab.MANIFEST])
        manifest["he"] = False
        for m in ab.HE_MEMBERS:
            members.pop(m)
            manifest["files"].pop(m)
        members[ab.MANIFEST] = json.dumps(manifest).encode()
    tampered = _rezip(flow["bundle"], tmp_path / "t.approved.zip", drop_he)

    with pytest.raises(ValueError, match="is not the root CA's signature"):
        package(tampered, flow["request_dir"], flow["fingerprint"], tmp_path / "ws")


def test_package_refuses_a_wrong_fingerprint(flow, tmp_path, capsys):
    wrong = "SHA256:" + ":".join(["AB"] * 32)

    rc = main(["site", "package", str(flow["bundle"]), "--request-dir", str(flow["request_dir"]), "--fingerprint", wrong,
               "--workspace", str(tmp_path / "ws")])

    err = capsys.readouterr().err
    assert rc == 2 and f"root CA fingerprint is {flow['fingerprint']}, not the expected --fingerprint {wrong}" in err
    assert not (tmp_path / "ws").exists()


def test_package_refuses_another_requests_folder(flow, tmp_path):
    other = _new_request(flow, "zurich").parent

    with pytest.raises(ProvisioningError, match=r"request.json: field 'request_id' = .* use that request's folder"):
        package(flow["bundle"], other, flow["fingerprint"], tmp_path / "ws")


def test_flare_verifies_the_packaged_he_contexts_against_the_kit_root_ca(flow, tmp_path):
    """The detached signatures are FLARE's signature.json format: its SecurityContentManager
    accepts them with the kit's rootCA.pem and refuses an altered context."""
    from nvflare.fuel.sec.security_content_service import LoadResult, SecurityContentManager

    startup = Path(shutil.copytree(flow["kit"] / "startup", tmp_path / "startup"))
    manager = SecurityContentManager(str(startup), signature_filename=HE_SIGNATURE_FILE)
    assert manager.load_content("client_context.tenseal")[1] == LoadResult.OK
    assert manager.load_content("server_context.tenseal")[1] == LoadResult.OK

    with open(startup / "server_context.tenseal", "ab") as f:
        f.write(b"\0")
    assert manager.load_content("server_context.tenseal")[1] == LoadResult.INVALID_SIGNATURE


@pytest.fixture
def kit_security(monkeypatch):
    """FLARE's SecurityContentService of a site process started from a kit's startup/ folder (class
    state, restored after the test)."""
    from nvflare.fuel.sec.security_content_service import SecurityContentService

    monkeypatch.setattr(SecurityContentService, "content_folder", None)
    monkeypatch.setattr(SecurityContentService, "security_content_manager", None)
    return lambda startup: SecurityContentService.initialize(content_folder=str(startup))


def test_a_packaged_kit_s_site_loads_the_he_contexts_in_secure_mode_and_refuses_an_altered_one(flow, tmp_path, kit_security):
    """What an HE job's site does (he_site.load_context) in a kit that has no signature.json."""
    from nvflare.apis.fl_constant import FLContextKey
    from nvflare.apis.fl_context import FLContext

    from consortium.crypto.ckks import key_id_of
    from consortium.flare.he.site import load_context

    startup = Path(shutil.copytree(flow["kit"] / "startup", tmp_path / "startup"))
    assert not (startup / "signature.json").exists()
    kit_security(startup)
    ctx = FLContext()
    ctx.set_prop(FLContextKey.SECURE_MODE, True, private=True, sticky=False)
    context = load_context(ctx, secret=True)
    assert context.is_private()
    assert key_id_of((startup / "server_context.tenseal").read_bytes()) == key_id_of(
        (flow["state"] / PUBLIC_STATE_FILE).read_bytes())

    with open(startup / "client_context.tenseal", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="client_context.tenseal.*INVALID_SIGNATURE"):
        load_context(ctx, secret=True)


@pytest.fixture
def admin_workspace(flow, tmp_path):
    """A copy of the admin's provisioning workspace, for a test that changes it."""
    return Path(shutil.copytree(flow["admin"] / "ws", tmp_path / "ws", symlinks=True))


def _hashes(kits: Path) -> dict[str, str]:
    return {str(p.relative_to(kits)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(kits.rglob("*")) if p.is_file()}


def test_add_site_makes_a_signed_kit_under_the_same_root_and_leaves_every_kit_as_it_was(admin_workspace, project):
    kits = admin_workspace / project.name / "prod_00"
    before = _hashes(kits)

    assert main(["site", "add", "geneva", "--org", "hug", "--workspace", str(admin_workspace),
                 "--project", str(project.path)]) == 0

    after = _hashes(kits)
    assert {k: after.get(k) for k in before} == before
    kit = kits / "geneva"
    root = x509.load_pem_x509_certificate((kits / "cleveland" / "startup" / "rootCA.pem").read_bytes())
    x509.load_pem_x509_certificate((kit / "startup" / "client.crt").read_bytes()).verify_directly_issued_by(root)
    state = admin_workspace / project.name / "state"
    assert (kit / "startup" / "client_context.tenseal").read_bytes() == (state / STATE_FILE).read_bytes()
    assert {"signature.json", "client_context.tenseal"} <= {p.name for p in (kit / "startup").iterdir()}
    assert (kit / "local" / "privacy.json").is_file()
    assert "geneva" in Project.load(admin_workspace / "project.yml").clients
    assert "geneva" in json.loads((state / "cert.json").read_text())


def test_add_site_refuses_a_name_already_in_the_consortium(admin_workspace, project, capsys):
    before = _hashes(admin_workspace)

    rc = main(["site", "add", "hungary", "--org", "hug", "--workspace", str(admin_workspace), "--project", str(project.path)])

    assert rc == 2
    assert f"{admin_workspace / 'project.yml'}: field 'participants' already has 'hungary'" in capsys.readouterr().err
    assert _hashes(admin_workspace) == before
