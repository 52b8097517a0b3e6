"""FedProx's proximal term, added to a bank's local steps as a data-independent gradient.

FedProx (Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020,
Algorithm 2) has each client minimise ``F_k(w) + mu / 2 * ||w - w_global||^2``: the
second term keeps a bank's local model near the global one it started from, which
limits client drift when the banks' data differ. Its gradient is
``mu * (w - w_global)``. :func:`attach_proximal_term` adds exactly that to every
parameter's gradient right before the optimiser's step (a step pre-hook), instead of
adding the term to the loss: the same update for plain SGD (a test checks it against
autograd on the loss with the term), and the only place it can go under DP-SGD.

Notes
-----
Why the term leaves DP-SGD's privacy accounting unchanged. Opacus computes each
sample's gradient of the data loss, clips it to ``max_grad_norm``, sums, adds Gaussian
noise and divides by the expected batch size (``DPOptimizer.pre_step``); only then
does the wrapped optimiser step. The hook is registered on that wrapped optimiser, so
``mu * (w - w_global)`` is added *after* clipping and noise, to the already private
gradient. It depends on no row: ``w`` is the output of the previous private steps and
``w_global`` is the model the coordinator sent (public to the bank). Each step is
therefore still the sampled Gaussian mechanism applied to per-sample gradients of
sensitivity ``max_grad_norm`` at a point chosen from earlier outputs (adaptive
composition, which the RDP accountant assumes), followed by post-processing. Adding
the term to the loss instead would be wrong twice over: it would not be a per-sample
quantity (Opacus's per-sample hooks only see the layers' inputs), and Opacus replaces
``p.grad`` with the clipped, noised sum, so the term would silently be dropped.

The term changes what the noisy steps converge to, not their privacy: the noise per
step, the steps and the sampling rate are the ones the bank's ledger charged.

A coordinator chooses mu; a large one pins the bank's update to the global model (at
``learning_rate * mu`` near 1 every step returns to ``w_global``, the bank's data then
has no effect while its budget is still spent) and beyond 2 makes the steps diverge.
It reveals nothing about the rows (the update still goes through DP-SGD and secure
aggregation), but the bank bounds mu by its own policy
(:class:`participant.guard.settings.TrainingPolicy`).
"""

from __future__ import annotations

import torch
from torch.utils.hooks import RemovableHandle

__all__ = ["attach_proximal_term"]


def attach_proximal_term(optimizer: torch.optim.Optimizer, mu: float) -> RemovableHandle:
    """Add ``mu * (w - w_global)`` to each parameter's gradient before every step.

    ``w_global`` is each parameter's value when this is called: attach it before the
    first local step, while the model still holds the global weights.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimiser whose ``step`` applies the gradients. Under DP-SGD, the optimiser
        Opacus's ``DPOptimizer`` wraps (its ``original_optimizer``), so that the term is
        added after per-sample clipping and noise.
    mu : float
        FedProx's mu, >= 0 and finite.

    Returns
    -------
    torch.utils.hooks.RemovableHandle
        Removes the hook.

    Raises
    ------
    ValueError
        ``mu`` is negative or not finite.
    """
    if not (mu >= 0 and mu < float("inf")):
        raise ValueError(f"mu must be >= 0 and finite; got {mu}")
    pairs = [
        (parameter, parameter.detach().clone())
        for group in optimizer.param_groups
        for parameter in group["params"]
    ]

    def add_proximal_gradient(*_: object) -> None:
        with torch.no_grad():
            for parameter, anchor in pairs:
                if parameter.grad is None:
                    parameter.grad = mu * (parameter.detach() - anchor)
                else:
                    parameter.grad.add_(parameter.detach() - anchor, alpha=mu)

    return optimizer.register_step_pre_hook(add_proximal_gradient)
