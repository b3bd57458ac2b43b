"""The SemiNAS / ProxylessNAS ImageNet space: a chain of 21 searchable MBConv layers (spec section 4).

Network (the authors' ``imagenet/model_ws.py`` and ``utils.py:build_model_config``, ProxylessNAS layout):

* stem: 3x3 conv stride 2, 3 -> ``stem`` channels, BN, ReLU6;
* a fixed first block: MBConv kernel 3, expansion 1 (no 1x1 expand conv), ``stem`` -> ``first`` channels;
* 21 searchable layers in 6 stages (widths 24, 40, 80, 96, 192, 320; 4, 4, 4, 4, 4, 1 layers; strides
  2, 2, 2, 1, 2, 1 on the first layer of a stage), each an MBConv with kernel 3/5/7 x expansion 3/6 (tokens 1-6:
  1x1 expand conv + BN + ReLU6, kxk depthwise conv + BN + ReLU6, 1x1 project conv + BN; residual when the shapes
  match) or skip (token 7, the authors' ``ZeroLayer``: the block returns its input). The first layer of a stage
  changes the shape, so it can never be skipped;
* head: 1x1 conv -> ``head`` channels (1280), BN, ReLU6, global average pool, dropout, linear -> ``n_classes``.

``net="final"`` selects the wider widths of the final SemiNASNet (stem 40, first block 24, stages
32, 56, 112, 128, 256, 432, head 1728); ``width_mult`` scales any of them the ProxylessNAS way
(:func:`make_divisible` by 8, and the head only grows: it stays at ``head`` for ``width_mult <= 1``).

Costs (:meth:`MBConvSpace.cost`) are exact and analytic. ``flops`` is the number of **multiply-adds** (MACs) of
the convolutions and the classifier's matrix product, which is what the paper (and the authors' ``get_flops``)
call FLOPs: its "600M FLOPs" mobile setting is 600M MACs. BatchNorm, activations, the residual additions, pooling
and the classifier bias are *not* counted; there is no squeeze-and-excitation. ``torch.utils.flop_counter``'s
``FlopCounterMode`` counts ``2 x`` this number (one multiply and one add per MAC) for the same network.
``params`` counts every trainable parameter: conv weights (no conv biases), BatchNorm weight and bias (2 per
channel; running statistics are buffers) and the classifier's weight and bias.

Every searchable layer's input shape is fixed by its position (skip layers never change the shape), so the cost of
an architecture is a fixed part plus one table entry per layer: :meth:`MBConvSpace.cost_many` is a gather-and-sum
over a ``[21, 8]`` table (millions of token rows per second). Spatial sizes are those of the real convolutions with
'same' padding, ``ceil(h / stride)``; the authors' ``count_conv_flop`` uses ``int(h / stride)``, which agrees at
224x224 (every size is even) but not at odd sizes.

An architecture is an :class:`MBConvArch`; its key is the authors' layer string, e.g. the SemiNASNet
``"6 5 1 7 4 2 5 3 5 2 5 3 3 5 7 3 1 6 3 3 6"`` (the format of ``runs/train_seminasnet.sh`` and of the image
supernet's keys). The controller sequence is the 21 tokens themselves; token 0 is SOS/pad.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from typing import Sequence

import numpy as np

from seminas_ray.spaces.base import InvalidArchitecture
from seminas_ray.spaces.base import SearchSpace

#: token -> (kernel size, expansion ratio) of the MBConv ops; :data:`SKIP` is the removed layer.
MBCONV_OPS: dict[int, tuple[int, int]] = {1: (3, 3), 2: (3, 6), 3: (5, 3), 4: (5, 6), 5: (7, 3), 6: (7, 6)}
SKIP = 7
N_OPS = 7
#: Display name per token (index 0 = SOS/pad, never an op).
OP_NAMES: tuple[str, ...] = ("<sos>", "k3e3", "k3e6", "k5e3", "k5e6", "k7e3", "k7e6", "skip")
_NAME_TO_TOKEN = {name: tok for tok, name in enumerate(OP_NAMES) if tok > 0}

STAGE_LAYERS: tuple[int, ...] = (4, 4, 4, 4, 4, 1)
STAGE_STRIDES: tuple[int, ...] = (2, 2, 2, 1, 2, 1)
N_LAYERS = sum(STAGE_LAYERS)  # 21
#: Positions of the first layer of each stage (never skip): 0, 4, 8, 12, 16, 20.
STAGE_STARTS: tuple[int, ...] = tuple(int(i) for i in np.cumsum((0,) + STAGE_LAYERS[:-1]))
SPACE_SIZE = (N_OPS - 1) ** len(STAGE_STARTS) * N_OPS ** (N_LAYERS - len(STAGE_STARTS))  # 6^6 * 7^15 ~ 2.2e17
IN_CHANNELS = 3
#: The paper's mobile setting: at most 600M multiply-adds at 224x224 (see :func:`scaled_budget`).
PAPER_FLOPS_BUDGET = 600_000_000
PAPER_RESOLUTION = 224

_MBCONV_TOKENS = tuple(MBCONV_OPS)
_ALL_TOKENS = (*MBCONV_OPS, SKIP)


@dataclass(frozen=True)
class NetWidths:
    """Channel widths of the fixed parts and of the 6 stages (before ``width_mult``)."""

    stem: int
    first: int
    stages: tuple[int, ...]
    head: int


#: ``search``: the supernet the authors search with; ``final``: the wider net they train the result in.
NETS: dict[str, NetWidths] = {
    "search": NetWidths(stem=32, first=16, stages=(24, 40, 80, 96, 192, 320), head=1280),
    "final": NetWidths(stem=40, first=24, stages=(32, 56, 112, 128, 256, 432), head=1728),
}


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor``, never down by more than 10% (TF MobileNet / ProxylessNAS)."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def scaled_budget(budget_at_224: float, resolution: int) -> int:
    """A FLOPs budget set at 224x224 moved to ``resolution``: ``budget * (resolution / 224)^2``, rounded down.

    Convolution MACs scale with the output area, so at a multiple of 32 (every feature map then scales by exactly
    ``resolution / 224``) the scaled budget keeps nearly the same architectures; only the classifier's constant
    ``head x n_classes`` MACs do not scale. Other resolutions round odd feature maps up (``ceil(h / 2)``), which
    costs more than the square law: at 112 (last maps 4x4, not 3.5x3.5) SemiNASNet costs 0.275x its 224 cost,
    not 0.25x, so prefer multiples of 32 or set the budget directly.
    """
    return int(math.floor(float(budget_at_224) * (int(resolution) / PAPER_RESOLUTION) ** 2))


def conv_out(size: int, stride: int) -> int:
    """Output size of a 'same'-padded odd-kernel convolution: ``ceil(size / stride)``."""
    return (int(size) - 1) // int(stride) + 1


def _check_tokens(tokens: Sequence[Any]) -> tuple[int, ...]:
    if len(tokens) != N_LAYERS:
        raise InvalidArchitecture(f"an MBConv arch has {N_LAYERS} layer tokens, got {len(tokens)}: {tuple(tokens)!r}")
    out = []
    for i, t in enumerate(tokens):
        # bool is an int subclass; refuse it (and floats such as 3.5) so garbage never becomes an arch silently
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise InvalidArchitecture(f"MBConv layer {i}: op token must be an int, got {t!r}")
        if not 1 <= int(t) <= N_OPS:
            raise InvalidArchitecture(f"MBConv layer {i}: op token must be in 1..{N_OPS}, got {int(t)}")
        if int(t) == SKIP and i in STAGE_STARTS:
            raise InvalidArchitecture(f"MBConv layer {i} starts a stage and cannot be skip (token {SKIP})")
        out.append(int(t))
    return tuple(out)


@dataclass(frozen=True)
class MBConvArch:
    """One architecture: an op token (1..7) per searchable layer. Construction validates it."""

    tokens: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", _check_tokens(tuple(self.tokens)))

    def __str__(self) -> str:
        return format_arch(self)


def format_arch(arch: MBConvArch) -> str:
    """The authors' layer string, e.g. ``"6 5 1 7 4 2 5 3 5 2 5 3 3 5 7 3 1 6 3 3 6"``."""
    return " ".join(map(str, arch.tokens))


def parse_arch(text: str) -> MBConvArch:
    """Parse 21 tokens (``"6 5 1 ..."``) or op names (``"k7e6 k7e3 skip ..."``), split by spaces or commas."""
    if not isinstance(text, str):
        raise InvalidArchitecture(f"an MBConv layer string must be a str, got {type(text).__name__}")
    tokens = []
    for word in text.replace(",", " ").split():
        if re.fullmatch(r"\d+", word):
            tokens.append(int(word))
        elif word.lower() in _NAME_TO_TOKEN:
            tokens.append(_NAME_TO_TOKEN[word.lower()])
        else:
            raise InvalidArchitecture(f"MBConv layer string {text!r}: {word!r} is neither a token nor an op name")
    return MBConvArch(tuple(tokens))


#: SemiNASNet, the architecture the paper reports (``runs/train_seminasnet.sh``; layers 3 and 14 skipped).
SEMINASNET = parse_arch("6 5 1 7 4 2 5 3 5 2 5 3 3 5 7 3 1 6 3 3 6")
#: MobileNetV2-like: every layer kernel 3, expansion 6.
ALL_K3E6 = MBConvArch((2,) * N_LAYERS)


@dataclass(frozen=True)
class LayerShape:
    """Input/output channels, stride and input/output spatial size of one searchable layer."""

    cin: int
    cout: int
    stride: int
    size_in: int
    size_out: int

    @property
    def residual(self) -> bool:
        """Whether an MBConv in this layer adds its input (and skip is possible)."""
        return self.stride == 1 and self.cin == self.cout


def _mbconv_cost(cin: int, cout: int, kernel: int, expansion: int, size_in: int, stride: int) -> tuple[int, int]:
    """(MACs, params) of one MBConv (expand only when ``expansion > 1``, as the authors' layer)."""
    mid = round(cin * expansion)
    size_out = conv_out(size_in, stride)
    macs = params = 0
    if expansion > 1:
        macs += size_in * size_in * cin * mid
        params += cin * mid + 2 * mid
    macs += size_out * size_out * mid * kernel * kernel
    params += mid * kernel * kernel + 2 * mid
    macs += size_out * size_out * mid * cout
    params += mid * cout + 2 * cout
    return macs, params


class _BudgetSampler:
    """Uniform draws over the architectures whose cost is at most a budget (exact, no long rejection loops).

    Costs are additive per layer. With an integer quantum ``q``, every feasible arch has ``sum(c // q) <= R`` where
    ``R = slack // q``; counting the completions of that superset per (layer, remaining bucket) lets each layer's
    token be drawn with the right conditional probability, which is uniform over the superset. Rejecting the few
    superset members above the exact budget leaves draws uniform over the feasible set.
    """

    def __init__(self, table: np.ndarray, allowed: Sequence[tuple[int, ...]], slack: int, buckets: int = 4096) -> None:
        self.allowed = [np.asarray(a, dtype=np.int64) for a in allowed]
        self.quantum = max(1, int(slack) // buckets)
        self.rmax = int(slack) // self.quantum
        self.qcost = table // self.quantum
        counts = np.zeros((len(allowed) + 1, self.rmax + 1))
        counts[-1] = 1.0
        for pos in range(len(allowed) - 1, -1, -1):
            for tok in self.allowed[pos]:
                shift = int(self.qcost[pos, tok])
                if shift <= self.rmax:
                    counts[pos, shift:] += counts[pos + 1, : self.rmax + 1 - shift]
        self.counts = counts

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` token rows uniform over the quantised superset of the feasible set."""
        left = np.full(n, self.rmax, dtype=np.int64)
        out = np.zeros((n, len(self.allowed)), dtype=np.int64)
        for pos, toks in enumerate(self.allowed):
            rest = left[:, None] - self.qcost[pos, toks][None, :]
            weights = np.where(rest >= 0, self.counts[pos + 1, np.clip(rest, 0, None)], 0.0)
            cum = np.cumsum(weights, axis=1)
            pick = (cum < rng.random(n)[:, None] * cum[:, -1:]).sum(axis=1)
            pick = np.minimum(pick, len(toks) - 1)
            out[:, pos] = toks[pick]
            left -= self.qcost[pos, out[:, pos]]
        return out


class MBConvSpace(SearchSpace[MBConvArch]):
    """The 21-layer MBConv space (6^6 * 7^15 ~ 2.2e17 archs) as a :class:`SearchSpace`, with exact costs.

    Settings: ``net`` (``"search"`` or ``"final"`` widths, see :data:`NETS`), ``width_mult``, ``resolution``
    (input height = width), ``n_classes`` and ``flops_budget`` (max multiply-adds at this resolution; ``None`` =
    unconstrained, as in the authors' search code; the paper's mobile setting is
    ``scaled_budget(PAPER_FLOPS_BUDGET, resolution)``). The budget binds :meth:`sample`, :meth:`mutate` and
    :meth:`within_budget`; :meth:`is_valid` and :meth:`decode` stay structural (the controller's token-wise
    decoding cannot see a global budget), so callers filter decoded archs with :meth:`within_budget`.
    """

    name = "mbconv"
    vocab_size = N_OPS + 1  # token 0 = SOS/pad
    seq_len = N_LAYERS
    size = SPACE_SIZE

    def __init__(self, net: str = "search", width_mult: float = 1.0, resolution: int = PAPER_RESOLUTION,
                 n_classes: int = 1000, flops_budget: float | None = None) -> None:
        if net not in NETS:
            raise ValueError(f"unknown MBConv net {net!r}; choose one of {sorted(NETS)}")
        if not (float(width_mult) > 0 and int(resolution) >= 1 and int(n_classes) >= 1):
            raise ValueError(f"need width_mult > 0, resolution >= 1, n_classes >= 1; got {width_mult}, "
                             f"{resolution}, {n_classes}")
        self.net, self.width_mult = net, float(width_mult)
        self.resolution, self.n_classes = int(resolution), int(n_classes)
        base = NETS[net]
        self.widths = NetWidths(
            stem=make_divisible(base.stem * self.width_mult), first=make_divisible(base.first * self.width_mult),
            stages=tuple(make_divisible(w * self.width_mult) for w in base.stages),
            head=make_divisible(base.head * self.width_mult) if self.width_mult > 1.0 else base.head)
        self.layers = self._layer_shapes()
        self.fixed_flops, self.fixed_params = self._fixed_costs()
        self.flops_table, self.params_table = self._cost_tables()
        self._allowed = [self._allowed_at(pos) for pos in range(N_LAYERS)]
        self.min_flops = self.fixed_flops + int(sum(self.flops_table[p, a].min() for p, a in enumerate(self._allowed)))
        self.max_flops = self.fixed_flops + int(sum(self.flops_table[p, a].max() for p, a in enumerate(self._allowed)))
        self.flops_budget = None if flops_budget is None else int(flops_budget)
        if self.flops_budget is not None and self.flops_budget < self.min_flops:
            raise ValueError(f"flops_budget {self.flops_budget:,} is below the cheapest architecture "
                             f"({self.min_flops:,} multiply-adds at {self.resolution}x{self.resolution})")
        self._sampler: _BudgetSampler | None = None

    # -- network shape and cost tables --------------------------------------------------------------------
    @property
    def stem_size(self) -> int:
        """Spatial size after the stride-2 stem (and the stride-1 first block)."""
        return conv_out(self.resolution, 2)

    def _layer_shapes(self) -> tuple[LayerShape, ...]:
        shapes, cin, size = [], self.widths.first, self.stem_size
        for width, n_layers, stride in zip(self.widths.stages, STAGE_LAYERS, STAGE_STRIDES):
            for i in range(n_layers):
                s = stride if i == 0 else 1
                shapes.append(LayerShape(cin, width, s, size, conv_out(size, s)))
                cin, size = width, conv_out(size, s)
        return tuple(shapes)

    def _fixed_costs(self) -> tuple[int, int]:
        w, size = self.widths, self.stem_size
        macs = size * size * IN_CHANNELS * w.stem * 9
        params = IN_CHANNELS * w.stem * 9 + 2 * w.stem
        first = _mbconv_cost(w.stem, w.first, 3, 1, size, 1)
        last = self.layers[-1]
        head_macs = last.size_out**2 * last.cout * w.head
        head_params = last.cout * w.head + 2 * w.head
        classifier = w.head * self.n_classes
        return (macs + first[0] + head_macs + classifier,
                params + first[1] + head_params + classifier + self.n_classes)

    def _cost_tables(self) -> tuple[np.ndarray, np.ndarray]:
        flops = np.zeros((N_LAYERS, N_OPS + 1), dtype=np.int64)  # column 0 (pad) and SKIP stay 0
        params = np.zeros_like(flops)
        for pos, shape in enumerate(self.layers):
            for tok, (kernel, expansion) in MBCONV_OPS.items():
                flops[pos, tok], params[pos, tok] = _mbconv_cost(
                    shape.cin, shape.cout, kernel, expansion, shape.size_in, shape.stride)
        return flops, params

    def _allowed_at(self, position: int) -> tuple[int, ...]:
        return _MBCONV_TOKENS if position in STAGE_STARTS else _ALL_TOKENS

    # -- conversions --------------------------------------------------------------------------------------
    @staticmethod
    def coerce(arch: Any) -> MBConvArch:
        """An :class:`MBConvArch` from an arch, a layer string or 21 tokens; ``InvalidArchitecture`` otherwise."""
        if isinstance(arch, MBConvArch):
            return arch
        if isinstance(arch, str):
            return parse_arch(arch)
        if isinstance(arch, np.ndarray):
            arch = arch.reshape(-1).tolist() if np.issubdtype(arch.dtype, np.integer) else list(arch.reshape(-1))
        if isinstance(arch, (tuple, list)):
            return MBConvArch(tuple(arch))
        raise InvalidArchitecture(f"not an MBConv architecture: {arch!r}")

    def tokens_of(self, archs: Sequence[Any] | np.ndarray) -> np.ndarray:
        """``[n, 21]`` int64 tokens of ``archs`` (an int array of token rows is taken as it is, unchecked)."""
        if isinstance(archs, np.ndarray) and np.issubdtype(archs.dtype, np.integer):
            return archs.reshape(-1, N_LAYERS).astype(np.int64, copy=False)
        if len(archs) == 0:
            return np.zeros((0, N_LAYERS), dtype=np.int64)
        return np.asarray([self.coerce(a).tokens for a in archs], dtype=np.int64)

    # -- costs and budget -----------------------------------------------------------------------------------
    def cost(self, arch: Any) -> dict[str, float]:
        """Exact ``{"flops": multiply-adds, "params": trainable parameters}`` (see the module docstring)."""
        tokens = np.asarray(self.coerce(arch).tokens)
        rows = np.arange(N_LAYERS)
        return {"flops": self.fixed_flops + int(self.flops_table[rows, tokens].sum()),
                "params": self.fixed_params + int(self.params_table[rows, tokens].sum())}

    def cost_many(self, archs: Sequence[Any] | np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`cost` of many archs at once: ``{"flops": int64[n], "params": int64[n]}``."""
        tokens = self.tokens_of(archs)
        rows = np.arange(N_LAYERS)[None, :]
        return {"flops": self.fixed_flops + self.flops_table[rows, tokens].sum(axis=1),
                "params": self.fixed_params + self.params_table[rows, tokens].sum(axis=1)}

    def within_budget(self, arch: Any) -> bool:
        """True when ``arch``'s multiply-adds are at most ``flops_budget`` (always, without a budget)."""
        return self.flops_budget is None or self.cost(arch)["flops"] <= self.flops_budget

    def feasible(self, arch: Any) -> bool:
        """The search's constraint: :meth:`within_budget` (generation rejects over-budget decodes with it)."""
        return self.within_budget(arch)

    # -- sampling -------------------------------------------------------------------------------------------
    def sample_tokens(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``[n, 21]`` token rows drawn independently and uniformly from the valid archs within the budget."""
        n = int(n)
        if self.flops_budget is None:
            highs = np.asarray([len(a) for a in self._allowed])
            return rng.integers(0, highs, size=(n, N_LAYERS)).astype(np.int64) + 1
        if self._sampler is None:
            self._sampler = _BudgetSampler(self.flops_table, self._allowed, self.flops_budget - self.fixed_flops)
        kept, have = [], 0
        while have < n:
            rows = self._sampler.draw(rng, max(n - have, 64))
            rows = rows[self.cost_many(rows)["flops"] <= self.flops_budget]
            kept.append(rows)
            have += len(rows)
        return np.concatenate(kept)[:n]

    def sample(self, rng: np.random.Generator, n: int, max_rounds: int = 20) -> list[MBConvArch]:
        """``n`` distinct archs, uniform over the valid ones within the budget (with repeats only when the
        feasible set is smaller than ``n``, i.e. after ``max_rounds`` rounds that found too few new ones)."""
        n, seen, out = int(n), set(), []
        for _ in range(max_rounds):
            for row in self.sample_tokens(rng, max(n - len(out), 1)):
                key = tuple(row.tolist())
                if key not in seen:
                    seen.add(key)
                    out.append(MBConvArch(key))
            if len(out) >= n:
                return out[:n]
        return out + [MBConvArch(tuple(r.tolist())) for r in self.sample_tokens(rng, n - len(out))]

    def mutate(self, arch: Any, rng: np.random.Generator) -> MBConvArch:
        """A uniformly chosen single-layer change (another allowed token) that keeps the arch within the budget."""
        tokens = np.asarray(self.coerce(arch).tokens, dtype=np.int64)
        flops = self.cost(arch)["flops"]
        moves = [(pos, tok) for pos, allowed in enumerate(self._allowed) for tok in allowed if tok != tokens[pos]]
        pos, tok = np.asarray(moves).T
        new_flops = flops - self.flops_table[pos, tokens[pos]] + self.flops_table[pos, tok]
        ok = np.flatnonzero(new_flops <= self.flops_budget) if self.flops_budget is not None else np.arange(len(pos))
        if ok.size == 0:
            raise ValueError(f"no single-layer change of {format_arch(self.coerce(arch))} fits the flops budget "
                             f"{self.flops_budget:,}")
        pick = int(ok[rng.integers(ok.size)])
        tokens[pos[pick]] = tok[pick]
        return MBConvArch(tuple(tokens.tolist()))

    # -- encoding -------------------------------------------------------------------------------------------
    def encode(self, arch: Any) -> np.ndarray:
        """The 21 op tokens (int64)."""
        return np.asarray(self.coerce(arch).tokens, dtype=np.int64)

    def decode(self, tokens: Sequence[int] | np.ndarray) -> MBConvArch | None:
        """Inverse of :meth:`encode`; ``None`` for a wrong length, a token outside 1..7 or a skipped stage start."""
        toks = np.asarray(tokens).reshape(-1)
        if toks.shape[0] != N_LAYERS or not np.issubdtype(toks.dtype, np.integer):
            return None
        try:
            return MBConvArch(tuple(int(t) for t in toks))
        except InvalidArchitecture:
            return None

    # -- validity and identity --------------------------------------------------------------------------
    def is_valid(self, arch: Any) -> bool:
        """True for any well-formed arch (21 tokens in 1..7, no skip at a stage start); ignores the budget."""
        try:
            self.coerce(arch)
        except InvalidArchitecture:
            return False
        return True

    def key(self, arch: Any) -> str:
        """The authors' layer string (unique per token sequence)."""
        return format_arch(self.coerce(arch))

    def allowed_tokens(self, position: int) -> tuple[int, ...]:
        """MBConv tokens 1..6 at a stage start, 1..7 elsewhere."""
        if not 0 <= position < self.seq_len:
            raise IndexError(f"position {position} outside 0..{self.seq_len - 1}")
        return self._allowed[position]

    # -- (de)serialisation and reporting ------------------------------------------------------------------
    def to_config(self, arch: Any) -> dict[str, Any]:
        """``{"arch": "<layer string>"}``."""
        return {"arch": self.key(arch)}

    def from_config(self, config: dict[str, Any]) -> MBConvArch:
        """Inverse of :meth:`to_config`."""
        if not isinstance(config, dict) or "arch" not in config:
            raise InvalidArchitecture(f"MBConv config needs an 'arch' entry, got {config!r}")
        return parse_arch(config["arch"])

    def describe(self, arch: Any) -> str:
        """Op names, e.g. ``"k7e6 k7e3 k3e3 skip ..."``."""
        return " ".join(OP_NAMES[t] for t in self.coerce(arch).tokens)

    def settings(self) -> dict[str, Any]:
        """The constructor arguments (to rebuild the same space, e.g. in a trial process)."""
        return {"net": self.net, "width_mult": self.width_mult, "resolution": self.resolution,
                "n_classes": self.n_classes, "flops_budget": self.flops_budget}
