"""DP-SGD in local training: Opacus around the caller's optimiser and loader, weights unprefixed,
FedProx still acting, and the release it reports for the ledger."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from opacus.validators import ModuleValidator
from torch import nn

from consortium.learning.loop import TrainConfig, get_weights
from consortium.learning.segmentation import SegmentationUNet
from consortium.learning.tabular import MLP, LogisticRegression, tabular_loader
from consortium.privacy.accounting import GaussianSteps, epsilon_spent
from consortium.privacy.dp_sgd import DPSGDConfig, train_dp_sgd
from consortium.training_settings import LocalTrainingSettings


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)


def run(model, data, dp, mu=None, seed=3, epochs=2):
    x, y = data
    return train_dp_sgd(model, tabular_loader(x, y, 8, seed or 0), nn.BCEWithLogitsLoss(), TrainConfig(epochs=epochs, lr=0.2),
                        dp, seed, fedprox_mu=mu)


@pytest.mark.parametrize("model", [LogisticRegression(13), MLP(13), SegmentationUNet()], ids=type)
def test_the_consortium_models_pass_opacus_module_validator(model):
    assert ModuleValidator.validate(model, strict=False) == []


def test_weights_keep_their_names_and_the_model_trains_again_next_round(data):
    model = LogisticRegression(4)
    names = list(get_weights(model))

    run(model, data, DPSGDConfig(noise_multiplier=1.0))
    run(model, data, DPSGDConfig(noise_multiplier=1.0))  # no hooks left over from the first round

    assert list(get_weights(model)) == names
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())


def test_a_model_left_in_eval_mode_by_scoring_still_trains(data):
    model = LogisticRegression(4).eval()

    result, _ = run(model, data, DPSGDConfig(noise_multiplier=1.0))

    assert result.steps > 0


def test_the_release_is_poisson_rate_one_over_batches_for_every_step(data):
    result, release = run(LogisticRegression(4), data, DPSGDConfig(noise_multiplier=1.3, max_grad_norm=0.7), epochs=2)

    assert release.sample_rate == pytest.approx(1 / 12)  # 96 rows, batch 8
    assert release.steps == 24 == result.steps
    assert (release.mechanism, release.noise_multiplier, release.clip_norm) == ("dp_sgd", 1.3, 0.7)


def test_target_epsilon_calibrates_sigma_for_the_planned_rounds(data):
    _, release = run(LogisticRegression(4), data, DPSGDConfig(target_epsilon=1.0, delta=1e-3, planned_rounds=10))

    eps = epsilon_spent([GaussianSteps(release.noise_multiplier, release.sample_rate, release.steps * 10)], 1e-3)
    assert 0.98 <= eps <= 1.0


def test_without_a_seed_the_noise_cannot_be_replayed(data):
    a, b = LogisticRegression(4), LogisticRegression(4)
    run(a, data, DPSGDConfig(noise_multiplier=1.0), seed=None)
    run(b, data, DPSGDConfig(noise_multiplier=1.0), seed=None)
    assert any(not np.array_equal(v, get_weights(b)[k]) for k, v in get_weights(a).items())


def test_same_seed_same_model(data):  # tests only: a site never passes a seed
    a, b = LogisticRegression(4), LogisticRegression(4)
    run(a, data, DPSGDConfig(noise_multiplier=1.0), seed=5)
    run(b, data, DPSGDConfig(noise_multiplier=1.0), seed=5)
    for k, v in get_weights(a).items():
        np.testing.assert_array_equal(v, get_weights(b)[k])


def test_fedprox_with_positive_mu_changes_the_dp_sgd_update(data):
    start = LogisticRegression(4)
    for p in start.parameters():
        p.data.fill_(2.0)  # far from the optimum: the proximal pull is visible
    plain, prox = copy.deepcopy(start), copy.deepcopy(start)

    run(plain, data, DPSGDConfig(noise_multiplier=0.5), seed=4)
    run(prox, data, DPSGDConfig(noise_multiplier=0.5), seed=4, mu=5.0)

    def moved(m):
        return sum(float(np.sum((v - get_weights(start)[k]) ** 2)) for k, v in get_weights(m).items())

    assert moved(prox) < 0.5 * moved(plain)  # same noise and batches: only the term differs


def test_settings_take_dp_sgd_from_the_job_arguments():
    s = LocalTrainingSettings.from_args({"dp_sgd": {"max_grad_norm": 1.0, "noise_multiplier": 1.1}})
    assert s.dp_sgd == DPSGDConfig(max_grad_norm=1.0, noise_multiplier=1.1)
    assert LocalTrainingSettings().dp_sgd is None


@pytest.mark.parametrize("args,match", [
    ({"max_grad_norm": 0.0, "noise_multiplier": 1.0}, "max_grad_norm"),
    ({"max_grad_norm": 1.0}, "exactly one"),
    ({"target_epsilon": 1.0}, "planned_rounds"),
    ({"noise_multiplier": 1.0, "delta": 1.0}, "delta"),
    ({"noise_multiplier": 1.0, "clip": 1.0}, "unknown"),
])
def test_bad_dp_sgd_settings_are_refused_naming_them(args, match):
    with pytest.raises(ValueError, match=match):
        LocalTrainingSettings.from_args({"dp_sgd": args})
