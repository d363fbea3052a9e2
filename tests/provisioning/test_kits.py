"""Kits provisioned from project.yml carry the consortium's site policies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from consortium.provisioning.project import ConfigurationError, Project
from consortium.provisioning.provision import provision


@pytest.fixture(scope="module")
def kits(project, tmp_path_factory):
    return provision(project, tmp_path_factory.mktemp("kits"), poc=True), project


def test_every_site_admits_exact_classes_only_and_keeps_enforcement(kits):
    prod, project = kits
    for site in ["server", *project.clients]:
        res = json.loads((prod / site / "local" / "resources.json").read_text())
        assert res["class_list_enforcement_mode"] == "enforce"
        assert "consortium.flare.aggregators.round.RoundAggregator" in res["class_allow_list"]
        assert [e for e in res["class_allow_list"] if e.endswith(".") or e.count(".") < 2] == []  # no prefixes


def test_no_role_may_submit_custom_code(kits):
    prod, project = kits
    for site in ["server", *project.clients]:
        authz = json.loads((prod / site / "local" / "authorization.json").read_text())
        assert {p.get("byoc") for p in authz["permissions"].values() if isinstance(p, dict)} <= {"none", None}


def test_server_job_storage_lives_in_the_workspace_not_tmp_nvflare(kits):
    prod, _ = kits
    text = (prod / "server" / "local" / "resources.json").read_text()
    assert "/tmp/nvflare" not in text
    assert str(prod.parent.parent / "jobs-storage") in text


def test_production_server_storage_is_a_path_on_the_server_host_never_the_provisioning_workspace(project, tmp_path):
    ws = tmp_path / "ws"
    default = provision(project, ws, poc=False)
    chosen = provision(project, tmp_path / "ws2", poc=False, server_storage=Path("/srv/heart"))
    for kits, root in ((default, Path("/var/lib/nvflare") / project.name), (chosen, Path("/srv/heart"))):
        resources = json.loads((kits / "server" / "local" / "resources.json").read_text())
        roots = [c["args"]["uri_root"] for c in resources["components"] if "uri_root" in c.get("args", {})]
        assert roots == [str(root / "jobs-storage")]
        assert str(tmp_path) not in json.dumps(resources)
    with pytest.raises(ConfigurationError, match=r"absolute path on the server host.*'storage'"):
        provision(project, tmp_path / "ws3", poc=False, server_storage=Path("storage"))


def test_sites_and_roles_come_from_project_yml(kits):
    prod, project = kits
    assert sorted(project.clients) == ["cleveland", "hungary", "switzerland", "va-long-beach"]
    assert project.project_admin == "admin@consortium.org"
    for name in [*project.clients, "server", "admin@consortium.org", "scientist@cleveland-clinic.org"]:
        assert (prod / name / "startup" / "rootCA.pem").is_file()


def test_project_without_participants_is_refused(tmp_path):
    bad = tmp_path / "project.yml"
    bad.write_text("name: x\n")
    with pytest.raises(ConfigurationError, match=r"project\.yml: needs top-level fields"):
        Project.load(bad)


# --- the site policies are written by a builder before FLARE's signature builder ---------------

SERVER_AUDIT = "startup/consortium_audit__p_resources.json"


def test_each_kit_holds_the_policies_as_the_templates_define_them(kits):
    from consortium.provisioning.builders.site_policies import SERVER_AUDIT_COMPONENT
    from consortium.provisioning.privacy_scopes import site_privacy_policy
    from consortium.provisioning.provision import class_allow_list

    prod, project = kits
    policies = project.policies_dir
    mode, allowed = class_allow_list(project)
    for site in ["server", *project.clients]:
        local = prod / site / "local"
        assert (local / "authorization.json").read_bytes() == (policies / "authorization.json").read_bytes()
        res = json.loads((local / "resources.json").read_text())
        assert (res["class_list_enforcement_mode"], res["class_allow_list"]) == (mode, allowed)
    for site in project.clients:
        template = json.loads((policies / "privacy.json").read_text())
        assert json.loads((prod / site / "local" / "privacy.json").read_text()) == site_privacy_policy(template, site)
    assert json.loads((prod / "server" / SERVER_AUDIT).read_text()) == {"components": [SERVER_AUDIT_COMPONENT]}
    assert not (prod / "server" / "local" / "privacy.json").exists()


def test_flare_signs_every_policy_file_in_startup_and_local(kits):
    from consortium.flare.kit_policies import policy_signature_problems

    prod, project = kits
    for site in ["server", *project.clients]:
        assert policy_signature_problems(prod / site) == []
        signed = json.loads((prod / site / "local" / "signature.json").read_text())
        assert {"resources.json", "authorization.json"} <= set(signed)
    assert "consortium_audit__p_resources.json" in json.loads((prod / "server" / "startup" / "signature.json").read_text())


def test_a_policy_edited_after_provisioning_is_named(kits, tmp_path):
    from consortium.flare.kit_policies import policy_signature_problems

    prod, _ = kits
    kit = shutil.copytree(prod / "cleveland", tmp_path / "cleveland")
    path = kit / "local" / "authorization.json"
    authz = json.loads(path.read_text())
    authz["permissions"]["member"]["submit_job"] = "any"
    path.write_text(json.dumps(authz))

    assert policy_signature_problems(kit) == [
        f"{path}: changed since it was signed (signature in {kit / 'local' / 'signature.json'} does not match)"]


def test_flares_start_check_refuses_an_edited_server_audit_declaration(kits, tmp_path):
    # what fed_utils._check_secure_content runs on every *__p_resources.json in startup/ in secure mode
    from nvflare.fuel.sec.security_content_service import LoadResult, SecurityContentManager

    prod, _ = kits
    kit = shutil.copytree(prod / "server", tmp_path / "server")
    name = "consortium_audit__p_resources.json"
    assert SecurityContentManager(str(kit / "startup")).load_json(name)[1] == LoadResult.OK

    (kit / "startup" / name).write_text(json.dumps({"components": []}))
    assert SecurityContentManager(str(kit / "startup")).load_json(name)[1] == LoadResult.INVALID_SIGNATURE


def test_install_site_policies_leaves_a_provisioned_kit_unchanged(kits):
    from consortium.provisioning.provision import install_site_policies

    prod, project = kits
    before = {p: p.read_bytes() for p in prod.rglob("*") if p.is_file()}
    install_site_policies(project, prod, storage_root=prod.parent.parent)
    assert {p: p.read_bytes() for p in prod.rglob("*") if p.is_file()} == before


def test_install_site_policies_refuses_to_rewrite_a_signed_policy(kits, tmp_path):
    from consortium.provisioning.provision import install_site_policies

    prod, project = kits
    copy = shutil.copytree(prod, tmp_path / "prod_00")
    with pytest.raises(RuntimeError, match=r"server/local/resources\.json: differs from the site policy .* re-provision"):
        install_site_policies(project, copy, storage_root=tmp_path / "elsewhere")


def test_an_unsigned_kit_gets_the_policies_from_install_site_policies(kits, tmp_path):
    from consortium.provisioning.provision import install_site_policies

    prod, project = kits
    copy = shutil.copytree(prod, tmp_path / "prod_00")
    for site in ["server", *project.clients]:
        for rel in ["local/signature.json", "startup/signature.json", "local/authorization.json", "local/privacy.json",
                    SERVER_AUDIT]:
            (copy / site / rel).unlink(missing_ok=True)
    install_site_policies(project, copy, storage_root=prod.parent.parent)
    for site in ["server", *project.clients]:
        assert (copy / site / "local" / "authorization.json").read_bytes() == (prod / site / "local" / "authorization.json").read_bytes()
    assert (copy / "server" / SERVER_AUDIT).read_bytes() == (prod / "server" / SERVER_AUDIT).read_bytes()


def test_a_project_without_the_policy_builder_is_refused(project, tmp_path):
    config = {**project.config, "builders": [b for b in project.config["builders"] if "SitePoliciesBuilder" not in b["path"]]}
    bare = Project(project.path, config)
    with pytest.raises(ConfigurationError, match=r"project\.yml: field 'builders' must list .*SitePoliciesBuilder once"):
        provision(bare, tmp_path / "ws", poc=True)
    assert not (tmp_path / "ws" / project.name).exists()


@pytest.mark.parametrize("role", ["project_admin", "org_admin", "lead", "member"])
def test_flares_app_authorizer_refuses_custom_code_from_every_role_at_a_site(role):
    # what AppDeployer runs at a site (and at the server) before it deploys a job with a custom/ folder
    from nvflare.apis.app_validation import AppValidationKey
    from nvflare.fuel.sec.authz import AuthorizationService
    from nvflare.private.fed.utils.app_authz import AppAuthzService
    from nvflare.security.security import FLAuthorizer

    from conftest import PROJECT_FILE

    policy = json.loads((PROJECT_FILE.parent / "site_policies" / "authorization.json").read_text())
    saved = AuthorizationService.the_authorizer
    AuthorizationService.the_authorizer = FLAuthorizer("cleveland_clinic", policy)
    try:
        ok, err = AppAuthzService.authorize_app_info({AppValidationKey.BYOC: True}, "someone@cleveland-clinic.org",
                                                     "cleveland_clinic", role)
        plain = AppAuthzService.authorize_app_info({}, "someone@cleveland-clinic.org", "cleveland_clinic", role)
    finally:
        AuthorizationService.the_authorizer = saved
    assert (ok, err) == (False, "BYOC not permitted")
    assert plain == (True, "")
