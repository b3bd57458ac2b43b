"""Transformer-TTS-style autoregressive mel model with searchable layers: the weight-sharing supernet and the
standalone child model (SemiNAS §5; the authors' ``tts/model_ws.py`` and ``operations.py``).

Layout (batch-first tensors, ``[B, T, C]``):

* **Encoder**: character embedding + scaled sinusoidal positions (learned scale, as in Transformer-TTS), then
  6 searchable layers, then a final LayerNorm.
* **Decoder**: the previous mel frame goes through a 3-layer prenet ``n_mels -> 32 -> 32 -> hidden`` (ReLU and
  dropout 0.5 after the first two, as in Tacotron; by default the dropout stays on at inference too, because
  Tacotron found it the main source of variation that keeps free-running decoding from getting stuck: set
  ``prenet_dropout_at_inference=False`` to turn that off), + positions, then 6 searchable layers, a final
  LayerNorm, and linear projections to ``r`` mel frames and ``r`` stop logits per decoder step (reduction factor
  ``r``: one decoder step predicts ``r`` frames and is fed the last of the previous ``r``). An optional conv
  postnet adds a residual to the whole predicted mel.
* **Ops** (pre-LN residual blocks; token numbers in :mod:`seminas_ray.spaces.tts`):
  conv (tokens 1-7): weight-normed conv ``c -> 2c`` + GLU, 'same' padding in the encoder, causal in the decoder;
  SA (8-10): multi-head self-attention (causal in the decoder) + FFN (conv ``c -> 4c`` with kernel
  ``ffn_kernel``, the authors' 9 by default, ReLU, linear ``4c -> c``); LSTM (11): bidirectional + projection in
  the encoder, unidirectional in the decoder.
  **Every decoder op ends with encoder-decoder attention** and returns its weights: 1 head for conv and LSTM
  (as the authors' ``DecConvLayer`` / ``DecLSTMLayer``), the op's own head count for SA.

One class, :class:`TTSNet`, holds a set of candidate ops per layer in a ``ModuleDict`` keyed by op name
(``encoder.2.ops.conv13.…``). The :class:`Supernet` holds all 11 per layer and runs one path per call
(single-path weight sharing); a :class:`ChildModel` holds only its arch's ops. The parameter names therefore
match, and a child is initialised from the supernet by copying the matching entries
(:meth:`ChildModel.from_supernet`).

Departures from the authors' code (on purpose): the decoder conv uses GLU like the encoder conv (theirs uses
ReLU), and its second residual adds to the conv output (theirs adds the attention output to the block's *input*,
so the conv result only reached the output through the attention query); the decoder LSTM starts from zeros
(theirs from the mean encoder state); free-running inference recomputes the decoder over the prefix at every step
instead of keeping incremental state (simpler, exact, and fast enough at these sizes).
"""
from __future__ import annotations

import math
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import fields
from dataclasses import replace
from typing import Any
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from seminas_ray.spaces.tts import CONV_KERNELS
from seminas_ray.spaces.tts import N_OPS
from seminas_ray.spaces.tts import OP_NAMES
from seminas_ray.spaces.tts import OP_TOKENS
from seminas_ray.spaces.tts import SA_HEADS
from seminas_ray.spaces.tts import TTSArch
from seminas_ray.spaces.tts import TTSSpace
from seminas_ray.spaces.tts import op_kind


#: The two model families over the same 11-op layer space (see ``backbones.py``).
BACKBONES = ("transformer-tts", "fastspeech")


# ----------------------------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TTSModelConfig:
    """Model size and the training settings that belong to it (loss weights, optimiser, schedule).

    ``lr_scale``/``warmup_steps`` feed the paper's schedule ``lr_scale * min(step/warmup, 1) *
    max(step, warmup)^-0.5 * hidden^-0.5`` (the paper: 2.0 and 4000 over 80k updates; the CPU presets shorten the
    warm-up because a search candidate gets only a few thousand steps).
    """

    hidden: int = 96
    n_mels: int = 80
    r: int = 3  # reduction factor: mel frames per decoder step
    vocab_size: int = 64  # characters incl. pad 0 (set it from the text frontend's vocab_size)
    dropout: float = 0.1
    attn_dropout: float = 0.0
    ffn_kernel: int = 9  # SA layers' FFN conv kernel (the authors' 9)
    prenet_hidden: int = 32
    prenet_dropout: float = 0.5
    prenet_dropout_at_inference: bool = True
    postnet_layers: int = 3  # 0 = no postnet
    postnet_channels: int = 128
    postnet_kernel: int = 5
    max_positions: int = 4096  # positional table length (encoder chars and decoder steps)
    # -- training --
    mel_loss: str = "l1"  # "l1" or "mse" (the paper: MSE)
    stop_pos_weight: float = 5.0
    guided_attn_weight: float = 20.0  # 0 disables it (the paper has no guided attention)
    guided_attn_sigma: float = 0.2
    lr_scale: float = 2.0
    warmup_steps: int = 4000
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    # -- backbone --
    backbone: str = "transformer-tts"  # "transformer-tts" (model.py, the paper's) or "fastspeech" (duration_model.py)
    duration_weight: float = 1.0  # fastspeech: weight of the log-duration MSE

    def __post_init__(self) -> None:
        if self.hidden % 8:
            raise ValueError(f"hidden must be a multiple of 8 (SA8 needs 8 heads), got {self.hidden}")
        if self.r < 1:
            raise ValueError(f"reduction factor r must be >= 1, got {self.r}")
        if self.mel_loss not in ("l1", "mse"):
            raise ValueError(f"mel_loss must be 'l1' or 'mse', got {self.mel_loss!r}")
        if self.postnet_layers == 1 or self.postnet_layers < 0:
            raise ValueError(f"postnet_layers must be 0 or >= 2, got {self.postnet_layers}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        if self.ffn_kernel < 1 or self.ffn_kernel % 2 == 0:
            raise ValueError(f"ffn_kernel must be odd and >= 1, got {self.ffn_kernel}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TTSModelConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TTSModelConfig keys: {unknown}")
        return cls(**data)


#: Size presets (measured in benchmarks/tts_model_speed.py; CPU ms per step at 1 thread, batch 16, ~258 frames):
#:
#: * ``smoke``: CI-sized (hidden 32).
#: * ``default``: the CPU search supernet, for 2 candidates/replicas in parallel at 1 thread each: hidden 64, FFN
#:   kernel 1 (the paper's 9 costs +70 % on SA-heavy paths), no layer dropout (bernoulli sampling is ~20 % of a CPU
#:   step, and a few thousand steps on ~1,000 utterances do not overfit at this width; the prenet keeps its 0.5),
#:   no postnet (DFR does not depend on it). ~250-450 ms per step depending on the arch.
#: * ``final_cpu``: CPU final training of the best arch and the baseline (hidden 128, dropout 0.1, postnet).
#: * ``paper_search`` / ``paper_final``: the paper's widths (64 during search, 256 for final training), FFN kernel 9,
#:   MSE loss, no guided attention, and the paper's schedule (scale 2, 4000 warm-up steps) — for GPUs.
#: * ``fs_*``: the same roles for the duration-based backbone (``duration_model.py``; ``r`` = 1, no stop token or
#:   attention). ``fs_final``: width 128, 5-layer 256-channel postnet, peak rate ~1e-3 after 500 steps; its word
#:   accuracy vs training steps is measured by benchmarks/tts_routes.py (docs/tts.md).
#:
#: Learning rates: peak ``lr_scale * warmup^-0.5 * hidden^-0.5`` is 2.2e-3 (default), 3.5e-3 (smoke),
#: 1.4e-3 (final_cpu), 3.9e-3 / 2e-3 (paper search / final).
PRESETS: dict[str, TTSModelConfig] = {
    "smoke": TTSModelConfig(hidden=32, ffn_kernel=1, dropout=0.0, prenet_hidden=32, postnet_layers=0,
                            postnet_channels=32, lr_scale=0.2, warmup_steps=100),
    "default": TTSModelConfig(hidden=64, ffn_kernel=1, dropout=0.0, postnet_layers=0, lr_scale=0.3,
                              warmup_steps=300),
    "final_cpu": TTSModelConfig(hidden=128, ffn_kernel=1, dropout=0.1, postnet_layers=3, postnet_channels=128,
                                lr_scale=0.5, warmup_steps=1000),
    "paper_search": TTSModelConfig(hidden=64, ffn_kernel=9, postnet_layers=0, mel_loss="mse",
                                   guided_attn_weight=0.0, lr_scale=2.0, warmup_steps=4000),
    "paper_final": TTSModelConfig(hidden=256, ffn_kernel=9, postnet_layers=3, postnet_channels=256, mel_loss="mse",
                                  guided_attn_weight=0.0, lr_scale=2.0, warmup_steps=4000),
    # the duration-based backbone (duration_model.py): r = 1 (no decoder steps), L1 loss, no stop token or attention
    "fs_smoke": TTSModelConfig(backbone="fastspeech", hidden=32, r=1, ffn_kernel=1, dropout=0.0, postnet_layers=0,
                               postnet_channels=32, lr_scale=0.2, warmup_steps=100, guided_attn_weight=0.0),
    "fs_search": TTSModelConfig(backbone="fastspeech", hidden=64, r=1, ffn_kernel=1, dropout=0.0, postnet_layers=0,
                                lr_scale=0.28, warmup_steps=300, guided_attn_weight=0.0),
    "fs_final": TTSModelConfig(backbone="fastspeech", hidden=128, r=1, ffn_kernel=1, dropout=0.1, postnet_layers=5,
                               postnet_channels=256, lr_scale=0.25, warmup_steps=500, guided_attn_weight=0.0),
    "fs_paper_search": TTSModelConfig(backbone="fastspeech", hidden=64, r=1, ffn_kernel=9, postnet_layers=0,
                                      guided_attn_weight=0.0, lr_scale=2.0, warmup_steps=4000),
    "fs_paper_final": TTSModelConfig(backbone="fastspeech", hidden=256, r=1, ffn_kernel=9, postnet_layers=5,
                                     postnet_channels=256, guided_attn_weight=0.0, lr_scale=2.0, warmup_steps=4000),
}


def preset(name: str, **overrides: Any) -> TTSModelConfig:
    """A preset from :data:`PRESETS` with fields replaced by ``overrides`` (e.g. ``vocab_size=...``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown TTS model preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


# ----------------------------------------------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------------------------------------------
def op_key(token: int) -> str:
    """Module name of op ``token`` inside a layer (``"conv13"``, ``"sa4"``, ``"lstm"``)."""
    op_kind(token)  # validates
    return OP_NAMES[int(token)].lower()


def sinusoid_table(n_positions: int, dim: int) -> torch.Tensor:
    """The Transformer's sinusoidal position table ``[n_positions, dim]``."""
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n_positions, dim)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)
    return table


def _conv_pad(x: torch.Tensor, kernel: int, causal: bool) -> torch.Tensor:
    """Pad ``[B, C, T]`` in time so a valid conv keeps length T: all on the left when causal, else centred."""
    if kernel == 1:
        return x
    if causal:
        return F.pad(x, (kernel - 1, 0))
    return F.pad(x, ((kernel - 1) // 2, kernel // 2))


class MultiheadAttention(nn.Module):
    """Multi-head attention with an optional per-head weight output (needed for the alignment losses/metrics).

    Without weights it uses ``scaled_dot_product_attention`` (faster on CPU and GPU); with weights the same
    arithmetic is written out.
    """

    def __init__(self, c: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if c % heads:
            raise ValueError(f"hidden {c} is not divisible by {heads} heads")
        self.heads = heads
        self.dropout = dropout
        self.q_proj = nn.Linear(c, c)
        self.kv_proj = nn.Linear(c, 2 * c)
        self.out_proj = nn.Linear(c, c)

    def forward(
        self,
        query: torch.Tensor,
        memory: torch.Tensor,
        key_padding: torch.Tensor | None = None,
        causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``query [B,S,C]`` attends over ``memory [B,L,C]``; ``key_padding [B,L]`` is True at padding.

        Returns the output ``[B,S,C]`` and, when ``need_weights``, the weights ``[B,H,S,L]``.
        """
        b, s, c = query.shape
        n_keys = memory.shape[1]
        h, dh = self.heads, c // self.heads
        q = self.q_proj(query).view(b, s, h, dh).transpose(1, 2)
        k, v = self.kv_proj(memory).view(b, n_keys, 2, h, dh).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        # additive float masks: on CPU a broadcast masked_fill over [B,H,S,L] costs ~5x an add
        bias = None
        if key_padding is not None:
            bias = torch.zeros(b, 1, 1, n_keys, dtype=q.dtype, device=q.device).masked_fill_(
                key_padding[:, None, None, :], float("-inf"))
        if causal and (bias is not None or need_weights):
            tri = torch.full((s, n_keys), float("-inf"), dtype=q.dtype, device=q.device).triu_(1)
            bias = tri if bias is None else bias + tri
        if not need_weights:
            # plain causal self-attention takes the fused is_causal path
            fused_causal = causal and bias is None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p, is_causal=fused_causal)
            weights = None
        else:
            scores = (q * dh**-0.5) @ k.transpose(-1, -2)  # scale the small side
            if bias is not None:
                scores = scores + bias
            weights = scores.softmax(-1)
            out = (F.dropout(weights, p, True) if p > 0 else weights) @ v
        out = out.transpose(1, 2).reshape(b, s, c)
        return self.out_proj(out), weights


class FFN(nn.Module):
    """Transformer FFN whose first layer is a conv (kernel ``k``; 'same' or causal), as the authors' layers."""

    def __init__(self, c: int, kernel: int, causal: bool, dropout: float) -> None:
        super().__init__()
        self.kernel, self.causal, self.dropout = kernel, causal, dropout
        self.conv = nn.Conv1d(c, 4 * c, kernel)
        self.out = nn.Linear(4 * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(_conv_pad(x.transpose(1, 2), self.kernel, self.causal)).transpose(1, 2)
        h = F.dropout(F.relu(h), self.dropout, self.training)
        return self.out(h)


class GLUConv(nn.Module):
    """Weight-normed conv ``c -> 2c`` + GLU (ConvS2S / DeepVoice3 style), 'same' or causal padding."""

    def __init__(self, c: int, kernel: int, causal: bool) -> None:
        super().__init__()
        self.kernel, self.causal = kernel, causal
        self.conv = weight_norm(nn.Conv1d(c, 2 * c, kernel), dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(_conv_pad(x.transpose(1, 2), self.kernel, self.causal))
        return F.glu(h, dim=1).transpose(1, 2)


class CrossAttention(nn.Module):
    """Pre-LN encoder-decoder attention block with residual; returns the weights ``[B,H,S,L]``."""

    def __init__(self, c: int, heads: int, cfg: TTSModelConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.attn = MultiheadAttention(c, heads, cfg.attn_dropout)
        self.dropout = cfg.dropout

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, memory_padding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = self.attn(self.norm(x), memory, memory_padding, need_weights=True)
        return x + F.dropout(h, self.dropout, self.training), w


def _zero_pad(x: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
    return x if padding is None else x.masked_fill(padding[..., None], 0.0)


# -- encoder ops: forward(x [B,L,C], padding [B,L] bool) -> [B,L,C] with padded positions zero ----------------
class EncConv(nn.Module):
    """Encoder conv op (tokens 1-7): pre-LN, weight-normed GLU conv, 'same' padding, residual."""

    def __init__(self, c: int, kernel: int, cfg: TTSModelConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.conv = GLUConv(c, kernel, causal=False)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        # re-zero after the LayerNorm: its bias would otherwise leak from padding into real positions via the conv
        h = self.conv(_zero_pad(self.norm(x), padding))
        return _zero_pad(x + F.dropout(h, self.dropout, self.training), padding)


class EncSA(nn.Module):
    """Encoder self-attention op (tokens 8-10): pre-LN MHA + FFN (conv kernel ``ffn_kernel``), residuals."""

    def __init__(self, c: int, heads: int, cfg: TTSModelConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(c)
        self.attn = MultiheadAttention(c, heads, cfg.attn_dropout)
        self.norm2 = nn.LayerNorm(c)
        self.ffn = FFN(c, cfg.ffn_kernel, causal=False, dropout=cfg.dropout)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        h = self.norm1(x)
        h, _ = self.attn(h, h, padding)
        x = _zero_pad(x + F.dropout(h, self.dropout, self.training), padding)
        h = self.ffn(_zero_pad(self.norm2(x), padding))
        return _zero_pad(x + F.dropout(h, self.dropout, self.training), padding)


class EncLSTM(nn.Module):
    """Encoder LSTM op (token 11): pre-LN bidirectional LSTM (packed, so padding never enters) + projection."""

    def __init__(self, c: int, cfg: TTSModelConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.lstm = nn.LSTM(c, c, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * c, c)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        h = self.norm(x)
        if padding is None:
            h, _ = self.lstm(h)
        else:
            lens = (~padding).sum(1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(h, lens, batch_first=True, enforce_sorted=False)
            h, _ = self.lstm(packed)
            h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        h = self.proj(h)
        return _zero_pad(x + F.dropout(h, self.dropout, self.training), padding)


# -- decoder ops: forward(x [B,S,C], memory [B,L,C], memory_padding [B,L]) -> (x, weights [B,H,S,L]) ----------
# All are causal in time: output step s depends on input steps <= s only (tests check it for every op).
class DecConv(nn.Module):
    """Decoder conv op (tokens 1-7): pre-LN causal weight-normed GLU conv, then 1-head enc-dec attention."""

    def __init__(self, c: int, kernel: int, cfg: TTSModelConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.conv = GLUConv(c, kernel, causal=True)
        self.cross = CrossAttention(c, 1, cfg)
        self.dropout = cfg.dropout

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, memory_padding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = x + F.dropout(self.conv(self.norm(x)), self.dropout, self.training)
        return self.cross(x, memory, memory_padding)


class DecSA(nn.Module):
    """Decoder SA op (tokens 8-10): causal self-attention, enc-dec attention (same heads), causal FFN."""

    def __init__(self, c: int, heads: int, cfg: TTSModelConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(c)
        self.self_attn = MultiheadAttention(c, heads, cfg.attn_dropout)
        self.cross = CrossAttention(c, heads, cfg)
        self.norm3 = nn.LayerNorm(c)
        self.ffn = FFN(c, cfg.ffn_kernel, causal=True, dropout=cfg.dropout)
        self.dropout = cfg.dropout

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, memory_padding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norm1(x)
        h, _ = self.self_attn(h, h, causal=True)
        x = x + F.dropout(h, self.dropout, self.training)
        x, w = self.cross(x, memory, memory_padding)
        x = x + F.dropout(self.ffn(self.norm3(x)), self.dropout, self.training)
        return x, w


class DecLSTM(nn.Module):
    """Decoder LSTM op (token 11): pre-LN unidirectional LSTM (zero initial state), then 1-head enc-dec attention."""

    def __init__(self, c: int, cfg: TTSModelConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.lstm = nn.LSTM(c, c, batch_first=True)
        self.cross = CrossAttention(c, 1, cfg)
        self.dropout = cfg.dropout

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, memory_padding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, _ = self.lstm(self.norm(x))
        x = x + F.dropout(h, self.dropout, self.training)
        return self.cross(x, memory, memory_padding)


def build_op(token: int, position: str, cfg: TTSModelConfig) -> nn.Module:
    """The op module for ``token`` in an ``"encoder"`` or ``"decoder"`` layer."""
    kind, c, t = op_kind(token), cfg.hidden, int(token)
    if position == "encoder":
        if kind == "conv":
            return EncConv(c, CONV_KERNELS[t], cfg)
        if kind == "sa":
            return EncSA(c, SA_HEADS[t], cfg)
        return EncLSTM(c, cfg)
    if position == "decoder":
        if kind == "conv":
            return DecConv(c, CONV_KERNELS[t], cfg)
        if kind == "sa":
            return DecSA(c, SA_HEADS[t], cfg)
        return DecLSTM(c, cfg)
    raise ValueError(f"position must be 'encoder' or 'decoder', got {position!r}")


class LayerChoice(nn.Module):
    """One searchable layer: a ``ModuleDict`` of candidate ops keyed by :func:`op_key`; runs the chosen one."""

    def __init__(self, position: str, tokens: Sequence[int], cfg: TTSModelConfig) -> None:
        super().__init__()
        self.position = position
        self.ops = nn.ModuleDict({op_key(t): build_op(t, position, cfg) for t in tokens})

    def forward(self, token: int, *args: Any) -> Any:
        name = op_key(token)
        if name not in self.ops:
            raise KeyError(f"this {self.position} layer has no op {name!r} (holds: {', '.join(self.ops)})")
        return self.ops[name](*args)


class Prenet(nn.Module):
    """Decoder prenet ``n_mels -> h -> h -> hidden``: ReLU + dropout after the first two layers."""

    def __init__(self, cfg: TTSModelConfig) -> None:
        super().__init__()
        self.l1 = nn.Linear(cfg.n_mels, cfg.prenet_hidden)
        self.l2 = nn.Linear(cfg.prenet_hidden, cfg.prenet_hidden)
        self.l3 = nn.Linear(cfg.prenet_hidden, cfg.hidden)
        self.p = cfg.prenet_dropout
        self.always_on = cfg.prenet_dropout_at_inference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        on = self.training or self.always_on
        x = F.dropout(F.relu(self.l1(x)), self.p, on)
        x = F.dropout(F.relu(self.l2(x)), self.p, on)
        return self.l3(x)


class Postnet(nn.Module):
    """Conv postnet over the whole predicted mel (non-causal; it runs after decoding), tanh between layers."""

    def __init__(self, cfg: TTSModelConfig) -> None:
        super().__init__()
        k, ch, n = cfg.postnet_kernel, cfg.postnet_channels, cfg.postnet_layers
        dims = [cfg.n_mels] + [ch] * (n - 1) + [cfg.n_mels]
        self.convs = nn.ModuleList(nn.Conv1d(dims[i], dims[i + 1], k) for i in range(n))
        self.kernel, self.dropout = k, cfg.dropout

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = mel.transpose(1, 2)
        for i, conv in enumerate(self.convs):
            h = conv(_conv_pad(h, self.kernel, causal=False))
            if i < len(self.convs) - 1:
                h = F.dropout(torch.tanh(h), self.dropout, self.training)
        return mel + h.transpose(1, 2)


# ----------------------------------------------------------------------------------------------------------------
# the network
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class TTSOutput:
    """What one teacher-forced forward returns (frames = decoder steps × r)."""

    mel: torch.Tensor  # [B, T, n_mels] before the postnet
    mel_post: torch.Tensor  # [B, T, n_mels] after the postnet (same tensor as mel without one)
    stop_logits: torch.Tensor  # [B, T]
    attn: list[torch.Tensor]  # per decoder layer: enc-dec attention weights [B, H, S, L]


def arch_tokens(arch: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(encoder tokens, decoder tokens)`` of an arch, a layer string, 12 tokens or a pair."""
    a = TTSSpace.coerce(arch)
    return a.encoder, a.decoder


def decoder_inputs(mels: torch.Tensor, r: int) -> torch.Tensor:
    """Teacher-forcing inputs ``[B, S, n_mels]`` for targets ``mels [B, T, n_mels]``, ``S = ceil(T / r)``.

    Step 0 gets an all-zero GO frame (zero is the corpus mean after normalisation); step s gets the last frame of
    group s-1, i.e. frame ``s*r - 1``.
    """
    b, t, n = mels.shape
    s = -(-t // r)
    if s * r != t:
        mels = F.pad(mels, (0, 0, 0, s * r - t))
    last = mels[:, r - 1 :: r]  # [B, S, n]: frame s*r + r - 1 of each group
    return torch.cat([mels.new_zeros(b, 1, n), last[:, :-1]], dim=1)


def lengths_to_padding(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Boolean ``[B, max_len]``, True at padding."""
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


class SearchableLayers:
    """Arch handling shared by both backbones' models: ``self.encoder`` / ``self.decoder`` are lists of
    :class:`LayerChoice`; a child sets ``self.arch`` (its own architecture), a supernet leaves it ``None``."""

    arch: TTSArch | None = None
    encoder: nn.ModuleList
    decoder: nn.ModuleList

    def default_arch(self) -> TTSArch | None:
        """The arch to run when ``forward`` gets none (a child's own arch; ``None`` for the supernet)."""
        return self.arch

    def _resolve(self, arch: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
        if arch is None:
            arch = self.default_arch()
            if arch is None:
                raise ValueError("the supernet needs an arch for every forward call")
        enc, dec = arch_tokens(arch)
        if len(enc) != len(self.encoder) or len(dec) != len(self.decoder):
            raise ValueError(f"arch has {len(enc)}+{len(dec)} layers, model {len(self.encoder)}+{len(self.decoder)}")
        return enc, dec

    def path_parameter_names(self, arch: Any) -> set[str]:
        """Names of the parameters one forward along ``arch`` uses (shared parts + the chosen ops)."""
        enc, dec = self._resolve(arch)
        return path_parameter_names(self, enc, dec)  # type: ignore[arg-type]


def supernet_choices(n_encoder: int = 6, n_decoder: int = 6) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """Every op in every layer: the supernet's candidate lists."""
    return [OP_TOKENS] * n_encoder, [OP_TOKENS] * n_decoder


def child_choices(arch: Any) -> tuple[TTSArch, list[tuple[int, ...]], list[tuple[int, ...]]]:
    """A child's arch and its one-op candidate lists."""
    a = TTSSpace.coerce(arch)
    return a, [(t,) for t in a.encoder], [(t,) for t in a.decoder]


class TTSNet(SearchableLayers, nn.Module):
    """The model, holding candidate ops ``enc_choices[i]`` / ``dec_choices[i]`` per layer (see module docstring)."""

    def __init__(
        self,
        cfg: TTSModelConfig,
        enc_choices: Sequence[Sequence[int]],
        dec_choices: Sequence[Sequence[int]],
    ) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.hidden
        self.embed = nn.Embedding(cfg.vocab_size, c, padding_idx=0)
        self.enc_alpha = nn.Parameter(torch.ones(1))
        self.dec_alpha = nn.Parameter(torch.ones(1))
        self.register_buffer("positions", sinusoid_table(cfg.max_positions, c), persistent=False)
        self.encoder = nn.ModuleList(LayerChoice("encoder", toks, cfg) for toks in enc_choices)
        self.enc_norm = nn.LayerNorm(c)
        self.prenet = Prenet(cfg)
        self.decoder = nn.ModuleList(LayerChoice("decoder", toks, cfg) for toks in dec_choices)
        self.dec_norm = nn.LayerNorm(c)
        self.mel_proj = nn.Linear(c, cfg.n_mels * cfg.r)
        self.stop_proj = nn.Linear(c, cfg.r)
        self.postnet = Postnet(cfg) if cfg.postnet_layers else None

    # -- forward pieces ----------------------------------------------------------------------------------
    def encode(
        self, chars: torch.Tensor, text_lens: torch.Tensor, arch: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``chars [B, L]`` -> encoder output ``[B, L, C]`` and its padding mask ``[B, L]`` (True = pad)."""
        enc, _ = self._resolve(arch)
        length = chars.shape[1]
        if length > self.cfg.max_positions:
            raise ValueError(f"text of {length} characters exceeds max_positions={self.cfg.max_positions}")
        padding = lengths_to_padding(text_lens.to(chars.device), length)
        x = self.embed(chars) + self.enc_alpha * self.positions[:length]
        x = _zero_pad(x, padding)
        for layer, tok in zip(self.encoder, enc):
            x = layer(tok, x, padding)
        return _zero_pad(self.enc_norm(x), padding), padding

    def decode(
        self, memory: torch.Tensor, memory_padding: torch.Tensor, dec_in: torch.Tensor, arch: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Decoder inputs ``[B, S, n_mels]`` -> mel ``[B, S*r, n_mels]`` (pre-postnet), stop logits ``[B, S*r]``,
        and per-layer enc-dec attention ``[B, H, S, L]``. Causal: step s only sees inputs ``<= s``."""
        _, dec = self._resolve(arch)
        b, s, _ = dec_in.shape
        if s > self.cfg.max_positions:
            raise ValueError(f"{s} decoder steps exceed max_positions={self.cfg.max_positions}")
        x = self.prenet(dec_in) + self.dec_alpha * self.positions[:s]
        attns = []
        for layer, tok in zip(self.decoder, dec):
            x, w = layer(tok, x, memory, memory_padding)
            attns.append(w)
        x = self.dec_norm(x)
        mel = self.mel_proj(x).view(b, s * self.cfg.r, self.cfg.n_mels)
        stop = self.stop_proj(x).view(b, s * self.cfg.r)
        return mel, stop, attns

    def apply_postnet(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel after the postnet (``mel`` itself when there is none)."""
        return mel if self.postnet is None else self.postnet(mel)

    def forward(
        self,
        chars: torch.Tensor,
        mels: torch.Tensor,
        arch: Any = None,
        text_lens: torch.Tensor | None = None,
    ) -> TTSOutput:
        """Teacher-forced pass along one path. ``chars [B, L]`` (0 = pad), target ``mels [B, T, n_mels]``.

        ``text_lens`` defaults to the count of non-zero characters. The output has ``ceil(T/r)*r`` frames.
        """
        if text_lens is None:
            text_lens = (chars != 0).sum(1)
        memory, padding = self.encode(chars, text_lens, arch)
        mel, stop, attns = self.decode(memory, padding, decoder_inputs(mels, self.cfg.r), arch)
        return TTSOutput(mel=mel, mel_post=self.apply_postnet(mel), stop_logits=stop, attn=attns)



def path_parameter_names(model: nn.Module, enc: Sequence[int], dec: Sequence[int]) -> set[str]:
    """Parameters of ``model`` outside ``encoder.*``/``decoder.*`` plus those of the chosen op in every layer
    (both backbones name their layers ``encoder.i.ops.<op>`` / ``decoder.i.ops.<op>``)."""
    chosen = {f"encoder.{i}.ops.{op_key(t)}." for i, t in enumerate(enc)}
    chosen |= {f"decoder.{i}.ops.{op_key(t)}." for i, t in enumerate(dec)}
    return {name for name, _ in model.named_parameters()
            if not name.startswith(("encoder.", "decoder.")) or any(name.startswith(p) for p in chosen)}


class Supernet(TTSNet):
    """Weight-sharing supernet: all 11 ops in each of the 6 encoder and 6 decoder layers; one path per call."""

    def __init__(self, cfg: TTSModelConfig, n_encoder: int = 6, n_decoder: int = 6) -> None:
        super().__init__(cfg, *supernet_choices(n_encoder, n_decoder))


class ChildModel(TTSNet):
    """A standalone model holding only ``arch``'s ops (final training of the best arch and of the baseline)."""

    def __init__(self, arch: Any, cfg: TTSModelConfig) -> None:
        arch, enc, dec = child_choices(arch)
        super().__init__(cfg, enc, dec)
        self.arch = arch

    @classmethod
    def from_supernet(cls, supernet: TTSNet, arch: Any, cfg: TTSModelConfig | None = None) -> "ChildModel":
        """A child whose weights are copied from the supernet's shared parts and ``arch``'s ops."""
        child = cls(arch, cfg or supernet.cfg)
        child.load_state_dict(child_state_dict(supernet.state_dict(), child))
        return child.to(next(supernet.parameters()).device)


def child_state_dict(supernet_state: dict[str, torch.Tensor], child: TTSNet) -> dict[str, torch.Tensor]:
    """The entries of a supernet ``state_dict`` that a child needs (names match; see module docstring)."""
    wanted = child.state_dict().keys()
    missing = [k for k in wanted if k not in supernet_state]
    if missing:
        raise KeyError(f"supernet state lacks {len(missing)} child entries, e.g. {missing[:3]}")
    return {k: supernet_state[k] for k in wanted}


def count_parameters(module: nn.Module, names: set[str] | None = None) -> int:
    """Trainable parameters of ``module`` (restricted to ``names`` when given)."""
    return sum(p.numel() for n, p in module.named_parameters() if names is None or n in names)


__all__ = [
    "N_OPS",
    "PRESETS",
    "ChildModel",
    "LayerChoice",
    "Supernet",
    "TTSModelConfig",
    "TTSNet",
    "TTSOutput",
    "arch_tokens",
    "build_op",
    "child_state_dict",
    "count_parameters",
    "decoder_inputs",
    "lengths_to_padding",
    "op_key",
    "SearchableLayers",
    "child_choices",
    "path_parameter_names",
    "preset",
    "supernet_choices",
]
