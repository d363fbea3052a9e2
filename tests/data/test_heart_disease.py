"""Fed-Heart-Disease loading: raw files, FLamby cleaning and split sizes, encoding, errors."""

import numpy as np
import pytest

from consortium.data.heart_disease import (
    CENTRES,
    N_FEATURES,
    NUMERIC,
    ONE_HOT,
    clean,
    encode,
    load_centre,
    raw_path,
    read_raw,
    stratified_split,
)

# UCI row counts of the "processed" files, and FLamby's published sizes after cleaning / splitting.
RAW_ROWS = {"cleveland": 303, "hungary": 294, "switzerland": 123, "va-long-beach": 200}
CLEAN_ROWS = {"cleveland": 303, "hungary": 261, "switzerland": 46, "va-long-beach": 130}
FLAMBY_SPLITS = {"cleveland": (199, 104), "hungary": (172, 89), "switzerland": (30, 16), "va-long-beach": (85, 45)}


@pytest.fixture
def cleveland_labels():
    _, y = encode(clean(read_raw(raw_path("cleveland"))))
    return y


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


@pytest.mark.parametrize("centre", sorted(CENTRES))
def test_split_keeps_the_positive_fraction_in_the_test_set(centre):
    split = load_centre(centre)
    y_all = np.concatenate([split.y_train, split.y_test])
    n_test = len(split.y_test)

    gap = abs(split.y_test.mean() - y_all.mean())

    assert gap < 1.0 / n_test


def test_split_is_deterministic_for_a_seed():
    a = load_centre("hungary", seed=7)
    b = load_centre("hungary", seed=7)

    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_test, b.y_test)


def test_split_differs_for_another_seed(cleveland_labels):
    _, test_a = stratified_split(cleveland_labels, 0.34, seed=1)
    _, test_b = stratified_split(cleveland_labels, 0.34, seed=2)

    assert set(test_a.tolist()) != set(test_b.tolist())


def test_split_train_and_test_are_disjoint_and_cover_every_row(cleveland_labels):
    train, test = stratified_split(cleveland_labels, 0.34, seed=42)

    assert set(train.tolist()).isdisjoint(test.tolist())
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(cleveland_labels)))


def test_load_centre_rows_are_the_cleaned_rows():
    x_all, _ = encode(clean(read_raw(raw_path("va-long-beach"))))
    split = load_centre("va-long-beach")

    rows = np.concatenate([split.x_train, split.x_test])

    np.testing.assert_array_equal(np.unique(rows, axis=0), np.unique(x_all, axis=0))
    assert len(rows) == len(x_all)


def test_stratified_split_rejects_a_fraction_outside_zero_one(cleveland_labels):
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(cleveland_labels, 1.0, seed=0)


def test_there_are_fifteen_features():
    # 8 numeric columns + 4 chest-pain types + 3 resting-ECG results
    assert N_FEATURES == 15


@pytest.mark.parametrize("centre", sorted(CENTRES))
def test_features_have_n_features_columns(centre):
    split = load_centre(centre)

    assert split.x_train.shape[1] == N_FEATURES
    assert split.x_test.shape[1] == N_FEATURES


@pytest.mark.parametrize("centre", sorted(CENTRES))
def test_each_one_hot_block_sums_to_one_per_row(centre):
    x, _ = encode(clean(read_raw(raw_path(centre))))
    start = len(NUMERIC)

    for values in ONE_HOT.values():
        block = x[:, start : start + len(values)]
        np.testing.assert_array_equal(block.sum(axis=1), np.ones(len(x)))
        start += len(values)


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

    # ceil(0.34 * 10) = 4 test rows
    assert (len(split.y_train), len(split.y_test)) == (6, 4)


def test_unknown_centre_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="atlantis"):
        load_centre("atlantis")
