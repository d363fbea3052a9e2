"""FedProx (Li et al., 2020) at the site: the proximal term ``mu/2 ||w - w_global||^2`` of the
local objective, added as its gradient ``mu (w - w_global)`` before every optimiser step, so it
acts on whatever gradient the optimiser holds (plain SGD, or Opacus' noised one under DP-SGD).
The server side of FedProx is FedAvg (:mod:`consortium.aggregation`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class ProximalTerm:
    """FedProx's ``mu/2 ||w - w_ref||^2`` applied as a gradient term ``mu (w - w_ref)``.

    :meth:`attach` registers it on an optimiser as a step pre-hook; attach it to the optimiser that
    performs the parameter update (for Opacus, the one passed to ``make_private``: its
    ``DPOptimizer`` calls the inner optimiser's ``step`` after writing the noised gradient).
    """

    def __init__(self, model: nn.Module, mu: float) -> None:
        if not mu >= 0:
            raise ValueError(f"FedProx mu must be >= 0, got {mu!r}")
        self.mu = float(mu)
        self.reference = {id(p): p.detach().clone() for p in model.parameters()}

    def add_gradient(self, params: Iterable[torch.Tensor]) -> None:
        for p in params:
            if p.grad is not None and id(p) in self.reference:
                p.grad.add_(p.detach() - self.reference[id(p)], alpha=self.mu)

    def attach(self, optimizer: torch.optim.Optimizer):
        """Add the term before every ``optimizer.step()``; returns the hook handle."""
        def hook(opt, _args, _kwargs):
            for group in opt.param_groups:
                self.add_gradient(group["params"])
        return optimizer.register_step_pre_hook(hook)
