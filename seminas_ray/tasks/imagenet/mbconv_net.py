"""The standalone network of one ``mbconv`` architecture (for final training and to check the space's costs).

It is the authors' ``NASNet`` built from ``utils.build_model_config`` (ProxylessNAS layers): stem conv, fixed
MBConv k3e1 block, the 21 searched layers (a skipped layer is an identity), 1x1 feature-mix conv, global average
pool, dropout and the linear classifier. BatchNorm uses the authors' momentum 0.1 and eps 1e-3, and weights are
initialised as theirs (He fan-out divided by groups for convs, BN weight 1 / bias 0, the linear layer PyTorch's
uniform(+-1/sqrt(fan_in)) with a zero bias).
Shapes and widths come from :class:`~seminas_ray.spaces.mbconv.MBConvSpace`, so the module's parameter count and
convolution multiply-adds are exactly ``space.cost(arch)`` (the tests check it with ``FlopCounterMode``).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from seminas_ray.spaces.mbconv import IN_CHANNELS
from seminas_ray.spaces.mbconv import MBCONV_OPS
from seminas_ray.spaces.mbconv import SKIP
from seminas_ray.spaces.mbconv import MBConvSpace

BN_MOMENTUM = 0.1
BN_EPS = 1e-3


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, momentum=BN_MOMENTUM, eps=BN_EPS),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConvBlock(nn.Module):
    """Inverted residual: [1x1 expand], kxk depthwise (stride), 1x1 linear project; residual when shapes match."""

    def __init__(self, cin: int, cout: int, kernel: int, expansion: int, stride: int) -> None:
        super().__init__()
        mid = round(cin * expansion)
        self.residual = stride == 1 and cin == cout
        self.expand = conv_bn(cin, mid, 1) if expansion > 1 else nn.Identity()
        self.depthwise = conv_bn(mid, mid, kernel, stride=stride, groups=mid)
        self.project = conv_bn(mid, cout, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class MBConvNet(nn.Module):
    """One architecture of the ``mbconv`` space as a plain classifier (``forward(images) -> logits``)."""

    def __init__(self, tokens: tuple[int, ...], space: MBConvSpace, dropout: float = 0.0,
                 stem_stride: int = 2) -> None:
        super().__init__()
        w = space.widths
        self.tokens = tokens
        self.stem = conv_bn(IN_CHANNELS, w.stem, 3, stride=stem_stride)
        blocks: list[nn.Module] = [MBConvBlock(w.stem, w.first, 3, 1, 1)]
        for token, shape in zip(tokens, space.layers):
            if token == SKIP:
                blocks.append(nn.Identity())  # the authors' ZeroLayer block returns its input
            else:
                blocks.append(MBConvBlock(shape.cin, shape.cout, *MBCONV_OPS[token], shape.stride))
        self.blocks = nn.Sequential(*blocks)
        self.feature_mix = conv_bn(space.layers[-1].cout, w.head, 1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(w.head, space.n_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' initialisation (``model.py:init_model``, ``he_fout``)."""
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.feature_mix(self.blocks(self.stem(x)))
        return self.classifier(self.dropout(x.mean(dim=(2, 3))))


def init_weights(module: nn.Module) -> None:
    """He fan-out (divided by groups) for convs, BN weight 1 / bias 0, uniform(+-1/sqrt(fan_in)) linear, zero bias."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels / m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.weight.size(1))
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


def build_network(arch: Any, space: MBConvSpace, dropout: float = 0.0, stem_stride: int = 2) -> MBConvNet:
    """The network of ``arch`` (an arch, layer string or 21 tokens) at the widths and class count of ``space``.

    ``stem_stride=1`` is the small-image stem: on an ``s x s`` input it costs exactly what ``space`` counts at
    resolution ``2s`` (see ``geometry.py``).
    """
    return MBConvNet(space.coerce(arch).tokens, space, dropout=dropout, stem_stride=stem_stride)


__all__ = ["BN_EPS", "BN_MOMENTUM", "MBConvBlock", "MBConvNet", "build_network", "conv_bn", "init_weights"]
