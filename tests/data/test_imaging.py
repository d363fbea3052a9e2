"""Synthetic site imaging data: deterministic, shaped as promised, measurably different per site,
and read back only when intact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from consortium.data.imaging import (
    ScannerProfile,
    generate_site,
    load_profiles,
    load_site_data,
    split_indices,
    write_site_data,
)


@pytest.fixture(scope="module")
def small():
    return ScannerProfile(n_images=6, size=32, seed=3)


def test_same_profile_gives_identical_data(small):
    a_img, a_mask = generate_site(small)
    b_img, b_mask = generate_site(small)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_mask, b_mask)


def test_other_seed_gives_other_data(small):
    a_img, _ = generate_site(small)
    b_img, _ = generate_site(ScannerProfile(n_images=6, size=32, seed=4))
    assert not np.array_equal(a_img, b_img)


def test_shapes_and_binary_masks(small):
    images, masks = generate_site(small)
    assert images.shape == masks.shape == (6, 1, 32, 32)
    assert images.dtype == np.float32 and masks.dtype == np.uint8
    assert set(np.unique(masks)) <= {0, 1}
    assert 0.02 < masks.mean() < 0.5  # lesions present, not everywhere


def test_three_dimensional_option():
    images, masks = generate_site(ScannerProfile(n_images=4, size=16, dims=3, seed=1))
    assert images.shape == masks.shape == (4, 1, 16, 16, 16)


def _contrast(images, masks):
    """Mean lesion intensity minus mean background intensity."""
    return float(images[masks == 1].mean() - images[masks == 0].mean())


def test_inverted_scanner_flips_lesion_contrast(small):
    ref = generate_site(small)
    inv = generate_site(ScannerProfile(n_images=6, size=32, seed=3, invert=True))
    np.testing.assert_array_equal(ref[1], inv[1])  # same anatomy
    assert _contrast(*ref) > 0.3
    assert _contrast(*inv) < -0.3


def test_gamma_changes_intensities_non_linearly(small):
    ref, _ = generate_site(small)
    low_gamma, _ = generate_site(ScannerProfile(n_images=6, size=32, seed=3, gamma=0.4))
    # a linear map a*x + b would fit exactly; gamma 0.4 leaves a clear residual
    coef = np.polyfit(ref.ravel(), low_gamma.ravel(), 1)
    residual = low_gamma.ravel() - np.polyval(coef, ref.ravel())
    assert residual.std() > 0.02


def test_noise_and_blur_are_measurable(small):
    ref, _ = generate_site(small)
    noisy, _ = generate_site(ScannerProfile(n_images=6, size=32, seed=3, noise_std=0.1))
    blurred, _ = generate_site(ScannerProfile(n_images=6, size=32, seed=3, blur_sigma=1.5))
    assert np.std(noisy - ref) > 0.05
    assert np.abs(np.diff(blurred, axis=-1)).mean() < np.abs(np.diff(ref, axis=-1)).mean()


def test_written_data_reads_back(tmp_path, small):
    write_site_data(tmp_path / "site", small)
    images, masks = load_site_data(tmp_path / "site")
    np.testing.assert_array_equal(images, generate_site(small)[0])
    assert masks.shape == images.shape


def test_missing_folder_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        load_site_data(tmp_path / "nowhere")


def test_corrupt_data_names_the_path(tmp_path, small):
    folder = write_site_data(tmp_path / "site", small)
    (folder / "images.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="unreadable in .*site"):
        load_site_data(folder)


def test_changed_data_fails_the_checksum(tmp_path, small):
    folder = write_site_data(tmp_path / "site", small)
    images, masks = generate_site(small)
    np.savez_compressed(folder / "images.npz", images=images + 0.01, masks=masks)
    with pytest.raises(ValueError, match="checksum does not match"):
        load_site_data(folder)


def test_profiles_file_errors_name_file_and_field(tmp_path):
    p = tmp_path / "profiles.json"
    p.write_text(json.dumps({"sites": {"cleveland": {"gamma": -1}}}))
    with pytest.raises(ValueError, match=r"profiles\.json: sites\.cleveland: gamma = -1 is out of range"):
        load_profiles(p)
    p.write_text(json.dumps({"sites": {"cleveland": {"gama": 0.4}}}))
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['gama'\]"):
        load_profiles(p)


def test_split_is_deterministic_and_disjoint():
    tr, te = split_indices(20, 0.25, 7)
    tr2, te2 = split_indices(20, 0.25, 7)
    np.testing.assert_array_equal(te, te2)
    assert len(te) == 5 and set(tr).isdisjoint(te) and len(tr) + len(te) == 20
