"""The MBConv weight-sharing supernet over the real ``mbconv`` space (spec section 4, the authors' ``model_ws.py``).

Stem conv (stride 2, or 1 for small images: ``geometry.py``), the fixed MBConv k3e1 first block, the 21 searchable
layers each holding **all 7 options** (the 6 MBConv blocks, and the skip where the layer does not start a stage),
the 1x1 feature-mix conv, global average pooling and the classifier: exactly the modules of
:func:`~seminas_ray.tasks.imagenet.mbconv_net.build_network` for any one path (the tests check that a path's
parameter count is the space's ``cost()["params"]``). ``forward(x, arch)`` runs one path (single-path training).

BatchNorm and data parallelism: in training mode each op normalises with its replica's shard statistics, and the
running statistics are *not* updated (``momentum=0``): shard statistics differ between replicas, so tracked
buffers would make them drift apart, and a path's statistics are stale anyway once other paths moved the shared
weights. Scoring instead recalibrates the path's statistics on fixed training batches and then runs in eval mode
(:func:`recalibrated`), which is deterministic and leaves the module exactly as it was. (The authors scored with
BN in eval mode on running statistics mixed over all paths, on one random validation batch: noisy.)
"""
from __future__ import annotations

import contextlib
from typing import Iterator
from typing import Sequence

import torch
from torch import nn

from seminas_ray.spaces.mbconv import IN_CHANNELS
from seminas_ray.spaces.mbconv import MBCONV_OPS
from seminas_ray.spaces.mbconv import SKIP
from seminas_ray.spaces.mbconv import MBConvSpace
from seminas_ray.tasks.imagenet.mbconv_net import MBConvBlock
from seminas_ray.tasks.imagenet.mbconv_net import conv_bn
from seminas_ray.tasks.imagenet.mbconv_net import init_weights


class MBConvSupernet(nn.Module):
    """Every option of every layer of ``space``; ``forward(x, arch)`` runs path ``arch`` (a tuple of 21 tokens)."""

    def __init__(self, space: MBConvSpace, stem_stride: int = 2) -> None:
        super().__init__()
        w = space.widths
        self.stem = conv_bn(IN_CHANNELS, w.stem, 3, stride=stem_stride)
        self.first = MBConvBlock(w.stem, w.first, 3, 1, 1)
        self.layers = nn.ModuleList()
        for pos, shape in enumerate(space.layers):
            ops = nn.ModuleDict()
            for token in space.allowed_tokens(pos):
                ops[str(token)] = (nn.Identity() if token == SKIP
                                   else MBConvBlock(shape.cin, shape.cout, *MBCONV_OPS[token], shape.stride))
            self.layers.append(ops)
        self.feature_mix = conv_bn(space.layers[-1].cout, w.head, 1)
        self.classifier = nn.Linear(w.head, space.n_classes)
        init_weights(self)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.0  # no running statistics in training (see the module docstring)

    def path_modules(self, arch: Sequence[int]) -> list[nn.Module]:
        """The modules path ``arch`` runs, in forward order."""
        return [self.stem, self.first, *(ops[str(t)] for ops, t in zip(self.layers, arch)), self.feature_mix,
                self.classifier]

    def path_parameters(self, arch: Sequence[int]) -> list[nn.Parameter]:
        """The path's parameters in a fixed order (the same on every replica)."""
        return [p for module in self.path_modules(arch) for p in module.parameters()]

    def forward(self, x: torch.Tensor, arch: Sequence[int]) -> torch.Tensor:
        x = self.first(self.stem(x))
        for ops, token in zip(self.layers, arch):
            x = ops[str(token)](x)
        return self.classifier(self.feature_mix(x).mean(dim=(2, 3)))


@contextlib.contextmanager
def recalibrated(model: MBConvSupernet, arch: Sequence[int], batches: Sequence[torch.Tensor]) -> Iterator[None]:
    """Eval mode with the path's BatchNorm statistics recomputed on ``batches``; everything restored afterwards.

    The statistics are the plain average over the batches (``momentum=None``), so they depend only on the weights
    and the batches: scoring is a pure function of both, whichever replica runs it.
    """
    norms = [m for module in model.path_modules(arch) for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [(m.momentum, {k: b.clone() for k, b in m.named_buffers()}) for m in norms]
    was_training = model.training
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        with torch.no_grad():
            for x in batches:
                model(x, arch)
        model.eval()
        yield
    finally:
        for m, (momentum, buffers) in zip(norms, saved):
            m.momentum = momentum
            for name, value in buffers.items():
                getattr(m, name).copy_(value)
        model.train(was_training)


__all__ = ["MBConvSupernet", "recalibrated"]
