"""Kits whose private key never leaves the hospital: FLARE's distributed provisioning
(``nvflare cert request`` / ``approve``, ``nvflare package``) with what a consortium kit needs.

    consortium site request NAME --org ORG --out DIR     at the hospital: key, CSR, request zip in DIR
    consortium site approve NAME.request.zip --workspace WS    the project admin: sign with the root CA of WS
    consortium site package NAME.approved.zip --request-dir DIR --fingerprint SHA256:...   at the hospital

This module: the request, and FLARE run as a subprocess (its command handlers exit the process on
error); :mod:`~consortium.provisioning.distributed.approve` signs it,
:mod:`~consortium.provisioning.distributed.package` builds the kit from the approval.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from consortium.fileio import path_under
from consortium.names import check_name
from consortium.provisioning.project import Project

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
