"""The site privacy policy (``provisioning/site_policies/privacy.json``) installed as every
site's ``local/privacy.json``, which FLARE reads when a site starts (``scopes``, ``default_scope``,
``components``): a job picks a scope with ``"scope"`` in its ``meta.json`` (none: the default), an
unknown scope is refused at deployment, and the scope's ``task_result_filters`` run on every task's
result before the job's own filters.

Every site's policy also declares the site's audit trail (:data:`AUDIT_COMPONENT`,
:mod:`consortium.flare.audit.site`) among its ``components``: it is added here, not taken from the
template, so neither a template nor a job can leave it out.

Our template adds two keys, removed at install: ``require_dp`` (sites that must release only under
DP: they get the DP scope only, as default, so no job can avoid it) and ``site_budgets``
(``site_epsilon_budget`` per site). The server gets no privacy.json: its results are not site data.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from consortium.provisioning.project import ConfigurationError, Project, read_json

POLICY_FILE = "privacy.json"
DP_SCOPE = "dp"
DP_FILTER = "consortium.flare.filters.dp.GaussianUpdatePrivacy"
AUDIT_COMPONENT = {"id": "site_audit", "path": "consortium.flare.audit.site.SiteAuditTrail", "args": {"folder": "audit"}}
SIMULATOR_SCOPE = "simulator"


def site_privacy_policy(template: dict, site: str, source: Path | str = POLICY_FILE) -> dict:
    """FLARE's ``privacy.json`` for ``site`` from the consortium's ``template``; ConfigurationError
    naming the file and field for a template that would not protect the sites it names."""
    scopes = template.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, dict) and s.get("name") for s in scopes):
        raise ConfigurationError(f"{source}: field 'scopes' must be a list of named scopes")
    names = [s["name"] for s in scopes]
    dp = next((s for s in scopes if s["name"] == DP_SCOPE), None)
    if dp is None or not any(f.get("path") == DP_FILTER for f in dp.get("task_result_filters", [])):
        raise ConfigurationError(f"{source}: scope {DP_SCOPE!r} must exist and run {DP_FILTER}")
    require = template.get("require_dp", [])
    budgets = template.get("site_budgets", {})
    if not isinstance(require, list) or not isinstance(budgets, dict):
        raise ConfigurationError(f"{source}: 'require_dp' must be a list of sites and 'site_budgets' a map, "
                                 f"got {require!r} and {budgets!r}")
    default = template.get("default_scope")
    if default not in names:
        raise ConfigurationError(f"{source}: default_scope {default!r} is not one of the scopes {names}")
    policy = {k: copy.deepcopy(v) for k, v in template.items() if k in ("scopes", "default_scope", "components")}
    if site in require:
        policy["scopes"], policy["default_scope"] = [copy.deepcopy(dp)], DP_SCOPE
    if site in budgets:
        for scope in policy["scopes"]:
            for f in scope.get("task_result_filters", []):
                if f.get("path") == DP_FILTER:
                    f.setdefault("args", {})["site_epsilon_budget"] = budgets[site]
    return with_site_audit(policy, source)


def with_site_audit(policy: dict, source: Path | str = POLICY_FILE) -> dict:
    """``policy`` with the audit component as its only :data:`AUDIT_COMPONENT`; ConfigurationError
    for a template that declares another component under its id or a second audit trail."""
    components = policy.get("components", [])
    if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
        raise ConfigurationError(f"{source}: field 'components' must be a list of components, got {components!r}")
    for c in components:
        if (c.get("id") == AUDIT_COMPONENT["id"]) != (c.get("path") == AUDIT_COMPONENT["path"]):
            raise ConfigurationError(f"{source}: component {c.get('id')!r} ({c.get('path')!r}) clashes with the site "
                                     f"audit trail, which every site gets as {AUDIT_COMPONENT['id']!r}; remove it")
    others = [c for c in components if c.get("id") != AUDIT_COMPONENT["id"]]
    return {**policy, "components": [*others, copy.deepcopy(AUDIT_COMPONENT)]}


def simulator_privacy_policy() -> dict:
    """``local/privacy.json`` for FLARE's simulator: the audit component and one scope without
    filters (FLARE registers a policy's components only when it defines a scope). The simulator
    never applies site scope filters, so jobs run there under their own filters as before."""
    scope = {"name": SIMULATOR_SCOPE, "properties": {"differential_privacy": "the job's own filters (simulator)"}}
    return with_site_audit({"scopes": [scope], "default_scope": SIMULATOR_SCOPE})


def install_site_privacy(project: Project, kits: Path) -> None:
    """Write ``<kit>/local/privacy.json`` for every client site of ``project``; the sites named in
    ``require_dp`` or ``site_budgets`` must be sites of the project."""
    template_file = project.policies_dir / POLICY_FILE
    template = read_json(template_file)
    named = set(template.get("require_dp", []) or []) | set(template.get("site_budgets", {}) or {})
    unknown = sorted(named - set(project.clients))
    if unknown:
        raise ConfigurationError(f"{template_file}: names {unknown}, which are not sites of {project.path}")
    for site in project.clients:
        local = kits / site / "local"
        if not local.is_dir():
            raise RuntimeError(f"kit for {site} missing its local/ folder: {local}")
        policy = site_privacy_policy(template, site, template_file)
        (local / POLICY_FILE).write_text(json.dumps(policy, indent=2) + "\n")
