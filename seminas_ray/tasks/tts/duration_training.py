"""Batching, loss, scoring and synthesis of the duration-based backbone (``duration_model.py``).

An item is ``(phonemes int [L], mel float [T, n_mels], stress int [L], durations int [L], style float [3])`` with
``durations.sum() == T`` (eSpeak's alignment, ``corpus.Alignment.durations``). Like ``training.py`` every function
takes plain tensors and the model it works on, so Ray actors and tasks call them directly.

Loss: masked L1 on the mel before and after the postnet (the frames are aligned, so there is nothing else to
learn about the acoustics) + ``duration_weight`` x MSE of ``log(1 + frames)`` per phoneme (FastSpeech).

Score (the search reward): the same loss on the validation set, durations given (so it measures the acoustics and
the duration predictor of each path on equal terms). Lower is better. Unlike the attention-based DFR it does not
saturate when every candidate aligns: every candidate "aligns" here, and what differs is how well it predicts mels.
"""
from __future__ import annotations

from typing import Any
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from seminas_ray.tasks.tts.duration_model import DurationOutput
from seminas_ray.tasks.tts.duration_model import DurationTTSNet
from seminas_ray.tasks.tts.model import TTSModelConfig
from seminas_ray.tasks.tts.model import lengths_to_padding
from seminas_ray.tasks.tts.training import Batch
from seminas_ray.tasks.tts.training import make_batches
from seminas_ray.tasks.tts.training import model_device
from seminas_ray.tasks.tts.training import seeded
from seminas_ray.tasks.tts.training import to_device


def collate_aligned(items: Sequence[tuple[Any, ...]], r: int = 1, n_mels: int | None = None) -> Batch:
    """Pad aligned items into ``phonemes``, ``stress``, ``durations`` ``[B, L]``, ``text_lens [B]``,
    ``style [B, 3]``, ``mels [B, T, n_mels]`` and ``mel_lens [B]`` (``r`` is accepted for a common signature)."""
    if len(items) == 0:
        raise ValueError("collate_aligned needs at least one item")
    for i, item in enumerate(items):
        if len(item) != 5:
            raise ValueError(f"item {i}: expected (phonemes, mel, stress, durations, style), got {len(item)} fields")
        ph, mel, _, dur, _ = item
        if len(ph) == 0 or len(dur) != len(ph) or int(np.sum(dur)) != len(mel):
            raise ValueError(f"item {i}: {len(ph)} phonemes, {len(dur)} durations summing to {int(np.sum(dur))} "
                             f"for {len(mel)} frames")
        if n_mels is not None and np.shape(mel)[1] != n_mels:
            raise ValueError(f"item {i}: mel must be [frames, {n_mels}], got {np.shape(mel)}")
    b = len(items)
    l_max = max(len(it[0]) for it in items)
    t_max = max(len(it[1]) for it in items)
    n = np.shape(items[0][1])[1]
    phonemes = np.zeros((b, l_max), np.int64)
    stress = np.zeros((b, l_max), np.int64)
    durations = np.zeros((b, l_max), np.int64)
    mels = np.zeros((b, t_max, n), np.float32)
    style = np.zeros((b, 3), np.float32)
    for i, (ph, mel, st, dur, sty) in enumerate(items):
        phonemes[i, : len(ph)] = ph
        stress[i, : len(st)] = st
        durations[i, : len(dur)] = dur
        mels[i, : len(mel)] = mel
        style[i] = sty
    return {"phonemes": torch.from_numpy(phonemes), "stress": torch.from_numpy(stress),
            "durations": torch.from_numpy(durations),
            "text_lens": torch.tensor([len(it[0]) for it in items], dtype=torch.int64),
            "style": torch.from_numpy(style), "mels": torch.from_numpy(mels),
            "mel_lens": torch.tensor([len(it[1]) for it in items], dtype=torch.int64)}


def forward_batch(model: DurationTTSNet, batch: Batch, arch: Any, teacher_durations: bool = True) -> DurationOutput:
    """The model on a collated batch (already on its device), with the true durations unless told otherwise."""
    return model(batch["phonemes"], batch["stress"], batch["text_lens"], batch["style"],
                 durations=batch["durations"] if teacher_durations else None, arch=arch)


def compute_duration_losses(out: DurationOutput, batch: Batch, cfg: TTSModelConfig) -> dict[str, torch.Tensor]:
    """Scalar losses: ``loss`` (optimised) = ``mel`` + ``post`` + ``duration_weight`` x ``duration``."""
    mels, mel_lens = batch["mels"], batch["mel_lens"]
    t = out.mel.shape[1]
    if mels.shape[1] != t:  # the frames follow the true durations, whose sums are mel_lens
        mels = F.pad(mels, (0, 0, 0, max(0, t - mels.shape[1])))[:, :t]
    frame_mask = (~lengths_to_padding(mel_lens, t)).float()[..., None]
    n_valid = frame_mask.sum().clamp(min=1) * out.mel.shape[2]
    mel_loss = ((out.mel - mels).abs() * frame_mask).sum() / n_valid
    post_loss = (torch.zeros_like(mel_loss) if out.mel_post is out.mel
                 else ((out.mel_post - mels).abs() * frame_mask).sum() / n_valid)
    ph_mask = (~lengths_to_padding(batch["text_lens"], out.log_duration.shape[1])).float()
    target = torch.log1p(batch["durations"].float())
    dur_loss = (((out.log_duration - target) ** 2) * ph_mask).sum() / ph_mask.sum().clamp(min=1)
    total = mel_loss + post_loss + cfg.duration_weight * dur_loss
    return {"loss": total, "mel": mel_loss, "post": post_loss, "duration": dur_loss}


def duration_path_losses(model: DurationTTSNet, batch: Batch, arch: Any, cfg: TTSModelConfig) -> dict[str, torch.Tensor]:
    """The training objective of path ``arch`` on ``batch`` (already on the model's device)."""
    return compute_duration_losses(forward_batch(model, batch, arch), batch, cfg)


@torch.no_grad()
def evaluate_duration_arch(model: DurationTTSNet, arch: Any, batches: Sequence[Batch], cfg: TTSModelConfig,
                           seed: int = 0) -> dict[str, float]:
    """Validation losses of one path (eval mode, true durations), averaged over utterances: ``loss``, ``mel``,
    ``post``, ``duration``, and ``n_utts``."""
    model.eval()
    device = model_device(model)
    sums: dict[str, float] = {}
    n_utts = 0
    with seeded(seed, device):
        for batch in batches:
            batch = to_device(batch, device)
            losses = duration_path_losses(model, batch, arch, cfg)
            b = int(batch["phonemes"].shape[0])
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v) * b
            n_utts += b
    if n_utts == 0:
        raise ValueError("no validation batches")
    out = {k: v / n_utts for k, v in sums.items()}
    out["n_utts"] = float(n_utts)
    return out


def score_duration_archs(model: DurationTTSNet, archs: Sequence[Any], valid_batches: Sequence[Batch],
                         cfg: TTSModelConfig, seed: int = 0) -> list[dict[str, float]]:
    """One dict per arch (in order) with ``valid_loss`` (the reward, lower is better), ``valid_mel``,
    ``valid_post`` and ``valid_duration`` on the shared weights."""
    scores = []
    for arch in archs:
        res = evaluate_duration_arch(model, arch, valid_batches, cfg, seed=seed)
        scores.append({"valid_loss": res["loss"], "valid_mel": res["mel"], "valid_post": res["post"],
                       "valid_duration": res["duration"], "loss": res["loss"]})
    return scores


@torch.no_grad()
def synthesize_aligned(model: DurationTTSNet, arch: Any, batch: Batch, style: torch.Tensor | None = None,
                       max_frames: int | None = None) -> tuple[torch.Tensor, list[int]]:
    """Mels ``[B, T, n_mels]`` (after the postnet) and frame counts from predicted durations; ``style`` None
    means the corpus's mean voice (0). Utterances longer than ``max_frames`` are cut there."""
    model.eval()
    device = model_device(model)
    batch = to_device(batch, device)
    style = torch.zeros_like(batch["style"]) if style is None else style.to(device)
    out = model(batch["phonemes"], batch["stress"], batch["text_lens"], style, durations=None, arch=arch)
    lengths = [int(n) for n in out.frame_lens]
    if max_frames is not None:
        lengths = [min(n, int(max_frames)) for n in lengths]
    return out.mel_post[:, : max(lengths)].cpu(), lengths


def duration_batches(items: Sequence[tuple[Any, ...]], batch_size: int | None = 16, max_frames: int | None = None,
                     rng: np.random.Generator | None = None) -> list[Batch]:
    """Length-bucketed aligned batches (``training.make_batches`` with :func:`collate_aligned`)."""
    return make_batches(items, 1, batch_size=batch_size, max_frames=max_frames, rng=rng, collate_fn=collate_aligned)


def style_vector(speed: float, pitch: float, word_gap: float) -> np.ndarray:
    """The style input of an eSpeak utterance: its jitter normalised to about [-1, 1] around the corpus mean
    (speed 170 wpm +- 20, pitch 50 +- 15, word gap 0.75 x 10 ms +- 1)."""
    return np.asarray([(speed - 170.0) / 20.0, (pitch - 50.0) / 15.0, word_gap - 0.75], np.float32)


__all__ = ["collate_aligned", "compute_duration_losses", "duration_batches", "duration_path_losses",
           "evaluate_duration_arch", "forward_batch", "score_duration_archs",
           "style_vector", "synthesize_aligned"]
