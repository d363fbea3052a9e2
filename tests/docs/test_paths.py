"""Every module and class the README and the guides name in code exists where they say: a file path
(`consortium/learning/fedprox.py`), a dotted class path (`consortium.flare.filters.dp.GaussianUpdatePrivacy`)
or an import (`from consortium.flare.kit_policies import policy_signature_problems`)."""

from __future__ import annotations

import importlib
import re

import pytest
from docs_text import REPO
from test_guides import PAGES, code_text

PACKAGE = REPO / "custom" / "consortium"
NOT_MODULES = {"consortium.org", "consortium.json"}  # admin@consortium.org, monitoring/grafana/consortium.json


def resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name, None)
        return obj is not None
    return False


def file_exists(path: str) -> bool:
    if path.startswith("custom/"):
        return (REPO / path).exists()
    if path.startswith("consortium/"):
        return (REPO / "custom" / path).exists()
    return any((base / path).exists() for base in (REPO, PACKAGE))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_module_and_class_named_in_code_exists(page):
    code = code_text(page.read_text())
    dotted = set(re.findall(r"\bconsortium(?:\.\w+)+", code)) - NOT_MODULES
    dotted |= {f"{m}.{n}" for m, n in re.findall(r"from (consortium(?:\.\w+)*) import (\w+)", code)}
    files = {p for p in re.findall(r"(?<![\w.])(?:[\w-]+/)+[\w-]+\.py\b", code)}

    missing = sorted(d for d in dotted if not resolves(d)) + sorted(f for f in files if not file_exists(f))
    assert not missing, f"{page.name}: {missing}"
