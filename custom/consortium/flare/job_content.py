"""FLARE's ``app_validator`` at the server and every site: a thin adapter over
:func:`consortium.job_content.check_app_content`.

Declared by the policies builder in every kit's ``startup/fed_server.json`` and
``startup/fed_client.json`` (signed with them). FLARE calls :meth:`validate` on each app it
deploys (``AppDeployer.deploy``, nvflare 2.9) after unzipping it into
``<workspace>/<job id>/app_<site>``; an error removes the run folder and fails the deployment, and
the server records the message as the job's deploy detail (``FINISHED:FAILED_TO_RUN``, which the
server audit trail keeps as ``job_refused``).

The allow-list is the site's own, ``<workspace>/local/resources.json``'s ``class_allow_list`` (the
list FLARE's authorizer enforces); a site whose list cannot be read refuses every job.
"""

from __future__ import annotations

import json
from pathlib import Path

from nvflare.apis.app_validation import AppValidator

from consortium.job_content import JobContentRefused, check_app_content


def site_allow_list(workspace: Path) -> tuple[list[str], Path]:
    """(``class_allow_list``, its file) of the site whose FLARE workspace is ``workspace``;
    JobContentRefused when there is none."""
    local = Path(workspace) / "local"
    path = next((p for p in (local / "resources.json", local / "resources.json.default") if p.is_file()), None)
    if path is None:
        raise JobContentRefused(f"{local}: no resources.json: this site has no class allow-list and admits no job")
    try:
        entries = json.loads(path.read_text(encoding="utf-8")).get("class_allow_list")
    except (OSError, ValueError, AttributeError) as e:
        raise JobContentRefused(f"{path}: cannot be read ({e}): this site admits no job") from None
    if not isinstance(entries, list):
        raise JobContentRefused(f"{path}: field 'class_allow_list' = {entries!r} is not a list: this site admits no job")
    return entries, path


class JobContentValidator(AppValidator):
    """Refuses an app that holds anything beyond its configuration, or names a class off the
    site's allow-list (the message names the file, the field, the value and the rule)."""

    def validate(self, app_folder: str) -> tuple[str, dict]:
        app = Path(app_folder).resolve()
        try:
            allowed, source = site_allow_list(app.parent.parent)  # <workspace>/<job id>/app_<site>
            check_app_content(app, allowed, str(source))
        except JobContentRefused as e:
            return (str(e) if str(e).startswith("BYOC") else f"job content refused: {e}"), {}
        except OSError as e:  # an app that cannot be read is not admitted
            return f"job content refused: {app}: cannot be read ({e})", {}
        return "", {}
