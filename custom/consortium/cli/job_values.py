"""Check every value of a job config against the typed specs of the components it names
(work in progress: the final signature is fixed, the checks grow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from consortium.cli.kits import ConfigurationError


def check_config_values(path: Path, config: dict, sites: Sequence[str] | None) -> None:
    """Raise ConfigurationError naming ``path``, the field and the value when a value of ``config``
    (a config_fed_server.json or config_fed_client.json) has the wrong type or lies out of range;
    ``sites``: the consortium's site names (None: skip the checks that need them)."""
    if not isinstance(config, dict):
        raise ConfigurationError(f"{path}: the config must be a JSON object, got {type(config).__name__}")
