"""What a kit exposes beyond the consortium's defaults, for ``consortium kit doctor``: the classes its
allow-list admits beyond :data:`consortium.allowlist.DEFAULT_ALLOW_LIST` (a site's own additions,
or prefixes that admit whole packages), whether its startup declares the job-content validator,
and secrets (private keys, ``cert.json``, CKKS contexts) that its group or others can read.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path

from consortium.allowlist import DEFAULT_ALLOWED, entry_problem
from consortium.fileio import is_secret


@dataclass(frozen=True)
class Admitted:
    """A kit's allow-list against the default: ``source`` the file, ``beyond`` its exact entries
    not on the default, ``malformed`` entries no exact rule admits (prefixes, ``__main__``, blocked
    packages) with why, ``validator`` whether its fed_*.json declares the job-content validator."""

    source: Path
    beyond: tuple[str, ...]
    malformed: tuple[tuple[str, str], ...]
    validator: bool


def admitted_beyond_default(kit: Path) -> Admitted:
    """ValueError naming the file when the kit's ``local/resources.json`` has no list."""
    from consortium.provisioning.builders.site_policies import APP_VALIDATOR

    kit = Path(kit)
    source = kit / "local" / "resources.json"
    try:
        entries = json.loads(source.read_text()).get("class_allow_list")
    except (OSError, ValueError, AttributeError) as e:
        raise ValueError(f"{source}: cannot be read ({e})") from None
    if not isinstance(entries, list):
        raise ValueError(f"{source}: field 'class_allow_list' = {entries!r}: FLARE would use its own default list")
    malformed = tuple((str(e), entry_problem(e)) for e in entries if entry_problem(e) is not None)
    beyond = tuple(e for e in entries if e not in DEFAULT_ALLOWED and entry_problem(e) is None)
    validator = False
    for name in ("fed_server.json", "fed_client.json"):
        fed = kit / "startup" / name
        if fed.is_file():
            try:
                validator = validator or json.loads(fed.read_text()).get("app_validator") == APP_VALIDATOR
            except (OSError, ValueError, AttributeError):
                pass
    return Admitted(source, beyond, malformed, validator)


def readable_secrets(kit: Path) -> list[tuple[Path, int]]:
    """Every secret file under ``kit`` (links not followed) that its group or others may read,
    with its mode."""
    found = []
    for path in sorted(Path(kit).rglob("*")):
        if path.is_symlink() or not path.is_file() or not is_secret(path):
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            found.append((path, mode))
    return found
