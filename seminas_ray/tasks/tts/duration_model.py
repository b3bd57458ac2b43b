"""The duration-based (non-autoregressive) backbone: FastSpeech-style layers searched over the same 11 ops.

Why it exists: on 2 CPU cores the autoregressive Transformer-TTS backbone (``model.py``) learns the alignment in
minutes but its free-running speech stays unintelligible (exposure bias; ``tts_offline_notes.md`` §4). The same
authors' follow-up, LightSpeech, searched a FastSpeech-style backbone over the same kinds of conv/attention ops. Here
every layer is one of the 11 ops of :mod:`seminas_ray.spaces.tts`, so the search space, the controller and the
SemiNAS search are unchanged; only what a token builds differs:

* **Encoder** (6 searchable layers over phonemes): phoneme + stress embeddings (``phonemes.py``) + scaled sinusoidal
  positions + a style embedding, then the layers, then a LayerNorm.
* **Duration predictor** (fixed, as FastSpeech): 2 x (conv k3, ReLU, LayerNorm, dropout) + linear on the *detached*
  encoder output, predicting ``log(1 + frames)`` per phoneme. Trained on eSpeak's exact phoneme alignment.
* **Length regulator**: each phoneme's encoder state repeated for its duration (the true one in training, the
  predicted one at inference).
* **Decoder** (6 searchable layers over frames): the same ops as the encoder's, non-causal (there is no
  autoregression: every frame is predicted at once), then a LayerNorm, a linear to 80 mel bins and a conv postnet.
* **Style**: the corpus's per-utterance eSpeak jitter (speed, pitch, word gap; 0 = its mean) enters as a linear
  embedding added to the encoder input and the decoder input, like a speaker embedding. Without it the model
  averages over pitches and the harmonics blur. At inference the style is 0 (the corpus's mean voice), unless given.

What this backbone cannot test: there is no encoder-decoder attention, so the paper's attention failures (skips,
repeats, missing stop token) cannot occur and the diagonal focus rate does not exist; robustness is then a matter of
durations and acoustics (length ratio and recogniser errors). The paper's claims about attention stay with
``--backbone transformer-tts``.

Parameter names follow ``model.py`` (``encoder.2.ops.conv13.…``, ``decoder.0.ops.sa4.…``), so a child and the
supernet share state-dict keys and :func:`model.child_state_dict` works for both backbones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seminas_ray.tasks.tts import phonemes as tts_phonemes
from seminas_ray.tasks.tts.model import LayerChoice
from seminas_ray.tasks.tts.model import Postnet
from seminas_ray.tasks.tts.model import SearchableLayers
from seminas_ray.tasks.tts.model import TTSModelConfig
from seminas_ray.tasks.tts.model import _zero_pad
from seminas_ray.tasks.tts.model import child_choices
from seminas_ray.tasks.tts.model import lengths_to_padding
from seminas_ray.tasks.tts.model import sinusoid_table
from seminas_ray.tasks.tts.model import supernet_choices

STYLE_DIM = 3  # speed, pitch, word gap (normalised; 0 = the corpus mean)


@dataclass
class DurationOutput:
    """One forward pass: mels ``[B, T, n_mels]`` before/after the postnet, predicted ``log(1 + frames)`` per
    phoneme ``[B, L]``, the durations used ``[B, L]`` and the frame counts ``[B]``."""

    mel: torch.Tensor
    mel_post: torch.Tensor
    log_duration: torch.Tensor
    durations: torch.Tensor
    frame_lens: torch.Tensor


class DurationPredictor(nn.Module):
    """FastSpeech's duration predictor on the detached encoder output (it must not steer the encoder)."""

    def __init__(self, c: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(c, c, kernel, padding=kernel // 2)
        self.norm1 = nn.LayerNorm(c)
        self.conv2 = nn.Conv1d(c, c, kernel, padding=kernel // 2)
        self.norm2 = nn.LayerNorm(c)
        self.out = nn.Linear(c, 1)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        h = x.detach()
        for conv, norm in ((self.conv1, self.norm1), (self.conv2, self.norm2)):
            h = _zero_pad(h, padding)
            h = norm(F.relu(conv(h.transpose(1, 2))).transpose(1, 2))
            h = F.dropout(h, self.dropout, self.training)
        return self.out(h)[..., 0].masked_fill(padding, 0.0)


def regulate_length(x: torch.Tensor, durations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat phoneme states ``x [B, L, C]`` by ``durations [B, L]`` (frames; padding must be 0): frames
    ``[B, T, C]`` (zero past each utterance's end) and frame counts ``[B]``."""
    durations = durations.clamp(min=0).long()
    frame_lens = durations.sum(1)
    t_max = max(1, int(frame_lens.max()))
    index = torch.zeros(x.shape[0], t_max, dtype=torch.long, device=x.device)
    for i in range(x.shape[0]):  # B is small; repeat_interleave per row keeps it exact and simple
        idx = torch.repeat_interleave(torch.arange(x.shape[1], device=x.device), durations[i])
        index[i, : idx.numel()] = idx
    frames = torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[2]))
    return _zero_pad(frames, lengths_to_padding(frame_lens, t_max)), frame_lens


def predicted_durations(log_duration: torch.Tensor, padding: torch.Tensor, speed: float = 1.0) -> torch.Tensor:
    """Frames per phoneme from predicted ``log(1 + frames)``: rounded, at least 0; ``speed`` > 1 speaks faster."""
    frames = torch.clamp(torch.round((torch.exp(log_duration) - 1.0) / speed), min=0).long()
    frames = frames.masked_fill(padding, 0)
    empty = frames.sum(1) == 0  # a model that predicts nothing still says one frame per phoneme
    if bool(empty.any()):
        frames[empty] = (~padding[empty]).long()
    return frames


class DurationTTSNet(SearchableLayers, nn.Module):
    """The duration-based model holding candidate ops per layer (see the module docstring)."""

    def __init__(self, cfg: TTSModelConfig, enc_choices: Sequence[Sequence[int]],
                 dec_choices: Sequence[Sequence[int]]) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.hidden
        self.embed = nn.Embedding(tts_phonemes.vocab_size, c, padding_idx=0)
        self.stress_embed = nn.Embedding(tts_phonemes.n_stress, c)
        self.style = nn.Linear(STYLE_DIM, c)
        self.enc_alpha = nn.Parameter(torch.ones(1))
        self.dec_alpha = nn.Parameter(torch.ones(1))
        self.register_buffer("positions", sinusoid_table(cfg.max_positions, c), persistent=False)
        self.encoder = nn.ModuleList(LayerChoice("encoder", toks, cfg) for toks in enc_choices)
        self.enc_norm = nn.LayerNorm(c)
        self.duration = DurationPredictor(c, 3, cfg.dropout)
        # the decoder runs over all frames at once: the encoder's (non-causal) ops are the right ones
        self.decoder = nn.ModuleList(LayerChoice("encoder", toks, cfg) for toks in dec_choices)
        self.dec_norm = nn.LayerNorm(c)
        self.mel_proj = nn.Linear(c, cfg.n_mels)
        self.postnet = Postnet(cfg) if cfg.postnet_layers else None

    def forward(self, phonemes: torch.Tensor, stress: torch.Tensor, text_lens: torch.Tensor,
                style: torch.Tensor | None = None, durations: torch.Tensor | None = None, arch: Any = None,
                speed: float = 1.0) -> DurationOutput:
        """``phonemes``/``stress`` ``[B, L]`` (0-padded), ``style [B, 3]`` (None: zeros). With ``durations [B, L]``
        (training) frames follow them; without, the predicted ones (inference)."""
        enc, dec = self._resolve(arch)
        b, length = phonemes.shape
        if length > self.cfg.max_positions:
            raise ValueError(f"{length} phonemes exceed max_positions={self.cfg.max_positions}")
        padding = lengths_to_padding(text_lens.to(phonemes.device), length)
        style_vec = self.style(style if style is not None else phonemes.new_zeros(b, STYLE_DIM, dtype=torch.float))
        x = self.embed(phonemes) + self.stress_embed(stress) + self.enc_alpha * self.positions[:length]
        x = _zero_pad(x + style_vec[:, None], padding)
        for layer, tok in zip(self.encoder, enc):
            x = layer(tok, x, padding)
        x = _zero_pad(self.enc_norm(x), padding)
        log_duration = self.duration(x, padding)
        used = durations if durations is not None else predicted_durations(log_duration, padding, speed)
        y, frame_lens = regulate_length(x, used.masked_fill(padding, 0))
        t = y.shape[1]
        if t > self.cfg.max_positions:
            raise ValueError(f"{t} frames exceed max_positions={self.cfg.max_positions}")
        frame_padding = lengths_to_padding(frame_lens, t)
        y = _zero_pad(y + self.dec_alpha * self.positions[:t] + style_vec[:, None], frame_padding)
        for layer, tok in zip(self.decoder, dec):
            y = layer(tok, y, frame_padding)
        mel = self.mel_proj(self.dec_norm(y))
        mel_post = mel if self.postnet is None else self.postnet(mel)
        return DurationOutput(mel=mel, mel_post=mel_post, log_duration=log_duration, durations=used,
                              frame_lens=frame_lens)

class DurationSupernet(DurationTTSNet):
    """Weight-sharing supernet: all 11 ops in each of the 6 encoder and 6 decoder layers; one path per call."""

    def __init__(self, cfg: TTSModelConfig, n_encoder: int = 6, n_decoder: int = 6) -> None:
        super().__init__(cfg, *supernet_choices(n_encoder, n_decoder))


class DurationChild(DurationTTSNet):
    """A standalone duration-based model holding only ``arch``'s ops."""

    def __init__(self, arch: Any, cfg: TTSModelConfig) -> None:
        arch, enc, dec = child_choices(arch)
        super().__init__(cfg, enc, dec)
        self.arch = arch


__all__ = ["STYLE_DIM", "DurationChild", "DurationOutput", "DurationPredictor", "DurationSupernet",
           "DurationTTSNet", "predicted_durations", "regulate_length"]
