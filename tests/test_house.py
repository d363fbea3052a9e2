"""The house's rules, recomputed from the package's own imports (``ast``, every import statement,
at module level or inside a function): no import cycle between modules or between packages, the
command line thin and imported by nobody, no module over 300 lines, and nvflare imported only
where the package docstring says."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import consortium

ROOT = Path(consortium.__file__).resolve().parent
MAX_MODULE_LINES = 300
MAX_CLI_LINES = 800
# where nvflare may be imported without being named one by one in the package docstring
NVFLARE_ROOMS = ("consortium.flare", "consortium.provisioning.builders", "consortium.recipes")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """Every dotted name ``module`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent) + (f".{node.module}" if node.module else "")
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return names


def _own(name: str) -> str | None:
    """The package module ``name`` is, or lies in (``consortium.x.Class`` -> ``consortium.x``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


IMPORTS = {m: _imports(m, p) for m, p in MODULES.items()}
EDGES = {m: {o for n in names if n.startswith("consortium") and (o := _own(n)) and o != m} for m, names in IMPORTS.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _package(module: str) -> str:
    """``consortium.flare.he.site`` -> ``consortium.flare``; a top-level module is its own package."""
    return ".".join(module.split(".")[:2])


def package_edges(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out = defaultdict(set)
    for a, bs in edges.items():
        out[_package(a)] |= {_package(b) for b in bs} - {_package(a), "consortium"}
    return out


def test_the_cycle_finder_finds_a_cycle_of_modules_and_of_packages():
    # the finder itself can fail: the learning <-> privacy loop of files the house had before issue 22
    before = {"consortium.learning.settings": {"consortium.privacy.dp_sgd"},
              "consortium.privacy.dp_sgd": {"consortium.learning.loop"}, "consortium.learning.loop": set()}
    assert cycles(before) == []
    assert cycles(package_edges(before)) == [["consortium.learning", "consortium.privacy"]]
    assert cycles({**before, "consortium.learning.loop": {"consortium.learning.settings"}}) == [sorted(before)]


def test_no_import_cycle_between_modules():
    assert cycles(EDGES) == []


def test_no_import_cycle_between_packages():
    assert cycles(package_edges(EDGES)) == []


def test_no_module_outside_the_command_line_imports_it():
    importers = sorted(m for m, bs in EDGES.items() if not m.startswith("consortium.cli")
                       and m != "consortium.__main__" and any(b.startswith("consortium.cli") for b in bs))
    assert importers == []


def test_the_command_line_is_thin_and_no_module_is_long():
    lines = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    cli = sum(n for m, n in lines.items() if m.startswith("consortium.cli"))
    assert cli <= MAX_CLI_LINES, {m: n for m, n in lines.items() if m.startswith("consortium.cli")}
    assert {m: n for m, n in lines.items() if n > MAX_MODULE_LINES} == {}


def test_nvflare_is_imported_only_where_the_package_docstring_says():
    importers = {m for m, names in IMPORTS.items() if any(n == "nvflare" or n.startswith("nvflare.") for n in names)}
    elsewhere = {m for m in importers if not any(m == r or m.startswith(f"{r}.") for r in NVFLARE_ROOMS)}
    named = set(re.findall(r":mod:`(consortium[\w.]*)`", consortium.__doc__.split("nvflare", 1)[1]))
    assert elsewhere == named - set(NVFLARE_ROOMS)
    # and the maths does not know FLARE
    core = ("aggregation", "privacy", "crypto", "audit", "registry", "learning", "data", "protocol", "telemetry")
    assert sorted(m for m in importers if m.split(".")[1] in core) == []
