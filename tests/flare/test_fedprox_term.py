"""The FedProx term as the executors build it: nvflare's PTFedProxLoss against a frozen copy of the
received global model, passed to ``train_local`` as ``proximal``."""

import copy

import numpy as np
import pytest

from consortium.flare.tabular_executor import TabularExecutor
from consortium.learning.tabular import LogisticRegression, TrainConfig, get_weights, set_weights, train_local


def logistic(w, b):
    model = LogisticRegression(in_features=len(w))
    set_weights(
        model, {"linear.weight": np.array([w], dtype=np.float32), "linear.bias": np.array([b], dtype=np.float32)}
    )
    return model


def proximal_for(reference_model, mu):
    """The term the executors' shared training task builds (SiteExecutor.proximal_term)."""
    return TabularExecutor(fedprox_mu=mu).proximal_term(reference_model)


def distance_sq(a, b):
    wa, wb = get_weights(a), get_weights(b)
    return sum(float(np.sum((wa[k] - wb[k]) ** 2)) for k in wa)


@pytest.fixture
def toy():
    x = np.array([[-2.0, 1.0], [-1.0, 0.5], [1.0, -0.5], [2.0, -1.0]] * 3, dtype=np.float32)
    y = np.array([0, 0, 1, 1] * 3, dtype=np.float32)
    return x, y


def test_fedprox_term_is_half_mu_times_squared_distance():
    # ||w - w_g||^2 = 1^2 + 2^2 + 0.5^2 = 5.25; mu/2 = 0.2 -> 1.05
    model = logistic([1.0, 2.0], 0.5)
    proximal = proximal_for(logistic([0.0, 0.0], 0.0), mu=0.4)

    value = proximal(model).item()

    np.testing.assert_allclose(value, 1.05, rtol=1e-6)


def test_fedprox_term_is_zero_for_equal_weights():
    model = logistic([1.0, 2.0], 0.5)
    proximal = proximal_for(model, mu=0.4)

    value = proximal(model).item()

    assert value == 0.0


def test_fedprox_term_has_the_gradient_mu_times_difference():
    # d/dw mu/2 ||w - w_g||^2 = mu (w - w_g)
    model = logistic([1.0, 2.0], 0.5)
    proximal = proximal_for(logistic([0.0, 1.0], 1.0), mu=0.4)

    proximal(model).backward()

    np.testing.assert_allclose(model.linear.weight.grad.numpy(), [[0.4, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(model.linear.bias.grad.numpy(), [-0.2], rtol=1e-6)


def test_fedprox_reference_is_not_moved_by_training(toy):
    x, y = toy
    model = logistic([0.0, 0.0], 0.0)
    prox = proximal_for(model, 1.0)

    train_local(model, x, y, TrainConfig(epochs=3, lr=0.2, batch_size=4), seed=0, proximal=prox)

    assert float(prox(logistic([0.0, 0.0], 0.0))) == 0.0  # the reference is still the received model
    assert float(prox(model)) > 0.0


def test_large_mu_keeps_training_closer_to_the_global_model(toy):
    x, y = toy
    config = TrainConfig(epochs=5, lr=0.1, batch_size=4)
    start = logistic([0.1, -0.1], 0.0)
    plain, prox = copy.deepcopy(start), copy.deepcopy(start)

    train_local(plain, x, y, config, seed=3)
    train_local(prox, x, y, config, seed=3, proximal=proximal_for(start, mu=10.0))

    assert distance_sq(prox, start) < 0.5 * distance_sq(plain, start)
