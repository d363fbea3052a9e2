"""Fed-Heart-Disease loading: raw files, FLamby cleaning, FLamby's exact split and encoding, errors."""

import hashlib

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from consortium.data.heart_disease import (
    CENTRES,
    FEATURES,
    LEVELS,
    N_FEATURES,
    NUMERIC,
    clean,
    encode,
    flamby_split,
    load_centre,
    raw_path,
    read_raw,
)

# UCI row counts of the "processed" files, and FLamby's published sizes after cleaning / splitting.
RAW_ROWS = {"cleveland": 303, "hungary": 294, "switzerland": 123, "va-long-beach": 200}
CLEAN_ROWS = {"cleveland": 303, "hungary": 261, "switzerland": 46, "va-long-beach": 130}
FLAMBY_SPLITS = {"cleveland": (199, 104), "hungary": (172, 89), "switzerland": (30, 16), "va-long-beach": (85, 45)}
# sha256 of FLamby's test row indices (sorted, comma-joined, over the cleaned rows in file order), as
# computed by FLamby's own dataset code (train_test_split, random_state 43) with scikit-learn 1.9.1.
FLAMBY_TEST_DIGESTS = {
    "cleveland": "08c0b33f49ba9ad42ab4c2298b9916797c2a2a134cd5d7a79977a9858ca390cb",
    "hungary": "d81ef5d37e718e4ab5761753ae20b8ae6a58fc6ccb1feb1f55e99bcab1ffb1aa",
    "switzerland": "1505b4ca360a04d93bcf96766cdaccfe77b70dce807fa0b5f4416ac2de020a6e",
    "va-long-beach": "702a8cd1632233733d0bed8e25c969b08c1de91d4b9fea33eab5f360b6d3aabc",
}
STRATIFIED = ("cleveland", "hungary", "va-long-beach")  # switzerland has a single negative row


def labels(centre):
    return encode(clean(read_raw(raw_path(centre))))[1]


@pytest.fixture
def cleveland_labels():
    return labels("cleveland")


@pytest.mark.parametrize("centre", sorted(RAW_ROWS))
def test_read_raw_returns_every_row_of_the_uci_file(centre):
    frame = read_raw(raw_path(centre))

    assert len(frame) == RAW_ROWS[centre]


@pytest.mark.parametrize("centre", sorted(CLEAN_ROWS))
def test_clean_keeps_the_rows_flamby_keeps(centre):
    frame = clean(read_raw(raw_path(centre)))

    assert len(frame) == CLEAN_ROWS[centre]


def test_clean_leaves_740_rows_in_total():
    total = sum(len(clean(read_raw(raw_path(c)))) for c in CENTRES)

    assert total == 740


def test_clean_leaves_no_missing_value():
    frame = clean(read_raw(raw_path("switzerland")))

    assert not frame.isna().any().any()


@pytest.mark.parametrize("centre", sorted(FLAMBY_SPLITS))
def test_load_centre_has_flamby_train_test_sizes(centre):
    split = load_centre(centre)

    assert (len(split.y_train), len(split.y_test)) == FLAMBY_SPLITS[centre]
    assert len(split.x_train) == len(split.y_train)
    assert len(split.x_test) == len(split.y_test)


@pytest.mark.parametrize("centre", sorted(FLAMBY_TEST_DIGESTS))
def test_split_selects_flambys_test_rows(centre):
    _, test = flamby_split(labels(centre))

    digest = hashlib.sha256(",".join(str(i) for i in test.tolist()).encode()).hexdigest()

    assert digest == FLAMBY_TEST_DIGESTS[centre]


@pytest.mark.parametrize("centre", sorted(CENTRES))
def test_load_centre_returns_the_split_rows_in_file_order(centre):
    x, y = encode(clean(read_raw(raw_path(centre))))
    train, test = flamby_split(y)

    split = load_centre(centre)

    np.testing.assert_array_equal(split.x_train, x[train])
    np.testing.assert_array_equal(split.y_test, y[test])
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)


def test_features_equal_flambys_get_dummies_over_the_four_centres():
    # FLamby: drop columns 10-12 and incomplete rows per file, concatenate, get_dummies(drop_first=True)
    frames = [pd.read_csv(raw_path(c), header=None).replace("?", np.nan).drop([10, 11, 12], axis=1).dropna()
              .apply(pd.to_numeric) for c in sorted(CENTRES)]
    pooled = pd.get_dummies(pd.concat([f.iloc[:, :-1] for f in frames], ignore_index=True), columns=[2, 6],
                            drop_first=True).to_numpy(dtype=np.float32)

    ours = np.concatenate([encode(clean(read_raw(raw_path(c))))[0] for c in sorted(CENTRES)])

    np.testing.assert_array_equal(ours, pooled)


@pytest.mark.parametrize("centre", STRATIFIED)
def test_split_keeps_the_positive_fraction_in_the_test_set(centre):
    split = load_centre(centre)
    y_all = np.concatenate([split.y_train, split.y_test])
    n_test = len(split.y_test)

    gap = abs(split.y_test.mean() - y_all.mean())

    assert gap < 1.0 / n_test


def sklearn_test_rows(y, stratify):
    _, test = train_test_split(np.arange(len(y)), train_size=0.66, test_size=0.34, random_state=43, shuffle=True,
                               stratify=y if stratify else None)
    return sorted(test.tolist())


@pytest.mark.parametrize(("n_negative", "stratified"), [(2, False), (3, True)])
def test_split_stratifies_only_when_each_class_has_more_than_two_rows(n_negative, stratified):
    y = np.array([0] * n_negative + [1] * 30)

    _, test = flamby_split(y)

    assert test.tolist() == sklearn_test_rows(y, stratify=stratified)
    assert test.tolist() != sklearn_test_rows(y, stratify=not stratified)


def test_split_of_a_single_class_is_unstratified():
    y = np.ones(20)

    _, test = flamby_split(y)

    assert test.tolist() == sklearn_test_rows(y, stratify=False)


def test_split_is_deterministic_for_a_seed():
    a = load_centre("hungary", seed=7)
    b = load_centre("hungary", seed=7)

    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_test, b.y_test)


def test_split_differs_for_another_seed(cleveland_labels):
    _, test_a = flamby_split(cleveland_labels, seed=1)
    _, test_b = flamby_split(cleveland_labels, seed=2)

    assert set(test_a.tolist()) != set(test_b.tolist())


def test_split_train_and_test_are_disjoint_and_cover_every_row(cleveland_labels):
    train, test = flamby_split(cleveland_labels)

    assert set(train.tolist()).isdisjoint(test.tolist())
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(cleveland_labels)))


def test_load_centre_rows_are_the_cleaned_rows():
    x_all, _ = encode(clean(read_raw(raw_path("va-long-beach"))))
    split = load_centre("va-long-beach")

    rows = np.concatenate([split.x_train, split.x_test])

    np.testing.assert_array_equal(np.unique(rows, axis=0), np.unique(x_all, axis=0))
    assert len(rows) == len(x_all)


def test_there_are_thirteen_features_in_flambys_order():
    # 8 numeric columns + chest-pain types 2-4 + resting-ECG results 1-2 (first levels dropped)
    assert N_FEATURES == 13
    assert FEATURES[8:] == ("cp_2", "cp_3", "cp_4", "restecg_1", "restecg_2")


@pytest.mark.parametrize("centre", sorted(CENTRES))
def test_features_have_n_features_columns(centre):
    split = load_centre(centre)

    assert split.x_train.shape[1] == N_FEATURES
    assert split.x_test.shape[1] == N_FEATURES


@pytest.mark.parametrize("centre", sorted(CENTRES))
def test_each_one_hot_block_marks_one_level_and_zeros_mean_the_first(centre):
    frame = clean(read_raw(raw_path(centre)))
    x, _ = encode(frame)
    start = len(NUMERIC)

    for col, encoded in LEVELS.items():
        block = x[:, start : start + len(encoded) - 1]
        values = frame[col].to_numpy()
        np.testing.assert_array_equal(block.sum(axis=1), (values != encoded[0]).astype(np.float32))
        for j, level in enumerate(encoded[1:]):
            np.testing.assert_array_equal(block[:, j], (values == level).astype(np.float32))
        start += len(encoded) - 1


def test_encode_labels_are_num_greater_than_zero():
    frame = clean(read_raw(raw_path("cleveland"))).head(10)

    _, y = encode(frame)

    np.testing.assert_array_equal(y, (frame["num"].to_numpy() > 0).astype(np.float32))


def test_read_raw_missing_file_raises_file_not_found_naming_the_path(tmp_path):
    path = tmp_path / "processed.nowhere.data"

    with pytest.raises(FileNotFoundError, match="processed.nowhere.data"):
        read_raw(path)


def test_read_raw_wrong_column_count_raises_value_error_naming_the_path(tmp_path):
    path = tmp_path / "thirteen_columns.data"
    path.write_text("63,1,1,145,233,1,2,150,0,2.3,3,0,6\n67,1,4,160,286,0,2,108,1,1.5,2,3,3\n")

    with pytest.raises(ValueError, match="thirteen_columns.data"):
        read_raw(path)


def test_load_centre_reads_an_explicit_path(tmp_path):
    path = tmp_path / "tiny.data"
    rows = [f"50,1,{1 + i % 4},130,250,0,{i % 3},150,0,1.0,?,?,?,{i % 2}" for i in range(10)]
    path.write_text("\n".join(rows) + "\n")

    split = load_centre("cleveland", path=path)

    # ceil(0.34 * 10) = 4 test rows, floor(0.66 * 10) = 6 train rows
    assert (len(split.y_train), len(split.y_test)) == (6, 4)


def test_encode_rejects_an_unknown_level_naming_column_and_value(tmp_path):
    path = tmp_path / "odd_cp.data"
    rows = [f"50,1,{7 if i == 3 else 1},130,250,0,0,150,0,1.0,?,?,?,{i % 2}" for i in range(10)]
    path.write_text("\n".join(rows) + "\n")

    with pytest.raises(ValueError, match=r"odd_cp.data: column 'cp' has value\(s\) \[7\]"):
        load_centre("cleveland", path=path)


def test_load_centre_with_too_few_rows_names_the_file_and_count(tmp_path):
    path = tmp_path / "one_row.data"
    path.write_text("50,1,1,130,250,0,0,150,0,1.0,?,?,?,0\n")

    with pytest.raises(ValueError, match=r"one_row.data: cannot split 1 complete rows"):
        load_centre("cleveland", path=path)


def test_read_raw_rejects_a_non_numeric_value_naming_the_file(tmp_path):
    path = tmp_path / "typo.data"
    path.write_text("50,1,1,130,250,0,0,150,0,1.0,?,?,?,0\n50,1,1,13O,250,0,0,150,0,1.0,?,?,?,0\n")

    with pytest.raises(ValueError, match=r"typo.data: column\(s\) \['trestbps'\]"):
        read_raw(path)


def test_unknown_centre_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="atlantis"):
        load_centre("atlantis")
