"""The site privacy policy in every kit, read by FLARE's own privacy manager: a site that requires
DP applies it to a job that asks for none, and refuses a job that asks to avoid it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.fl_constant import FilterKey, FLContextKey, ReservedKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.utils.task_utils import apply_filters
from nvflare.apis.workspace import Workspace
from nvflare.private.fed.app.fl_conf import create_privacy_manager
from nvflare.private.fed.utils.fed_utils import create_job_processing_context_properties
from nvflare.private.privacy_manager import PrivacyService, Scope

from conftest import PROJECT_FILE
from consortium.privacy.declaration import declared
from consortium.provisioning.privacy_scopes import site_privacy_policy
from consortium.provisioning.project import ConfigurationError, Project, read_json
from consortium.provisioning.provision import provision

TEMPLATE = PROJECT_FILE.parent / "site_policies" / "privacy.json"


@pytest.fixture(scope="module")
def kits(project, tmp_path_factory):
    return provision(project, tmp_path_factory.mktemp("kits"), poc=True)


@pytest.fixture
def privacy_service():
    yield PrivacyService
    PrivacyService.initialize(None)


def site_workspace(tmp_path, policy: dict, job_meta: dict) -> Workspace:
    for d in ("startup", "local", "job1"):
        (tmp_path / d).mkdir()
    (tmp_path / "local" / "privacy.json").write_text(json.dumps(policy))
    (tmp_path / "job1" / "meta.json").write_text(json.dumps(job_meta))
    return Workspace(str(tmp_path), "cleveland")


def job_context(workspace: Workspace) -> FLContext:
    """What FLARE's client sets up for a job: its scope object chosen from the job's meta.json."""

    class Engine:
        def get_workspace(self):
            return workspace

        def fire_event(self, *_):
            pass

    PrivacyService.initialize(create_privacy_manager(workspace, names_only=False))
    ctx = FLContext()
    ctx.set_prop(ReservedKey.ENGINE, Engine(), private=True, sticky=False)
    ctx.set_prop(ReservedKey.RUN_NUM, "job1", private=True, sticky=False)
    for k, v in create_job_processing_context_properties(workspace, "job1").items():
        ctx.set_prop(k, v, private=True, sticky=False)
    return ctx


def train_result():
    meta = {"n_samples": 100, "local_steps": 13}
    return DXO(DataKind.WEIGHT_DIFF, {"w": np.array([3.0, 4.0], dtype=np.float32)}, meta).to_shareable()


def released(ctx):
    out = apply_filters(Scope.TASK_RESULT_FILTERS_NAME, train_result(), ctx, {}, "train", FilterKey.OUT)
    return from_shareable(out)


def test_every_site_kit_gets_a_privacy_policy_and_the_server_none(kits, project):
    for site in project.clients:
        policy = read_json(kits / site / "local" / "privacy.json")
        assert {s["name"] for s in policy["scopes"]} == {"dp", "no_dp"} and "require_dp" not in policy
    assert not (kits / project.server["name"] / "local" / "privacy.json").exists()


def test_a_job_without_dp_at_a_dp_requiring_site_still_gets_dp(tmp_path, privacy_service):
    policy = site_privacy_policy(read_json(TEMPLATE) | {"require_dp": ["cleveland"]}, "cleveland")
    ctx = job_context(site_workspace(tmp_path, policy, {"name": "heart_fedavg"}))  # no "scope"

    out = released(ctx)

    assert ctx.get_prop(FLContextKey.EFFECTIVE_JOB_SCOPE_NAME) == "dp"
    assert declared(out.meta).mechanism == "gaussian_update"
    assert out.get_filter_history() == ["GaussianUpdatePrivacy"]
    assert (tmp_path / "privacy" / "ledger.json").is_file()  # in the site workspace, outside job1/
    assert not PrivacyService.is_scope_allowed("no_dp")  # a job asking to avoid DP is refused at deployment


def test_elsewhere_dp_is_the_jobs_choice(tmp_path, privacy_service):
    policy = site_privacy_policy(read_json(TEMPLATE), "cleveland")
    ctx = job_context(site_workspace(tmp_path, policy, {"name": "heart_fedavg"}))

    assert declared(released(ctx).meta) is None
    assert PrivacyService.is_scope_allowed("dp")


def test_site_budgets_override_the_template(tmp_path):
    policy = site_privacy_policy(read_json(TEMPLATE) | {"site_budgets": {"cleveland": 2.5}}, "cleveland")
    dp = next(s for s in policy["scopes"] if s["name"] == "dp")
    assert dp["task_result_filters"][0]["args"]["site_epsilon_budget"] == 2.5


def test_a_policy_naming_an_unknown_site_is_refused(tmp_path, project):
    policies = tmp_path / "site_policies"
    shutil.copytree(project.policies_dir, policies)
    (policies / "privacy.json").write_text(json.dumps(read_json(TEMPLATE) | {"require_dp": ["clevland"]}))
    shutil.copyfile(project.path, tmp_path / "project.yml")

    with pytest.raises(ConfigurationError, match="clevland"):
        provision(Project.load(tmp_path / "project.yml"), tmp_path / "ws", poc=True)


def test_a_template_without_the_dp_filter_is_refused():
    template = read_json(TEMPLATE)
    template["scopes"] = [s for s in template["scopes"] if s["name"] != "dp"]
    with pytest.raises(ConfigurationError, match="'dp'"):
        site_privacy_policy(template, "cleveland")
