"""FedNova's client-side normaliser a_k (Wang et al. 2020, "Tackling the Objective Inconsistency
Problem in Heterogeneous Federated Optimization", NeurIPS).

After tau local steps a site's cumulative update is ``Delta_k = eta * G_k a_k`` where ``a_k`` sums
the weights that the local optimiser puts on the gradients it saw. The server divides each update
by its ``a_k`` before averaging (see :mod:`consortium.aggregation.fednova`), so a site that takes
more steps no longer pulls the global model towards its own optimum.

* vanilla SGD: ``a = tau``
* local momentum rho: ``a = [tau - rho (1 - rho^tau) / (1 - rho)] / (1 - rho)``
* proximal term mu (FedProx) with step eta: ``a = [1 - (1 - eta mu)^tau] / (eta mu)``
"""

from __future__ import annotations


def _check_steps(tau: int) -> None:
    if not isinstance(tau, int) or isinstance(tau, bool) or tau < 1:
        raise ValueError(f"tau (local steps) must be an integer >= 1, got {tau!r}")


def normaliser_sgd(tau: int) -> float:
    """``a = tau`` for plain SGD."""
    _check_steps(tau)
    return float(tau)


def normaliser_momentum(tau: int, rho: float) -> float:
    """``a = [tau - rho (1 - rho^tau) / (1 - rho)] / (1 - rho)`` for SGD with momentum ``rho``."""
    _check_steps(tau)
    if not 0.0 <= rho < 1.0:
        raise ValueError(f"momentum rho must be in [0, 1), got {rho!r}")
    return (tau - rho * (1.0 - rho**tau) / (1.0 - rho)) / (1.0 - rho)


def normaliser_proximal(tau: int, lr: float, mu: float) -> float:
    """``a = [1 - (1 - lr mu)^tau] / (lr mu)`` for SGD with a proximal term ``mu/2 ||w - w_g||^2``."""
    _check_steps(tau)
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if not 0 < lr * mu < 1:
        raise ValueError(f"need 0 < lr * mu < 1 for the proximal normaliser, got lr={lr!r}, mu={mu!r}")
    return (1.0 - (1.0 - lr * mu) ** tau) / (lr * mu)


def local_normaliser(tau: int, lr: float, momentum: float = 0.0, mu: float = 0.0) -> float:
    """The ``a_k`` of the optimiser actually used; refuses momentum and a proximal term together
    (no closed form in the paper) rather than report a wrong normaliser."""
    if momentum and mu:
        raise ValueError(f"no FedNova normaliser for momentum={momentum} together with a proximal term mu={mu}")
    if mu:
        return normaliser_proximal(tau, lr, mu)
    if momentum:
        return normaliser_momentum(tau, momentum)
    return normaliser_sgd(tau)
