"""The doctor's kit-content checks: the kit's signed site policies, every class path it names
(one the package no longer has means the kit predates a move: re-provision), what it admits beyond
the consortium's default allow-list, and its secrets' file modes. Only the policies of a server
kit can stop the doctor; the rest warn."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from consortium.admin.kit import Finding


def policies_finding(folder: Path, kind: str) -> Finding:
    """The kit's site policies against the root CA's signatures (``SitePoliciesBuilder``). FLARE
    checks only the startup files present: an edited server policy stops our server audit at start,
    and a deleted audit declaration goes unnoticed by FLARE, so the server fails here. A site's
    ``local/`` is its own to change: a site's difference is reported, and the checks go on."""
    from consortium.flare.kit_policies import policy_signature_problems

    if not (Path(folder) / "local" / "signature.json").is_file():
        return Finding("policies", True, "not signed (a kit packaged from a request: its HE keys carry their own "
                                         "signatures); nothing to check")
    problems = policy_signature_problems(Path(folder))
    if not problems:
        return Finding("policies", True, "the site policies and audit declaration are those the root CA signed")
    if kind == "server":
        return Finding("policies", False, "; ".join(problems) + ": the server refuses to start, or runs without its audit; "
                                          "re-provision the server kit")
    return Finding("policies", True, "WARNING, changed since provisioning (the site's own choice?): " + "; ".join(problems))


def allow_list_finding(folder: Path) -> Finding:
    """What the kit admits beyond the consortium's default list (a site's own choice: reported,
    the checks go on), and whether its startup declares the job-content validator."""
    from consortium.admin.kit_exposure import admitted_beyond_default

    try:
        a = admitted_beyond_default(folder)
    except ValueError as e:
        return Finding("allow-list", False, f"{e}: re-provision the kit")
    notes = []
    if a.beyond:
        notes.append(f"admits {len(a.beyond)} class(es) beyond the consortium's default: {', '.join(a.beyond)}")
    if a.malformed:
        notes.append("entries that admit whole packages or the command line, refused by the consortium's resolver but "
                     "honoured by FLARE's authorizer: " + "; ".join(f"{e!r} ({why})" for e, why in a.malformed))
    if not a.validator:
        notes.append("startup declares no job-content validator (app_validator): jobs carrying files other than "
                     "their configs are not refused here")
    if not notes:
        return Finding("allow-list", True, f"the consortium's default classes only ({a.source.name}), job content checked")
    return Finding("allow-list", True, f"WARNING, {a.source}: " + "; ".join(notes))


def secrets_finding(folder: Path) -> Finding:
    from consortium.admin.kit_exposure import readable_secrets

    exposed = readable_secrets(folder)
    if not exposed:
        return Finding("secrets", True, "every private key, context and cert.json is readable by its owner only")
    listed = ", ".join(f"{p} (mode {m:o})" for p, m in exposed)
    return Finding("secrets", True, f"WARNING, readable by group or others: {listed}; run chmod 600 on each")


_CLASS_PATH = re.compile(r"^consortium(?:\.[A-Za-z_][A-Za-z0-9_]*)+$")


def stale_class_paths(folder: Path) -> list[tuple[Path, str]]:
    """Each ``consortium.`` class path named in the kit's ``startup/`` and ``local/`` JSON files
    whose module this package does not have (found without importing it), with its file."""
    stale = []
    for path in sorted([*Path(folder).glob("startup/*.json"), *Path(folder).glob("local/*.json")]):
        try:
            strings = list(_strings(json.loads(path.read_text())))
        except (OSError, ValueError):
            continue  # an unreadable file is the policies check's to name
        for value in strings:
            if _CLASS_PATH.match(value) and not _module_exists(value.rpartition(".")[0]):
                stale.append((path, value))
    return stale


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that is not a package, or does not exist
        return False


def class_paths_finding(folder: Path) -> Finding:
    stale = stale_class_paths(folder)
    if not stale:
        return Finding("class paths", True, "every consortium class the kit names exists in this package")
    listed = "; ".join(f"{p}: {v!r}" for p, v in stale)
    return Finding("class paths", False, f"{listed}: no such module in this package (the kit was provisioned "
                                         "before the package moved); re-provision the kit")
