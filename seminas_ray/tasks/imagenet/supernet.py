"""A small MBConv weight-sharing supernet (the ProxylessNAS/SemiNAS ImageNet search space, shrunk to small images).

A stem conv, then ``L`` searchable layers, each holding every choice: an inverted-residual MBConv block with kernel
3/5/7 and expansion 3/6 (tokens 1-6) or, where the layer's input and output shapes match, a skip (token 7). Then
global average pooling and a linear head. An architecture is a tuple of ``L`` tokens, its key the tokens joined by
spaces ("1 5 7 3").

BatchNorm and data parallelism: in training mode each op normalises with its replica's shard statistics, and the
running statistics are *not* updated (``momentum=0``): shard statistics differ between replicas, so tracked
buffers would make them drift apart, and a path's statistics are stale anyway once other paths moved the shared
weights. Scoring instead recalibrates the path's statistics on fixed training batches and then runs in eval mode
(:func:`recalibrated`), which is deterministic and leaves the module exactly as it was.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any
from typing import Iterator
from typing import Sequence

import torch
from torch import nn

# token -> (kernel size, expansion ratio); SKIP is the identity
MBCONV_TOKENS: dict[int, tuple[int, int]] = {1: (3, 3), 2: (3, 6), 3: (5, 3), 4: (5, 6), 5: (7, 3), 6: (7, 6)}
SKIP = 7


@dataclass(frozen=True)
class ImageSupernetConfig:
    """Shape of the supernet; the defaults suit 28x28 grey images (28 -> 28 -> 14 -> 14 -> 7)."""

    in_channels: int = 1
    num_classes: int = 10
    stem_channels: int = 8
    widths: tuple[int, ...] = (8, 16, 16, 32)
    strides: tuple[int, ...] = (1, 2, 1, 2)

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.strides) or not self.widths:
            raise ValueError(f"widths {self.widths} and strides {self.strides} must be non-empty and equally long")

    @property
    def num_layers(self) -> int:
        return len(self.widths)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ImageSupernetConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def layer_shapes(cfg: ImageSupernetConfig) -> list[tuple[int, int, int]]:
    """``(in_channels, out_channels, stride)`` of each searchable layer."""
    ins = (cfg.stem_channels, *cfg.widths[:-1])
    return [(cin, cout, s) for cin, cout, s in zip(ins, cfg.widths, cfg.strides)]


def allowed_tokens(cfg: ImageSupernetConfig, layer: int) -> tuple[int, ...]:
    """The tokens of ``layer``: every MBConv, plus skip where the shapes match (not where a stage starts)."""
    cin, cout, stride = layer_shapes(cfg)[layer]
    return (*MBCONV_TOKENS, SKIP) if (stride == 1 and cin == cout) else tuple(MBCONV_TOKENS)


def parse_arch(key: str, cfg: ImageSupernetConfig) -> tuple[int, ...]:
    """The token tuple of key ``key``; ``ValueError`` naming the problem for a malformed one."""
    parts = str(key).split()
    if len(parts) != cfg.num_layers or not all(p.isdigit() for p in parts):
        raise ValueError(f"not an image-supernet architecture: {key!r} (expected {cfg.num_layers} op tokens)")
    arch = tuple(int(p) for p in parts)
    for layer, token in enumerate(arch):
        if token not in allowed_tokens(cfg, layer):
            raise ValueError(f"op token {token} not allowed in layer {layer} of {key!r} "
                             f"(allowed: {allowed_tokens(cfg, layer)})")
    return arch


def arch_key(arch: Sequence[int]) -> str:
    """The canonical key of an architecture."""
    return " ".join(str(int(t)) for t in arch)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=0.0)  # no running statistics in training (see the module docstring)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, kxk depthwise (stride), 1x1 project; residual when the shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, kernel: int, expansion: int) -> None:
        super().__init__()
        mid = cin * expansion
        self.residual = stride == 1 and cin == cout
        self.expand = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), _bn(mid), nn.ReLU6(inplace=True))
        self.depthwise = nn.Sequential(
            nn.Conv2d(mid, mid, kernel, stride=stride, padding=kernel // 2, groups=mid, bias=False), _bn(mid),
            nn.ReLU6(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), _bn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class ImageSupernet(nn.Module):
    """All choices of every layer; ``forward(x, arch)`` runs one path."""

    def __init__(self, cfg: ImageSupernetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Sequential(nn.Conv2d(cfg.in_channels, cfg.stem_channels, 3, padding=1, bias=False),
                                  _bn(cfg.stem_channels), nn.ReLU6(inplace=True))
        self.layers = nn.ModuleList()
        for layer, (cin, cout, stride) in enumerate(layer_shapes(cfg)):
            ops = nn.ModuleDict()
            for token in allowed_tokens(cfg, layer):
                ops[str(token)] = nn.Identity() if token == SKIP else MBConv(cin, cout, stride, *MBCONV_TOKENS[token])
            self.layers.append(ops)
        self.head = nn.Linear(cfg.widths[-1], cfg.num_classes)

    def path_modules(self, arch: Sequence[int]) -> list[nn.Module]:
        """The modules path ``arch`` runs, in forward order (stem, one op per layer, head)."""
        return [self.stem, *(ops[str(t)] for ops, t in zip(self.layers, arch)), self.head]

    def path_parameters(self, arch: Sequence[int]) -> list[nn.Parameter]:
        """The path's parameters in a fixed order (the same on every replica)."""
        return [p for module in self.path_modules(arch) for p in module.parameters()]

    def forward(self, x: torch.Tensor, arch: Sequence[int]) -> torch.Tensor:
        x = self.stem(x)
        for ops, token in zip(self.layers, arch):
            x = ops[str(token)](x)
        return self.head(x.mean(dim=(2, 3)))


@contextlib.contextmanager
def recalibrated(model: ImageSupernet, arch: Sequence[int], batches: Sequence[torch.Tensor]) -> Iterator[None]:
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


__all__ = ["ImageSupernet", "ImageSupernetConfig", "MBConv", "MBCONV_TOKENS", "SKIP", "allowed_tokens",
           "arch_key", "layer_shapes", "parse_arch", "recalibrated"]
