"""The segmentation executor's personalisation, without FLARE processes: the global model's
validation carries the personalised Dice, a site's model's does not, and a bad setting is refused
when the executor is built."""

from __future__ import annotations

import pytest
import torch
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.fl_constant import ReservedKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.signal import Signal
from nvflare.app_common.app_constant import AppConstants

from consortium.data.imaging import ScannerProfile, generate_site, site_split
from consortium.flare.executors.segmentation import SegmentationExecutor
from consortium.learning.loop import get_weights

MODEL_ARGS = {"channels": [4, 8, 16]}


@pytest.fixture(scope="module")
def executor():
    torch.set_num_threads(1)
    ex = SegmentationExecutor(model_args=MODEL_ARGS, train_local_only=False, log_writer_id=None, personalise_epochs=2,
                              batch_size=4)
    ex.train, ex.test = site_split(*generate_site(ScannerProfile(n_images=12, size=32, seed=5)), 0.25)
    return ex


def validate(ex, owner):
    ctx = FLContext()
    ctx.set_prop(ReservedKey.IDENTITY_NAME, "cleveland", private=False, sticky=False)
    task = DXO(data_kind=DataKind.WEIGHTS, data=get_weights(ex.model)).to_shareable()
    if owner is not None:
        task.set_header(AppConstants.MODEL_OWNER, owner)
    return from_shareable(ex.execute("validate", task, ctx, Signal())).data


@pytest.mark.parametrize("owner", ["SRV_FL_global_model.pt", None])
def test_validating_the_global_model_adds_the_personalised_dice(executor, owner):
    metrics = validate(executor, owner)

    assert 0.0 <= metrics["dice_personalised"] <= 1.0 and metrics["personalise_epochs"] == 2
    assert metrics["dice_personalised"] != metrics["dice"]  # another model: the fine-tuned copy


def test_a_sites_model_is_only_scored(executor):
    assert "dice_personalised" not in validate(executor, "hungary")


def test_validation_leaves_the_received_model_unchanged(executor):
    before = get_weights(executor.model)
    validate(executor, None)
    assert all((get_weights(executor.model)[k] == v).all() for k, v in before.items())


@pytest.mark.parametrize("bad", [-2, 0.5, "5"])
def test_a_bad_personalise_epochs_is_refused_naming_the_field_and_value(bad):
    with pytest.raises(ValueError, match=rf"personalise_epochs must be an integer >= 0, got {bad!r}"):
        SegmentationExecutor(model_args=MODEL_ARGS, personalise_epochs=bad)


def test_personalisation_is_refused_under_dp_sgd():
    with pytest.raises(ValueError, match="personalise_epochs = 3 cannot be combined with dp_sgd"):
        SegmentationExecutor(model_args=MODEL_ARGS, personalise_epochs=3,
                             dp_sgd={"max_grad_norm": 1.0, "noise_multiplier": 1.0})
