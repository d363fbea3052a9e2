"""Fed-Heart-Disease: the UCI Heart Disease data of four real hospitals, FLamby's protocol exactly.

Credit: Janosi, A., Steinbrunn, W., Pfisterer, M., Detrano, R. (1988). Heart Disease. UCI Machine
Learning Repository. https://doi.org/10.24432/C52P4X (CC BY 4.0). The original files ship with the
package in ``heart_disease_raw/`` beside their README.

Protocol (FLamby, Owkin 2022, ``flamby/datasets/fed_heart_disease/dataset.py``), so that results
compare with FLamby's tables row for row:

* drop columns 10, 11, 12 (slope, ca, thal: mostly missing outside Cleveland), then every row that
  still misses a value (740 rows remain);
* per centre, over its rows in file order: ``sklearn.model_selection.train_test_split(arange(n),
  train_size=0.66, test_size=0.34, random_state=43, shuffle=True, stratify=label)``, stratified on
  ``num > 0`` only when both classes have more than 2 rows in that centre (train/test 199/104,
  172/89, 30/16, 85/45); train and test rows are kept in file order, as FLamby's datasets list them;
* one-hot encode ``cp`` (1-4) and ``restecg`` (0-2) with the first level dropped (13 features).
  FLamby calls ``pd.get_dummies(..., drop_first=True)`` on the four centres concatenated; every level
  occurs in that union, so the fixed levels here give the same columns in the same order without a
  site looking at any other site's data. A value outside the known levels is an error, not a row of
  zeros (which would read as the dropped first level).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

COLUMNS = (
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg",
    "thalach", "exang", "oldpeak", "slope", "ca", "thal", "num",
)  # fmt: skip
DROPPED = ("slope", "ca", "thal")  # FLamby's columns 10, 11, 12
NUMERIC = ("age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak")
LEVELS = {"cp": (1, 2, 3, 4), "restecg": (0, 1, 2)}  # every level; the first is dropped in encoding
ONE_HOT = {col: levels[1:] for col, levels in LEVELS.items()}  # the encoded levels
FEATURES = NUMERIC + tuple(f"{col}_{v}" for col, vals in ONE_HOT.items() for v in vals)
N_FEATURES = len(FEATURES)

CENTRES = {
    "cleveland": "processed.cleveland.data",
    "hungary": "processed.hungarian.data",
    "switzerland": "processed.switzerland.data",
    "va-long-beach": "processed.va.data",
}
TRAIN_FRACTION = 0.66
TEST_FRACTION = 0.34
SPLIT_SEED = 43  # FLamby's random_state
MIN_ROWS_PER_CLASS_TO_STRATIFY = 3  # FLamby stratifies when every class has "more than 2" rows


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
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise ValueError(f"{path}: column(s) {bad} hold values that are neither numbers nor '?'")
    return frame


def clean(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop slope/ca/thal and then every row that still has a missing value (file order kept)."""
    return frame.drop(columns=list(DROPPED)).dropna().reset_index(drop=True)


def encode(frame: pd.DataFrame, source: str = "heart-disease data") -> tuple[np.ndarray, np.ndarray]:
    """Features in :data:`FEATURES` order and the binary label ``num > 0``.

    Raises ValueError naming ``source``, the column and the value when a categorical column holds a
    level outside :data:`LEVELS`.
    """
    cols = [frame[list(NUMERIC)].to_numpy(dtype=np.float64)]
    for col, levels in LEVELS.items():
        values = frame[col].to_numpy()
        unknown = sorted(set(values.tolist()) - set(levels))
        if unknown:
            raise ValueError(f"{source}: column {col!r} has value(s) {unknown} outside its levels {list(levels)}")
        cols.append(np.stack([values == v for v in ONE_HOT[col]], axis=1).astype(np.float64))
    x = np.concatenate(cols, axis=1).astype(np.float32)
    y = (frame["num"].to_numpy() > 0).astype(np.float32)
    return x, y


def flamby_split(y: np.ndarray, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test), each sorted (file order), of FLamby's 66/34 split of one centre.

    ``train_test_split(arange(n), train_size=0.66, test_size=0.34, random_state=seed, shuffle=True,
    stratify=y)``, stratified only when ``y`` has two classes of more than 2 rows each. Test rows:
    ``ceil(0.34 n)``; train rows: ``floor(0.66 n)``. Raises ValueError when scikit-learn cannot
    split ``n`` rows so (fewer than 2 rows, or an n such as 150 or 300, where those two round past n).
    """
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    stratify = y if len(classes) > 1 and counts.min() >= MIN_ROWS_PER_CLASS_TO_STRATIFY else None
    train, test = train_test_split(np.arange(len(y)), train_size=TRAIN_FRACTION, test_size=TEST_FRACTION,
                                   random_state=seed, shuffle=True, stratify=stratify)
    return np.sort(train), np.sort(test)


def load_centre(centre: str, path: Path | str | None = None, seed: int = SPLIT_SEED) -> SiteSplit:
    """FLamby's train/test split of one centre, read from ``path`` or the packaged file.

    ``seed`` other than 43 gives another split of the same kind (not FLamby's).
    """
    source = Path(path) if path is not None else raw_path(centre)
    x, y = encode(clean(read_raw(source)), source=str(source))
    try:
        train, test = flamby_split(y, seed)
    except ValueError as e:
        raise ValueError(f"{source}: cannot split {len(y)} complete rows 66/34: {e}") from None
    return SiteSplit(x[train], y[train], x[test], y[test])
