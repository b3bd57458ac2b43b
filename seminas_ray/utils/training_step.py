"""The one optimisation step every trainer in the project takes (supernet replicas and standalone final training).

Keeping a single implementation keeps the order of operations, which decides the numbers bit for bit, in one place:
``model.train()``, ``optimizer.zero_grad(set_to_none=True)``, the losses, ``backward()``, the optional gradient
hook (the data-parallel all-reduce), clipping over the parameters that received a gradient, ``optimizer.step()``,
``scheduler.step()``. Gradients are reset to ``None`` (not zero), so parameters off a single path keep
``grad is None`` and AdamW leaves them alone (no update, no weight decay).
"""
from __future__ import annotations

from typing import Any
from typing import Callable
from typing import Iterable

import torch


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loss_fn: Callable[[], dict[str, torch.Tensor]],
    clip_norm: float,
    params: Iterable[torch.nn.Parameter] | None = None,
    sync_gradients: Callable[[], None] | None = None,
) -> dict[str, float]:
    """One step; returns every loss of ``loss_fn()`` as a float plus ``grad_norm`` (0 without clipping).

    ``loss_fn`` runs the forward pass and returns named scalar losses; ``"loss"`` is the one back-propagated.
    ``params`` limits clipping to those parameters (default: all of ``model``'s); either way only the ones holding
    a gradient are clipped. ``sync_gradients`` runs between ``backward()`` and clipping (e.g. an all-reduce).
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    losses = loss_fn()
    losses["loss"].backward()
    if sync_gradients is not None:
        sync_gradients()
    if clip_norm > 0:
        with_grad = [p for p in (model.parameters() if params is None else params) if p.grad is not None]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(with_grad, clip_norm))
    else:
        grad_norm = 0.0
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    result = {k: float(v.detach()) for k, v in losses.items()}
    result["grad_norm"] = grad_norm
    return result


__all__ = ["train_step"]
