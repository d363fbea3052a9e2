"""Personalisation by local fine-tuning: settings, and the fine-tuned model scored on the site's own
test split, on a tiny synthetic site."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from consortium.data.imaging import ScannerProfile, generate_site, site_split
from consortium.learning.loop import TrainConfig, get_weights
from consortium.learning.personalisation import Personalisation, fine_tuned, is_global_model, personalised_key
from consortium.learning.segmentation import SegmentationUNet, dice_scores, personalised_dice, predict, train_segmentation

CONFIG = TrainConfig(epochs=2, lr=0.1, batch_size=4, momentum=0.9)


@pytest.fixture(scope="module")
def site():
    torch.set_num_threads(1)
    return site_split(*generate_site(ScannerProfile(n_images=12, size=32, seed=5)), 0.25)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", None])
def test_personalise_epochs_must_be_a_non_negative_integer_and_the_error_names_it(bad):
    with pytest.raises(ValueError, match=rf"personalise_epochs must be an integer >= 0, got {bad!r}"):
        Personalisation(bad)


def test_zero_epochs_is_off_and_has_no_training_config():
    off = Personalisation(0)

    assert not off.enabled
    with pytest.raises(ValueError, match="personalisation is off"):
        off.train_config(CONFIG)


def test_fine_tuning_keeps_the_sites_optimiser_settings_and_sets_the_epochs():
    assert Personalisation(5).train_config(CONFIG) == TrainConfig(epochs=5, lr=0.1, batch_size=4, momentum=0.9)


def test_the_server_models_are_global_and_a_sites_model_is_not():
    assert is_global_model("SRV_FL_global_model.pt") and is_global_model(None)  # None: the HE jobs' evaluation
    assert not is_global_model("cleveland")
    assert personalised_key("dice") == "dice_personalised"


def test_fine_tuning_trains_a_copy_and_leaves_the_global_model_unchanged(site):
    (train, _) = site
    model = SegmentationUNet(channels=(4, 8, 16))
    before = get_weights(model)

    tuned = fine_tuned(model, lambda m: train_segmentation(m, *train, CONFIG, seed=1))

    for k, v in get_weights(model).items():
        np.testing.assert_array_equal(v, before[k])
    assert any(not np.array_equal(v, before[k]) for k, v in get_weights(tuned).items() if v.dtype.kind == "f")


def test_personalised_dice_is_the_fine_tuned_model_on_the_sites_own_test_split(site):
    train, test = site
    model = SegmentationUNet(channels=(4, 8, 16))
    by_hand = SegmentationUNet(channels=(4, 8, 16))
    by_hand.load_state_dict(model.state_dict())
    train_segmentation(by_hand, *train, CONFIG, seed=3)

    dice = personalised_dice(model, train, test, CONFIG, seed=3)

    assert dice.shape == (len(test[0]),)
    np.testing.assert_allclose(dice, dice_scores(predict(by_hand, test[0]), test[1]))
