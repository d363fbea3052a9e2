"""Every site gets the audit component through its privacy policy (kits and simulator
workspaces), FLARE builds it from there, and no template can replace it."""

from __future__ import annotations

import json

import pytest
from nvflare.apis.workspace import Workspace
from nvflare.private.fed.app.fl_conf import create_privacy_manager

from conftest import PROJECT_FILE
from consortium.flare.audit.site import SITE_AUDIT_ID, SiteAuditTrail
from consortium.provisioning.privacy_scopes import AUDIT_COMPONENT, install_site_privacy, simulator_privacy_policy, site_privacy_policy
from consortium.provisioning.project import ConfigurationError, read_json
from consortium.provisioning.provision import simulator_workspace_policies

TEMPLATE = PROJECT_FILE.parent / "site_policies" / "privacy.json"


def built_components(tmp_path, policy: dict) -> dict:
    """The components FLARE's client builds from a site's local/privacy.json."""
    for d in ("startup", "local"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    (tmp_path / "local" / "privacy.json").write_text(json.dumps(policy))
    manager = create_privacy_manager(Workspace(str(tmp_path), "cleveland"), names_only=False)
    assert manager.is_policy_defined()  # FLARE registers components only then
    return manager.components


@pytest.mark.parametrize("extra", [{}, {"require_dp": ["cleveland"]}])
def test_every_site_policy_declares_the_audit_trail_and_flare_builds_it(tmp_path, extra):
    policy = site_privacy_policy(read_json(TEMPLATE) | extra, "cleveland")

    assert AUDIT_COMPONENT in policy["components"]
    assert isinstance(built_components(tmp_path, policy)["site_audit"], SiteAuditTrail)


def test_every_kit_gets_the_audit_trail(tmp_path, project):
    for site in [project.server["name"], *project.clients]:
        (tmp_path / site / "local").mkdir(parents=True)

    install_site_privacy(project, tmp_path)

    for site in project.clients:
        assert AUDIT_COMPONENT in read_json(tmp_path / site / "local" / "privacy.json")["components"]


def test_the_simulator_workspace_gets_the_audit_trail_and_no_site_filter(tmp_path, project):
    simulator_workspace_policies(project, tmp_path)

    policy = read_json(tmp_path / "local" / "privacy.json")
    assert policy == simulator_privacy_policy()
    assert all(not s.get("task_result_filters") for s in policy["scopes"])
    assert isinstance(built_components(tmp_path / "site", policy)["site_audit"], SiteAuditTrail)


@pytest.mark.parametrize("component", [
    {"id": "site_audit", "path": "consortium.flare.listeners.progress_writer.Something"},  # another class under its id
    {"id": "my_audit", "path": AUDIT_COMPONENT["path"]},  # a second trail writer
])
def test_a_template_cannot_replace_the_audit_trail(component):
    with pytest.raises(ConfigurationError, match="audit"):
        site_privacy_policy(read_json(TEMPLATE) | {"components": [component]}, "cleveland")


def test_a_template_declaring_the_same_component_gets_it_once():
    template = read_json(TEMPLATE) | {"components": [dict(AUDIT_COMPONENT, args={"folder": "elsewhere"})]}
    components = site_privacy_policy(template, "cleveland")["components"]
    assert components == [AUDIT_COMPONENT]


def test_the_policy_declares_the_component_under_the_id_it_answers_to():
    assert AUDIT_COMPONENT["id"] == SITE_AUDIT_ID
