"""A job's model registry: one file per global-model version, an index with its SHA-256 and what
made it, and loading that refuses a file whose hash differs.

Version ``v`` is the global model after ``v`` completed rounds (``v = start_round`` is the model a
job starts from). Its entry names the round that made it, the sites that contributed, the sites
rejected with their reasons, the alerts, and, when the sites run DP, each site's ε so far. Its
``score`` is the pooled test metric the sites measured on it when they received it (the next
round's record), so the newest version has none until cross-site evaluation. ::

    models/registry.json      {"versions": [entry, ...]}   (rewritten atomically)
    models/v0007.npz          weights as "w/<tensor>", server state (momentum velocity) as "s/<name>"

Files are plain ``.npz`` read with ``allow_pickle=False``: loading a model runs no code.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from consortium.fileio import atomic_write

INDEX = "registry.json"
FOLDER = "models"


class RegistryError(ValueError):
    """A registry that cannot be read, a version it lacks, or a file whose hash differs."""


@dataclass(frozen=True)
class RegistryEntry:
    version: int
    file: str
    sha256: str
    round: int | None  # the round whose aggregation made it (None: a job's starting model)
    created: float
    contributors: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    alerts: dict[str, str] = field(default_factory=dict)
    epsilon: dict[str, float] = field(default_factory=dict)
    metric: str | None = None
    score: float | None = None  # pooled test metric of this version (measured by the sites next round)
    source: str | None = None  # where a starting model came from (a rollback / resume)
    has_state: bool = False  # server state (momentum velocity) saved beside the weights

    def line(self) -> str:
        score = f"{self.metric} {self.score:.3f}" if self.score is not None else "not yet scored"
        made = f"round {self.round}" if self.round is not None else f"start ({self.source or 'initial model'})"
        text = f"v{self.version:<4d} {score:<22s} {made:<28s} sites {','.join(self.contributors) or '-'}"
        if self.rejected:
            text += "  rejected: " + ", ".join(sorted(self.rejected))
        if self.epsilon:
            text += "  eps: " + ", ".join(f"{s} {e:.2f}" for s, e in sorted(self.epsilon.items()))
        return text + f"  sha256 {self.sha256[:12]}"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_arrays(path: Path, weights: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray] | None = None) -> str:
    """Write weights (and server state) to ``path``; returns the file's SHA-256."""
    arrays = {f"w/{k}": np.asarray(v) for k, v in weights.items()}
    arrays |= {f"s/{k}": np.asarray(v) for k, v in (state or {}).items()}
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".npz", delete=False) as f:
        tmp = Path(f.name)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return sha256_of(path)


def load_arrays(path: Path, sha256: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(weights, server state) from ``path`` after checking its SHA-256; RegistryError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise RegistryError(f"{path}: model file missing")
    actual = sha256_of(path)
    if actual != sha256:
        raise RegistryError(f"{path}: SHA-256 {actual} does not match the registry's {sha256}; the file was changed "
                            "or corrupted, refusing to load it")
    with np.load(path, allow_pickle=False) as z:
        weights = {k[2:]: z[k] for k in z.files if k.startswith("w/")}
        state = {k[2:]: z[k] for k in z.files if k.startswith("s/")}
    return weights, state


class ModelRegistry:
    def __init__(self, folder: Path | str) -> None:
        """``folder``: the registry's folder (``<run dir>/models``)."""
        self.folder = Path(folder)

    @classmethod
    def of_run(cls, run_dir: Path | str) -> ModelRegistry:
        """The registry of a job's run folder or downloaded result (``<result>/workspace``)."""
        run_dir = Path(run_dir)
        for candidate in (run_dir / FOLDER, run_dir / "workspace" / FOLDER):
            if (candidate / INDEX).is_file():
                return cls(candidate)
        raise RegistryError(f"{run_dir}: no model registry ({FOLDER}/{INDEX}); was the job run with a ModelRegistry "
                            "component?")

    @property
    def index(self) -> Path:
        return self.folder / INDEX

    def entries(self) -> list[RegistryEntry]:
        if not self.index.is_file():
            return []
        try:
            data = json.loads(self.index.read_text())
            return [RegistryEntry(**e) for e in data["versions"]]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise RegistryError(f"{self.index}: unreadable registry index ({e})") from e

    def _write(self, entries: list[RegistryEntry]) -> None:
        entries = sorted(entries, key=lambda e: e.version)
        atomic_write(self.index, json.dumps({"versions": [asdict(e) for e in entries]}, indent=1).encode())

    def get(self, version: int) -> RegistryEntry:
        for e in self.entries():
            if e.version == version:
                return e
        have = [e.version for e in self.entries()]
        raise RegistryError(f"{self.index}: no version {version} (versions: {have[0]}..{have[-1]})" if have
                            else f"{self.index}: the registry is empty")

    def add(self, version: int, weights: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray] | None = None,
            record: Mapping | None = None, source: str | None = None) -> RegistryEntry:
        """Save version ``version`` (replacing one of the same number) with what the round
        ``record`` (a :class:`~consortium.protocol.round_record.RoundSummary` dict) says made it."""
        if not isinstance(version, int) or version < 0:
            raise RegistryError(f"version must be an integer >= 0, got {version!r}")
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"v{version:04d}.npz"
        digest = save_arrays(self.folder / name, weights, state)
        record = record or {}
        entry = RegistryEntry(version=version, file=name, sha256=digest, round=record.get("round"), created=time.time(),
                              contributors=list(record.get("contributors", [])),
                              rejected=dict(record.get("rejected", {})), alerts=dict(record.get("alerts", {})),
                              epsilon=dict(record.get("epsilon", {})), metric=record.get("metric"), source=source,
                              has_state=bool(state))
        self._write([e for e in self.entries() if e.version != version] + [entry])
        return entry

    def set_score(self, version: int, metric: str, score: float) -> None:
        entries = self.entries()
        if not any(e.version == version for e in entries):
            return  # a version this registry never saw (e.g. the starting model of a job with no registry before)
        self._write([RegistryEntry(**(asdict(e) | {"metric": metric, "score": float(score)})) if e.version == version else e
                     for e in entries])

    def load(self, version: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], RegistryEntry]:
        """(weights, server state, entry) of ``version``; RegistryError when its file's hash differs."""
        entry = self.get(version)
        weights, state = load_arrays(self.folder / entry.file, entry.sha256)
        return weights, state, entry

    def latest(self) -> RegistryEntry:
        entries = self.entries()
        if not entries:
            raise RegistryError(f"{self.index}: the registry is empty")
        return entries[-1]

    def best(self) -> RegistryEntry:
        """The scored version with the highest pooled score (the earliest of equals)."""
        scored = [e for e in self.entries() if e.score is not None]
        if not scored:
            raise RegistryError(f"{self.index}: no version has a score yet")
        return max(scored, key=lambda e: (e.score, -e.version))
