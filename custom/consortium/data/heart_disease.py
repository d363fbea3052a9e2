"""Fed-Heart-Disease: the UCI Heart Disease data of four real hospitals, FLamby protocol.

Credit: Janosi, A., Steinbrunn, W., Pfisterer, M., Detrano, R. (1988). Heart Disease. UCI Machine
Learning Repository. https://doi.org/10.24432/C52P4X (CC BY 4.0). The original files ship with the
package in ``heart_disease_raw/`` beside their README.

Protocol (FLamby, Owkin 2022): drop slope, ca and thal (mostly missing outside Cleveland), drop rows
that still miss a value, a 66/34 train/test split per centre stratified on ``num > 0`` with a fixed
seed, one-hot encode ``cp`` (1-4) and ``restecg`` (0-2) over their fixed categories so that every
site has the same columns without looking at any other site's data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = (
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg",
    "thalach", "exang", "oldpeak", "slope", "ca", "thal", "num",
)  # fmt: skip
DROPPED = ("slope", "ca", "thal")
NUMERIC = ("age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak")
ONE_HOT = {"cp": (1, 2, 3, 4), "restecg": (0, 1, 2)}
FEATURES = NUMERIC + tuple(f"{col}_{v}" for col, vals in ONE_HOT.items() for v in vals)
N_FEATURES = len(FEATURES)

CENTRES = {
    "cleveland": "processed.cleveland.data",
    "hungary": "processed.hungarian.data",
    "switzerland": "processed.switzerland.data",
    "va-long-beach": "processed.va.data",
}
TEST_FRACTION = 0.34
SPLIT_SEED = 42


@dataclass(frozen=True)
class SiteSplit:
    """One centre's arrays: float32 features ``x`` (n, N_FEATURES) and 0/1 labels ``y`` (n,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def raw_path(centre: str) -> Path:
    """Path of the packaged raw file of ``centre``."""
    if centre not in CENTRES:
        raise ValueError(f"unknown heart-disease centre {centre!r}; known: {sorted(CENTRES)}")
    return Path(str(resources.files("consortium.data").joinpath("heart_disease_raw", CENTRES[centre])))


def read_raw(path: Path | str) -> pd.DataFrame:
    """Read one ``processed.*.data`` file (no header, ``?`` = missing) with a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"heart-disease data file not found: {path}")
    frame = pd.read_csv(path, header=None, na_values="?")
    if frame.shape[1] != len(COLUMNS):
        raise ValueError(f"{path}: expected {len(COLUMNS)} columns, found {frame.shape[1]}")
    frame.columns = list(COLUMNS)
    return frame


def clean(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop slope/ca/thal and then every row that still has a missing value."""
    return frame.drop(columns=list(DROPPED)).dropna().reset_index(drop=True)


def encode(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Features in :data:`FEATURES` order and the binary label ``num > 0``."""
    cols = [frame[list(NUMERIC)].to_numpy(dtype=np.float64)]
    for col, values in ONE_HOT.items():
        cols.append(np.stack([(frame[col].to_numpy() == v) for v in values], axis=1).astype(np.float64))
    x = np.concatenate(cols, axis=1).astype(np.float32)
    y = (frame["num"].to_numpy() > 0).astype(np.float32)
    return x, y


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): ``ceil(test_fraction * n)`` test rows, classes kept in proportion.

    Per-class test counts follow the largest-remainder rule so that they sum to the total.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    n_test = math.ceil(round(test_fraction * len(y), 9))  # round: 0.34 * 150 = 51.000000000000007
    classes = np.unique(y)
    exact = np.array([n_test * np.sum(y == c) / len(y) for c in classes])
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts))[: n_test - counts.sum()]:
        counts[i] += 1
    test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, counts, strict=True)])
    train = np.setdiff1d(np.arange(len(y)), test)
    return rng.permutation(train), np.sort(test)


def load_centre(centre: str, path: Path | str | None = None, seed: int = SPLIT_SEED) -> SiteSplit:
    """The FLamby train/test split of one centre, read from ``path`` or the packaged file."""
    x, y = encode(clean(read_raw(path if path is not None else raw_path(centre))))
    train, test = stratified_split(y, TEST_FRACTION, seed)
    return SiteSplit(x[train], y[train], x[test], y[test])
