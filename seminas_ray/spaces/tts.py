"""The SemiNAS TTS search space: 6 encoder + 6 decoder layers of a Transformer-TTS-style model, 11 ops per layer.

Op tokens (the authors' ``operations.py``: ``OPERATIONS_ENCODER`` / ``OPERATIONS_DECODER``):

====== ============ =========================================================================================
token  name         layer
====== ============ =========================================================================================
1..7   conv1..25    convolution with kernel 1, 5, 9, 13, 17, 21, 25 (encoder: weight-normed, 'same' padding;
                    decoder: causal, followed by 1-head encoder-decoder attention)
8..10  SA2/SA4/SA8  pre-LN Transformer layer with 2 / 4 / 8 heads (decoder: causal self-attention plus
                    encoder-decoder attention with the same number of heads)
11     LSTM         encoder: bidirectional LSTM + projection; decoder: unidirectional LSTM + 1-head enc-dec attention
====== ============ =========================================================================================

An architecture is a :class:`TTSArch`; its key is the authors' layer string ``"10 10 4 3 6 3 | 9 2 4 2 11 6"``
(encoder tokens, a bar, decoder tokens). The controller sequence is the 12 tokens themselves (encoder first), so
token ``t`` means op ``t`` at every position; token 0 is SOS/pad. Every one of the 11^12 sequences is valid:
there is no canonicalisation, and the key is unique per sequence.

This module is framework-free (numpy only). :func:`op_param_count` mirrors the layer classes in
``seminas_ray.tasks.tts.model`` exactly (a test checks it), so :meth:`TTSSpace.cost` can report parameter
counts without building a model.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from typing import Sequence

import numpy as np

from seminas_ray.spaces.base import InvalidArchitecture
from seminas_ray.spaces.base import SearchSpace

N_ENCODER_LAYERS = 6
N_DECODER_LAYERS = 6
N_LAYERS = N_ENCODER_LAYERS + N_DECODER_LAYERS
N_OPS = 11
SPACE_SIZE = N_OPS**N_LAYERS  # 3,138,428,376,721

#: Display name per token (index 0 = SOS/pad, never an op).
OP_NAMES: tuple[str, ...] = (
    "<sos>", "conv1", "conv5", "conv9", "conv13", "conv17", "conv21", "conv25", "SA2", "SA4", "SA8", "LSTM",
)
#: Convolution kernel per conv token (1..7).
CONV_KERNELS: dict[int, int] = {1: 1, 2: 5, 3: 9, 4: 13, 5: 17, 6: 21, 7: 25}
#: Number of attention heads per self-attention token (8..10).
SA_HEADS: dict[int, int] = {8: 2, 9: 4, 10: 8}
LSTM_TOKEN = 11
OP_TOKENS: tuple[int, ...] = tuple(range(1, N_OPS + 1))
_NAME_TO_TOKEN = {name.lower(): tok for tok, name in enumerate(OP_NAMES) if tok > 0}


def op_kind(token: int) -> str:
    """``"conv"``, ``"sa"`` or ``"lstm"`` for an op token; ``InvalidArchitecture`` for anything else."""
    token = int(token)
    if token in CONV_KERNELS:
        return "conv"
    if token in SA_HEADS:
        return "sa"
    if token == LSTM_TOKEN:
        return "lstm"
    raise InvalidArchitecture(f"TTS op token must be in 1..{N_OPS}, got {token!r}")


def _check_tokens(tokens: Sequence[Any], n: int, part: str) -> tuple[int, ...]:
    out = []
    if len(tokens) != n:
        raise InvalidArchitecture(f"a TTS {part} has {n} layers, got {len(tokens)}: {tuple(tokens)!r}")
    for i, t in enumerate(tokens):
        # bool is an int subclass; refuse it (and floats such as 3.5) so garbage never becomes an arch silently
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise InvalidArchitecture(f"TTS {part} layer {i}: op token must be an int, got {t!r}")
        if not 1 <= int(t) <= N_OPS:
            raise InvalidArchitecture(f"TTS {part} layer {i}: op token must be in 1..{N_OPS}, got {int(t)}")
        out.append(int(t))
    return tuple(out)


@dataclass(frozen=True)
class TTSArch:
    """One TTS architecture: op token (1..11) per encoder layer and per decoder layer.

    Construction validates, so a ``TTSArch`` is always a member of the space.
    """

    encoder: tuple[int, ...]
    decoder: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoder", _check_tokens(tuple(self.encoder), N_ENCODER_LAYERS, "encoder"))
        object.__setattr__(self, "decoder", _check_tokens(tuple(self.decoder), N_DECODER_LAYERS, "decoder"))

    @classmethod
    def from_tokens(cls, tokens: Sequence[int]) -> "TTSArch":
        """From the 12 tokens (encoder first)."""
        tokens = tuple(tokens)
        if len(tokens) != N_LAYERS:
            raise InvalidArchitecture(f"a TTS arch has {N_LAYERS} layer tokens, got {len(tokens)}: {tokens!r}")
        return cls(tokens[:N_ENCODER_LAYERS], tokens[N_ENCODER_LAYERS:])

    @property
    def tokens(self) -> tuple[int, ...]:
        """The 12 op tokens, encoder first (the controller sequence)."""
        return self.encoder + self.decoder

    def __str__(self) -> str:
        return format_arch(self)


def format_arch(arch: TTSArch) -> str:
    """The authors' layer string, e.g. ``"10 10 4 3 6 3 | 9 2 4 2 11 6"``."""
    return " ".join(map(str, arch.encoder)) + " | " + " ".join(map(str, arch.decoder))


def parse_arch(text: str) -> TTSArch:
    """Parse a layer string: 12 integers, optionally split 6 | 6 by a bar (``"8 6 3 2 11 7 | 9 1 4 11 6 2"``)."""
    if not isinstance(text, str):
        raise InvalidArchitecture(f"a TTS layer string must be a str, got {type(text).__name__}")
    parts = text.split("|")
    if len(parts) > 2:
        raise InvalidArchitecture(f"TTS layer string {text!r}: at most one '|' between encoder and decoder")
    groups = []
    for part in parts:
        words = part.replace(",", " ").split()
        for w in words:
            if not re.fullmatch(r"\d+", w):
                raise InvalidArchitecture(f"TTS layer string {text!r}: {w!r} is not an op token")
        groups.append([int(w) for w in words])
    if len(groups) == 2:
        if len(groups[0]) != N_ENCODER_LAYERS or len(groups[1]) != N_DECODER_LAYERS:
            raise InvalidArchitecture(
                f"TTS layer string {text!r}: expected {N_ENCODER_LAYERS} encoder | {N_DECODER_LAYERS} decoder tokens, "
                f"got {len(groups[0])} | {len(groups[1])}"
            )
        return TTSArch(tuple(groups[0]), tuple(groups[1]))
    return TTSArch.from_tokens(groups[0])


#: The architecture SemiNAS found in the low-resource setting (spec §5):
#: enc SA8 SA8 conv13 conv9 conv21 conv9 | dec SA4 conv5 conv13 conv5 LSTM conv21.
LOW_RESOURCE_ARCH = parse_arch("10 10 4 3 6 3 | 9 2 4 2 11 6")
#: The architecture SemiNAS found in the robustness setting (spec §5).
ROBUSTNESS_ARCH = parse_arch("8 6 3 2 11 7 | 9 1 4 11 6 2")
#: Transformer-TTS baseline: self-attention in every layer. The paper does not say which head count the baseline
#: used; 4 heads (token 9) gives a head size of 64 at the final hidden size 256, the usual Transformer head size,
#: and is the middle of the three SA options (it is also what the found low-resource decoder uses first).
TRANSFORMER_TTS_ARCH = parse_arch("9 9 9 9 9 9 | 9 9 9 9 9 9")
PAPER_ARCHS: dict[str, TTSArch] = {
    "seminas_low_resource": LOW_RESOURCE_ARCH,
    "seminas_robustness": ROBUSTNESS_ARCH,
    "transformer_tts": TRANSFORMER_TTS_ARCH,
}


# -- parameter counts (mirror seminas_ray.tasks.tts.model exactly) ----------------------------------------------
def _ln(c: int) -> int:
    return 2 * c


def _mha(c: int) -> int:
    return 4 * c * c + 4 * c  # q, k, v, out projections with bias


def _ffn(c: int, kernel: int) -> int:
    return (c * 4 * c * kernel + 4 * c) + (4 * c * c + c)  # conv c->4c (kernel), linear 4c->c


def _glu_conv(c: int, kernel: int) -> int:
    return 2 * c * c * kernel + 2 * c + 2 * c  # weight-normed conv c->2c: v, bias, g


def _lstm(c: int) -> int:
    return 4 * c * c * 2 + 8 * c  # one direction: W_ih, W_hh, b_ih, b_hh


def op_param_count(token: int, position: str, hidden: int, ffn_kernel: int = 9) -> int:
    """Trainable parameters of op ``token`` as an ``"encoder"`` or ``"decoder"`` layer of width ``hidden``.

    Head count does not change the parameter count (SA2/SA4/SA8 are equal); decoder ops include their
    encoder-decoder attention.
    """
    if position not in ("encoder", "decoder"):
        raise ValueError(f"position must be 'encoder' or 'decoder', got {position!r}")
    c = int(hidden)
    kind = op_kind(token)
    dec = position == "decoder"
    if kind == "conv":
        n = _ln(c) + _glu_conv(c, CONV_KERNELS[int(token)])
        return n + (_ln(c) + _mha(c) if dec else 0)
    if kind == "sa":
        n = _ln(c) + _mha(c) + _ln(c) + _ffn(c, ffn_kernel)
        return n + (_ln(c) + _mha(c) if dec else 0)
    if dec:  # unidirectional LSTM + 1-head enc-dec attention
        return _ln(c) + _lstm(c) + _ln(c) + _mha(c)
    return _ln(c) + 2 * _lstm(c) + (2 * c * c + c)  # bidirectional LSTM + projection 2c->c


class TTSSpace(SearchSpace[TTSArch]):
    """The 11^12 TTS layer space as a :class:`SearchSpace`.

    ``hidden`` and ``ffn_kernel`` only matter for :meth:`cost` (parameter counts of the 12 searched layers at that
    width; default the paper's final width 256). Methods that take an architecture also accept its layer string,
    its 12 tokens, or an ``(encoder, decoder)`` pair (see :meth:`coerce`).
    """

    name = "tts"
    vocab_size = N_OPS + 1  # token 0 = SOS/pad
    seq_len = N_LAYERS
    size = SPACE_SIZE

    def __init__(self, hidden: int = 256, ffn_kernel: int = 9) -> None:
        self.hidden = int(hidden)
        self.ffn_kernel = int(ffn_kernel)

    # -- conversions --------------------------------------------------------------------------------------
    @staticmethod
    def coerce(arch: Any) -> TTSArch:
        """A :class:`TTSArch` from an arch, a layer string, 12 tokens or an ``(encoder, decoder)`` pair."""
        if isinstance(arch, TTSArch):
            return arch
        if isinstance(arch, str):
            return parse_arch(arch)
        if isinstance(arch, np.ndarray):
            arch = arch.reshape(-1).tolist()
        if isinstance(arch, (tuple, list)):
            if len(arch) == 2 and all(isinstance(p, (tuple, list)) for p in arch):
                return TTSArch(tuple(arch[0]), tuple(arch[1]))
            return TTSArch.from_tokens(tuple(arch))
        raise InvalidArchitecture(f"not a TTS architecture: {arch!r}")

    def parse(self, text: str) -> TTSArch:
        """Parse a layer string (see :func:`parse_arch`)."""
        return parse_arch(text)

    def format(self, arch: Any) -> str:
        """The layer string of ``arch``."""
        return format_arch(self.coerce(arch))

    # -- sampling -------------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, n: int) -> list[TTSArch]:
        """``n`` archs, each layer's op drawn uniformly and independently (uniform over the space)."""
        draws = rng.integers(1, N_OPS + 1, size=(int(n), N_LAYERS))
        return [TTSArch.from_tokens(tuple(int(t) for t in row)) for row in draws]

    def mutate(self, arch: Any, rng: np.random.Generator) -> TTSArch:
        """Change the op of one uniformly chosen layer to a different op (so the key always changes)."""
        tokens = list(self.coerce(arch).tokens)
        pos = int(rng.integers(N_LAYERS))
        new = int(rng.integers(1, N_OPS))  # 1..10, then skip the current token
        tokens[pos] = new if new < tokens[pos] else new + 1
        return TTSArch.from_tokens(tuple(tokens))

    # -- encoding -------------------------------------------------------------------------------------------
    def encode(self, arch: Any) -> np.ndarray:
        """The 12 op tokens, encoder first (int64)."""
        return np.asarray(self.coerce(arch).tokens, dtype=np.int64)

    def decode(self, tokens: Sequence[int] | np.ndarray) -> TTSArch | None:
        """Inverse of :meth:`encode`; ``None`` for a wrong length or a token outside 1..11."""
        toks = np.asarray(tokens).reshape(-1)
        if toks.shape[0] != N_LAYERS or not np.issubdtype(toks.dtype, np.integer):
            return None
        if toks.min() < 1 or toks.max() > N_OPS:
            return None
        return TTSArch.from_tokens(tuple(int(t) for t in toks))

    # -- validity and identity --------------------------------------------------------------------------
    def is_valid(self, arch: Any) -> bool:
        """True for any well-formed arch: every token sequence over 1..11 is in the space."""
        try:
            self.coerce(arch)
        except InvalidArchitecture:
            return False
        return True

    def key(self, arch: Any) -> str:
        """The authors' layer string (unique per token sequence)."""
        return format_arch(self.coerce(arch))

    def allowed_tokens(self, position: int) -> tuple[int, ...]:
        """Every op token (1..11) at every position."""
        if not 0 <= position < self.seq_len:
            raise IndexError(f"position {position} outside 0..{self.seq_len - 1}")
        return OP_TOKENS

    # -- (de)serialisation ------------------------------------------------------------------------------
    def to_config(self, arch: Any) -> dict[str, Any]:
        """``{"arch": "<layer string>"}``."""
        return {"arch": self.key(arch)}

    def from_config(self, config: dict[str, Any]) -> TTSArch:
        """Inverse of :meth:`to_config`."""
        if not isinstance(config, dict) or "arch" not in config:
            raise InvalidArchitecture(f"TTS config needs an 'arch' entry, got {config!r}")
        return parse_arch(config["arch"])

    # -- reporting ----------------------------------------------------------------------------------------
    def cost(self, arch: Any) -> dict[str, float]:
        """Parameters of the 12 searched layers at ``self.hidden`` (embedding, prenet and heads excluded)."""
        a = self.coerce(arch)
        enc = sum(op_param_count(t, "encoder", self.hidden, self.ffn_kernel) for t in a.encoder)
        dec = sum(op_param_count(t, "decoder", self.hidden, self.ffn_kernel) for t in a.decoder)
        return {"params_layers": float(enc + dec), "params_encoder": float(enc), "params_decoder": float(dec)}

    def describe(self, arch: Any) -> str:
        """Op names, e.g. ``"enc: SA8 SA8 conv13 conv9 conv21 conv9 | dec: SA4 conv5 conv13 conv5 LSTM conv21"``."""
        a = self.coerce(arch)
        enc = " ".join(OP_NAMES[t] for t in a.encoder)
        dec = " ".join(OP_NAMES[t] for t in a.decoder)
        return f"enc: {enc} | dec: {dec}"


def token_from_name(name: str) -> int:
    """Op token for a display name such as ``"conv13"``, ``"SA4"`` or ``"lstm"`` (case-insensitive)."""
    tok = _NAME_TO_TOKEN.get(str(name).strip().lower())
    if tok is None:
        raise InvalidArchitecture(f"unknown TTS op name {name!r} (known: {', '.join(OP_NAMES[1:])})")
    return tok
