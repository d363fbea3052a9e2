"""The server's step from a round's combined update to the update it publishes.

* :class:`PlainStep`: publish the combined update as it is (``w <- w_global + update``).
* :class:`ServerMomentum`: heavy-ball momentum, ``v_t = beta v_{t-1} + update_t``, publish ``v_t``
  (Wang et al. 2020 pair FedNova with it). Its velocity is state the server must keep across rounds.
"""

from __future__ import annotations

from typing import Protocol

from consortium.aggregation.fednova import server_momentum
from consortium.aggregation.weighted_mean import Update


class ServerStep(Protocol):
    def apply(self, update: Update) -> Update: ...


class PlainStep:
    def apply(self, update: Update) -> Update:
        return update


class ServerMomentum:
    def __init__(self, beta: float) -> None:
        server_momentum(None, {}, beta)  # validates beta
        self.beta = float(beta)
        self.velocity: Update | None = None

    def apply(self, update: Update) -> Update:
        self.velocity = server_momentum(self.velocity, update, self.beta)
        return self.velocity


def make_server_step(server_momentum_beta: float = 0.0) -> ServerStep:
    return ServerMomentum(server_momentum_beta) if server_momentum_beta else PlainStep()
