"""How a run's images map onto the ``mbconv`` space: input size, stem stride, width multiplier, FLOPs budget.

Torch-free (the task and the trial processes use it). The space's costs assume the paper's stride-2 stem; small
images (Fashion-MNIST, 28x28 padded to 32x32) use a **stride-1 stem** instead, so the 21 layers see the feature
maps a 64x64 image would give them (32, 16, 8, 4, 4, 2, 2) instead of collapsing to 1x1. A stride-1 stem on an
``s x s`` input has exactly the multiply-adds of a stride-2 stem on ``2s x 2s`` (the same output map), so the space is
built at the *stem-equivalent resolution* ``input_size * 2 / stem_stride`` and its ``cost()`` is the exact
multiply-add count of the network the run trains (``tests/test_imagenet_task.py`` checks it with
``FlopCounterMode``).

The FLOPs budget is given at the paper's setting (600M multiply-adds of the *final* network at 224x224, 1000
classes, width 1) and moved to the run's setting by the cost ratio of SemiNASNet, the architecture the paper
reports at that budget (599.0M): ``budget_run = budget_224 * cost_run(SemiNASNet) / cost_224(SemiNASNet)``. At a
resolution that is a multiple of 32 with width 1 and 1000 classes this is :func:`scaled_budget` to within 0.3%;
unlike the square law alone it also follows the width multiplier and the class count, so the budget keeps cutting
the space at the same place (SemiNASNet exactly at the limit, about a fifth of the space feasible).
"""
from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

from seminas_ray.spaces.mbconv import PAPER_FLOPS_BUDGET
from seminas_ray.spaces.mbconv import PAPER_RESOLUTION
from seminas_ray.spaces.mbconv import SEMINASNET
from seminas_ray.spaces.mbconv import MBConvSpace

#: the constrained (and trained, reported) network is the final one; the supernet uses the search widths
CONSTRAINED_NET = "final"
SEARCH_NET = "search"


@dataclass(frozen=True)
class ImageGeometry:
    """The network's input: ``input_size`` x ``input_size`` RGB images, a stem of ``stem_stride``, widths x ``width_mult``."""

    input_size: int
    stem_stride: int
    width_mult: float
    n_classes: int

    def __post_init__(self) -> None:
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem stride must be 1 or 2, got {self.stem_stride}")
        if self.input_size < 8 or self.width_mult <= 0 or self.n_classes < 2:
            raise ValueError(f"need input size >= 8, width multiplier > 0 and >= 2 classes; got {self.input_size}, "
                             f"{self.width_mult}, {self.n_classes}")

    @property
    def resolution(self) -> int:
        """The stem-equivalent resolution the space's costs are computed at (see the module docstring)."""
        return self.input_size * 2 // self.stem_stride

    def space(self, net: str = CONSTRAINED_NET, flops_budget: int | None = None) -> MBConvSpace:
        """The ``mbconv`` space of ``net`` widths at this geometry."""
        return MBConvSpace(net=net, width_mult=self.width_mult, resolution=self.resolution,
                           n_classes=self.n_classes, flops_budget=flops_budget)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "resolution": self.resolution}


def paper_space() -> MBConvSpace:
    """The paper's constrained network: final widths, 224x224, 1000 classes."""
    return MBConvSpace(net=CONSTRAINED_NET, resolution=PAPER_RESOLUTION, n_classes=1000)


def run_budget(geometry: ImageGeometry, budget_224: float = PAPER_FLOPS_BUDGET) -> int:
    """The multiply-add budget at ``geometry`` for a budget of ``budget_224`` in the paper's setting."""
    ratio = geometry.space().cost(SEMINASNET)["flops"] / paper_space().cost(SEMINASNET)["flops"]
    return int(float(budget_224) * ratio)


def constrained_space(geometry: ImageGeometry, budget_224: float = PAPER_FLOPS_BUDGET) -> MBConvSpace:
    """The search space: final widths at ``geometry`` with the scaled budget; one-line error when nothing fits."""
    budget = run_budget(geometry, budget_224)
    cheapest = geometry.space().min_flops
    if budget < cheapest:
        paper_min = cheapest * paper_space().cost(SEMINASNET)["flops"] / geometry.space().cost(SEMINASNET)["flops"]
        raise ValueError(f"--flops-budget {budget_224 / 1e6:g}M is below the cheapest architecture "
                         f"({paper_min / 1e6:.1f}M at 224x224; {cheapest:,} multiply-adds at this run's "
                         f"{geometry.input_size}x{geometry.input_size} is more than the scaled budget {budget:,})")
    return geometry.space(flops_budget=budget)


__all__ = ["CONSTRAINED_NET", "SEARCH_NET", "ImageGeometry", "constrained_space", "paper_space", "run_budget"]
