"""MONAI UNet training on a tiny synthetic case."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from consortium.data.imaging import ScannerProfile, generate_site
from consortium.learning.loop import TrainConfig, get_weights
from consortium.learning.segmentation import SegmentationUNet, build_unet, dice_scores, predict, train_segmentation


@pytest.fixture(scope="module")
def tiny():
    return generate_site(ScannerProfile(n_images=8, size=32, seed=5))


def test_default_unet_has_about_forty_thousand_parameters():
    assert 35_000 < sum(p.numel() for p in build_unet().parameters()) < 45_000


def test_training_lowers_the_dice_loss_and_counts_steps(tiny):
    torch.set_num_threads(1)
    model = SegmentationUNet(channels=(4, 8, 16))
    config = TrainConfig(epochs=1, lr=0.1, batch_size=4, momentum=0.9)
    first = train_segmentation(model, *tiny, config, seed=0)
    for s in range(1, 6):
        last = train_segmentation(model, *tiny, config, seed=s)
    assert first.steps == last.steps == 2
    assert last.mean_loss < first.mean_loss


def test_same_seed_same_weights(tiny):
    config = TrainConfig(epochs=1, lr=0.1, batch_size=4, momentum=0.9)
    a, b = SegmentationUNet(channels=(4, 8, 16)), SegmentationUNet(channels=(4, 8, 16))
    train_segmentation(a, *tiny, config, seed=3)
    train_segmentation(b, *tiny, config, seed=3)
    for k, v in get_weights(a).items():
        np.testing.assert_array_equal(v, get_weights(b)[k])


def test_prediction_is_a_binary_mask_of_the_image_shape(tiny):
    pred = predict(SegmentationUNet(channels=(4, 8, 16)), tiny[0])
    assert pred.shape == tiny[1].shape and set(np.unique(pred)) <= {0, 1}


def test_dice_by_hand():
    truth = np.zeros((2, 1, 4, 4), dtype=np.uint8)
    truth[0, 0, :2, :2] = 1  # 4 pixels
    pred = np.zeros_like(truth)
    pred[0, 0, :2, :1] = 1  # 2 of them
    truth[1, 0, 0, 0] = pred[1, 0, 0, 0] = 1  # perfect
    np.testing.assert_allclose(dice_scores(pred, truth), [2 * 2 / (4 + 2), 1.0], rtol=1e-6)
