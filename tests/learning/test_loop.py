"""The shared local-training loop: optimiser and batches come from the caller; FedProx's term acts
as a gradient term on the optimiser, so it survives a privacy engine that rewrites gradients."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from nvflare.app_opt.pt.fedproxloss import PTFedProxLoss
from torch import nn

from consortium.learning.fedprox import ProximalTerm
from consortium.learning.loop import TrainConfig, get_weights, run_local_training, set_weights, sgd, train_with_sgd
from consortium.learning.tabular import LogisticRegression, tabular_loader


def logistic(w, b):
    model = LogisticRegression(in_features=len(w))
    set_weights(model, {"linear.weight": np.array([w], dtype=np.float32), "linear.bias": np.array([b], dtype=np.float32)})
    return model


@pytest.fixture
def toy():
    x = np.array([[-2.0, 1.0], [-1.0, 0.5], [1.0, -0.5], [2.0, -1.0]] * 3, dtype=np.float32)
    y = np.array([0, 0, 1, 1] * 3, dtype=np.float32)
    return x, y


def distance_sq(a, b):
    wa, wb = get_weights(a), get_weights(b)
    return sum(float(np.sum((wa[k] - wb[k]) ** 2)) for k in wa)


def assert_same_weights(a, b, atol=1e-6):
    for k, v in get_weights(a).items():
        np.testing.assert_allclose(v, get_weights(b)[k], atol=atol, err_msg=k)


def test_proximal_gradient_is_mu_times_difference_as_nvflare_fedprox_loss():
    # d/dw mu/2 ||w - w_g||^2 = mu (w - w_g): the same gradient nvflare's PTFedProxLoss gives
    reference = logistic([0.0, 1.0], 1.0)
    model = copy.deepcopy(reference)
    term = ProximalTerm(model, mu=0.4)  # the received global model, as the executor makes it
    set_weights(model, get_weights(logistic([1.0, 2.0], 0.5)))  # ... then local training moved it
    PTFedProxLoss(mu=0.4)(model, reference).backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}

    model.zero_grad(set_to_none=False)
    term.add_gradient(model.parameters())

    np.testing.assert_allclose(model.linear.weight.grad.numpy(), [[0.4, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(model.linear.bias.grad.numpy(), [-0.2], rtol=1e-6)
    for n, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), expected[n].numpy(), rtol=1e-6)


def test_fedprox_by_optimiser_hook_trains_as_fedprox_by_loss(toy):
    """The same trajectory as ``loss + PTFedProxLoss`` (the formulation FedProx is written in)."""
    x, y = toy
    config = TrainConfig(epochs=3, lr=0.2, batch_size=4, momentum=0.5)
    start = logistic([0.3, -0.2], 0.1)
    by_loss, by_hook = copy.deepcopy(start), copy.deepcopy(start)
    prox, bce = PTFedProxLoss(mu=0.7), nn.BCEWithLogitsLoss()
    frozen = copy.deepcopy(start).requires_grad_(False)
    run_local_training(by_loss, sgd(by_loss, config), tabular_loader(x, y, 4, seed=1),
                       lambda out, t: bce(out, t) + prox(by_loss, frozen), config.epochs)

    train_with_sgd(by_hook, tabular_loader(x, y, 4, seed=1), bce, config, fedprox_mu=0.7)

    assert_same_weights(by_hook, by_loss)


def test_reference_is_the_model_when_the_term_is_made(toy):
    x, y = toy
    model = logistic([0.0, 0.0], 0.0)
    term = ProximalTerm(model, 1.0)
    opt = sgd(model, TrainConfig(lr=0.2))
    term.attach(opt)

    run_local_training(model, opt, tabular_loader(x, y, 4, seed=0), nn.BCEWithLogitsLoss(), 3)

    assert all(torch.count_nonzero(r) == 0 for r in term.reference.values())  # training did not move it
    assert distance_sq(model, logistic([0.0, 0.0], 0.0)) > 0


def test_large_mu_keeps_training_closer_to_the_global_model(toy):
    x, y = toy
    config = TrainConfig(epochs=5, lr=0.1, batch_size=4)
    start = logistic([0.1, -0.1], 0.0)
    plain, prox = copy.deepcopy(start), copy.deepcopy(start)

    train_with_sgd(plain, tabular_loader(x, y, 4, seed=3), nn.BCEWithLogitsLoss(), config)
    train_with_sgd(prox, tabular_loader(x, y, 4, seed=3), nn.BCEWithLogitsLoss(), config, fedprox_mu=10.0)

    assert distance_sq(prox, start) < 0.5 * distance_sq(plain, start)


def test_negative_mu_is_refused():
    with pytest.raises(ValueError, match="mu must be >= 0"):
        ProximalTerm(logistic([0.0], 0.0), -0.1)


def _opacus_train(model, x, y, mu, prox_in_loss=False):
    """Opacus wraps the caller's optimiser and loader; noise 0 and a clip bound no gradient reaches,
    so DP-SGD computes exactly the plain mini-batch gradient."""
    from opacus import PrivacyEngine

    optimizer, bce = sgd(model, TrainConfig(lr=0.2)), nn.BCEWithLogitsLoss()
    frozen = copy.deepcopy(model).requires_grad_(False)
    if not prox_in_loss:
        ProximalTerm(model, mu).attach(optimizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus warns that noise 0 gives no privacy: intended here
        private, dp_optimizer, dp_loader = PrivacyEngine().make_private(
            module=model, optimizer=optimizer, data_loader=tabular_loader(x, y, 4, seed=2),
            noise_multiplier=0.0, max_grad_norm=1e6, poisson_sampling=False)
    loss = (lambda out, t: bce(out, t) + PTFedProxLoss(mu)(model, frozen)) if prox_in_loss else bce
    run_local_training(private, dp_optimizer, dp_loader, loss, 3)
    return model


def test_fedprox_term_still_acts_when_opacus_wraps_the_optimiser(toy):
    x, y = toy
    start = logistic([0.5, -0.5], 0.2)
    reference = copy.deepcopy(start)
    train_with_sgd(reference, tabular_loader(x, y, 4, seed=2), nn.BCEWithLogitsLoss(), TrainConfig(epochs=3, lr=0.2), fedprox_mu=2.0)

    private = _opacus_train(copy.deepcopy(start), x, y, mu=2.0)

    assert_same_weights(private, reference, atol=1e-5)


def test_a_proximal_term_in_the_loss_would_vanish_under_opacus(toy):
    """Why the term is an optimiser hook: added through the loss, Opacus drops it."""
    x, y = toy
    start = logistic([0.5, -0.5], 0.2)
    no_prox = copy.deepcopy(start)
    train_with_sgd(no_prox, tabular_loader(x, y, 4, seed=2), nn.BCEWithLogitsLoss(), TrainConfig(epochs=3, lr=0.2))

    private = _opacus_train(copy.deepcopy(start), x, y, mu=2.0, prox_in_loss=True)

    assert_same_weights(private, no_prox, atol=1e-5)


def test_batches_may_be_a_factory_per_epoch_and_steps_are_counted(toy):
    x, y = toy
    model = logistic([0.0, 0.0], 0.0)
    seen = []

    def batches(epoch):
        seen.append(epoch)
        return tabular_loader(x, y, 5, seed=epoch)

    result = run_local_training(model, sgd(model, TrainConfig()), batches, nn.BCEWithLogitsLoss(), 2)

    assert seen == [0, 1] and result.steps == 2 * 3  # ceil(12 / 5) batches per epoch


def test_mean_loss_is_ln2_when_every_logit_is_zero(toy):
    x, y = toy
    model = logistic([0.0, 0.0], 0.0)

    result = run_local_training(model, sgd(model, TrainConfig(lr=1e-9)), tabular_loader(x, y, 12, 0), nn.BCEWithLogitsLoss(), 1)

    assert result.mean_loss == pytest.approx(np.log(2), rel=1e-6)


def test_no_batches_is_an_error():
    model = logistic([0.0], 0.0)
    with pytest.raises(ValueError, match="no step"):
        run_local_training(model, sgd(model, TrainConfig()), [], nn.BCEWithLogitsLoss(), 1)
