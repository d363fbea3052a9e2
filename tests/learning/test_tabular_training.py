"""Local training of the tabular models: config checks, SGD, evaluation, weight I/O, seeding."""

import math

import numpy as np
import pytest
import torch

from consortium.learning.loop import TrainConfig, get_weights, set_weights
from consortium.learning.tabular import MLP, LogisticRegression, evaluate, train_local


@pytest.fixture
def separable():
    """1-D points: negatives at -3..-1, positives at 1..3 (a threshold at 0 separates them)."""
    x = np.array([[-3.0], [-2.0], [-1.0], [1.0], [2.0], [3.0]] * 2, dtype=np.float32)
    y = np.array([0, 0, 0, 1, 1, 1] * 2, dtype=np.float32)
    return x, y


def logistic(w, b):
    model = LogisticRegression(in_features=len(w))
    set_weights(
        model, {"linear.weight": np.array([w], dtype=np.float32), "linear.bias": np.array([b], dtype=np.float32)}
    )
    return model


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1.5}, "epochs"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -0.1}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.0}, "batch_size"),
        ({"momentum": 1.0}, "momentum"),
        ({"momentum": -0.1}, "momentum"),
    ],
)
def test_train_config_rejects_bad_values_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**kwargs)


def test_train_config_accepts_valid_values():
    config = TrainConfig(epochs=3, lr=0.1, batch_size=4, momentum=0.9)

    assert (config.epochs, config.lr, config.batch_size, config.momentum) == (3, 0.1, 4, 0.9)


def test_train_local_reduces_the_training_loss(separable):
    x, y = separable
    model = logistic([-0.5], 0.0)  # starts on the wrong side
    before = evaluate(model, x, y).loss

    train_local(model, x, y, TrainConfig(epochs=20, lr=0.5, batch_size=4), seed=0)

    after = evaluate(model, x, y)
    assert after.loss < before
    assert after.correct == len(y)


@pytest.mark.parametrize("n, batch_size, epochs", [(12, 4, 1), (12, 5, 2), (7, 7, 3), (5, 1, 2), (3, 8, 1)])
def test_train_local_steps_are_epochs_times_batches(n, batch_size, epochs):
    x = np.zeros((n, 2), dtype=np.float32)
    y = np.zeros(n, dtype=np.float32)

    result = train_local(LogisticRegression(2), x, y, TrainConfig(epochs=epochs, batch_size=batch_size), seed=0)

    assert result.steps == epochs * math.ceil(n / batch_size)


def test_train_local_mean_loss_is_ln2_when_every_logit_is_zero():
    # zero weights and zero inputs: every batch has logit 0, so every data loss is ln 2
    x = np.zeros((6, 2), dtype=np.float32)
    y = np.array([0, 1, 0, 1, 0, 1], dtype=np.float32)
    model = logistic([0.0, 0.0], 0.0)

    result = train_local(model, x, y, TrainConfig(epochs=1, lr=1e-6, batch_size=6), seed=0)

    assert result.steps == 1
    np.testing.assert_allclose(result.mean_loss, np.log(2.0), rtol=1e-6)


def test_train_local_same_seed_gives_identical_weights(separable):
    x, y = separable
    a, b = logistic([0.1], 0.2), logistic([0.1], 0.2)

    train_local(a, x, y, TrainConfig(epochs=2, lr=0.3, batch_size=3), seed=11)
    train_local(b, x, y, TrainConfig(epochs=2, lr=0.3, batch_size=3), seed=11)

    for k, v in get_weights(a).items():
        np.testing.assert_array_equal(v, get_weights(b)[k])


def test_train_local_different_seed_gives_different_weights(separable):
    x, y = separable
    a, b = logistic([0.1], 0.2), logistic([0.1], 0.2)

    train_local(a, x, y, TrainConfig(epochs=2, lr=0.3, batch_size=3), seed=11)
    train_local(b, x, y, TrainConfig(epochs=2, lr=0.3, batch_size=3), seed=12)

    assert not np.array_equal(get_weights(a)["linear.weight"], get_weights(b)["linear.weight"])


def test_train_local_rejects_an_empty_training_set():
    with pytest.raises(ValueError, match="empty"):
        train_local(LogisticRegression(2), np.zeros((0, 2)), np.zeros(0), TrainConfig(), seed=0)


def test_evaluate_counts_correct_predictions_by_hand():
    # logit = x: predictions 1, 0, 1, 0 against labels 1, 1, 0, 0 -> first and last are right
    model = logistic([1.0], 0.0)
    x = np.array([[2.0], [-1.0], [3.0], [-4.0]], dtype=np.float32)
    y = np.array([1, 1, 0, 0], dtype=np.float32)

    result = evaluate(model, x, y)

    assert (result.n, result.correct) == (4, 2)
    np.testing.assert_allclose(result.accuracy, 0.5)


def test_evaluate_loss_is_ln2_for_zero_logits():
    model = logistic([0.0, 0.0], 0.0)
    x = np.ones((4, 2), dtype=np.float32)
    y = np.array([1, 0, 1, 1], dtype=np.float32)

    result = evaluate(model, x, y)

    np.testing.assert_allclose(result.loss, np.log(2.0), rtol=1e-6)


def test_evaluate_loss_by_hand():
    # logit ln 3 -> p = 3/4: loss -ln(3/4) for label 1 and -ln(1/4) for label 0
    model = logistic([1.0], 0.0)
    x = np.array([[np.log(3.0)], [np.log(3.0)]], dtype=np.float32)
    y = np.array([1, 0], dtype=np.float32)

    result = evaluate(model, x, y)

    np.testing.assert_allclose(result.loss, (-np.log(0.75) - np.log(0.25)) / 2, rtol=1e-6)


def test_get_weights_returns_what_set_weights_loaded():
    model = logistic([1.0, -2.0, 0.5], 0.25)

    weights = get_weights(model)

    np.testing.assert_array_equal(weights["linear.weight"], [[1.0, -2.0, 0.5]])
    np.testing.assert_array_equal(weights["linear.bias"], [0.25])


def test_set_weights_rejects_a_missing_name():
    model = LogisticRegression(2)

    with pytest.raises(ValueError, match="linear.bias"):
        set_weights(model, {"linear.weight": np.zeros((1, 2), dtype=np.float32)})


def test_set_weights_rejects_an_extra_name():
    model = LogisticRegression(2)
    weights = {**get_weights(model), "linear.extra": np.zeros(1, dtype=np.float32)}

    with pytest.raises(ValueError, match="linear.extra"):
        set_weights(model, weights)


def test_set_weights_rejects_a_wrong_shape():
    model = LogisticRegression(2)
    weights = {"linear.weight": np.zeros((1, 3), dtype=np.float32), "linear.bias": np.zeros(1, dtype=np.float32)}

    with pytest.raises(ValueError, match="linear.weight"):
        set_weights(model, weights)


@pytest.mark.parametrize("cls", [LogisticRegression, MLP])
def test_model_init_is_deterministic_for_init_seed(cls):
    a, b = get_weights(cls(init_seed=3)), get_weights(cls(init_seed=3))

    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("cls", [LogisticRegression, MLP])
def test_model_init_differs_for_another_init_seed(cls):
    a, b = get_weights(cls(init_seed=3)), get_weights(cls(init_seed=4))

    assert any(not np.array_equal(a[k], b[k]) for k in a)


def test_seeded_init_leaves_the_global_torch_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)

    torch.manual_seed(123)
    LogisticRegression(init_seed=5)
    actual = torch.rand(3)

    np.testing.assert_array_equal(actual.numpy(), expected.numpy())


@pytest.mark.parametrize("cls", [LogisticRegression, MLP])
def test_models_output_one_logit_per_row(cls):
    model = cls(in_features=15)

    out = model(torch.zeros(4, 15))

    assert tuple(out.shape) == (4,)
