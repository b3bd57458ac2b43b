"""Batching, loss, training steps, scoring (diagonal focus rate) and free-running inference for the TTS models.

Every function takes plain tensors / numpy arrays / dicts and the model it works on: no module-level state, so
the lead can call them from Ray actors. Randomness: arch sampling uses a seeded numpy generator
(:func:`uniform_arch_sampler`); dropout uses torch's global RNG (seed it with ``torch.manual_seed`` in the worker);
scoring and synthesis fork the RNG and seed it themselves, so they are reproducible and leave it untouched.
Threads are left to the caller (``torch.set_num_threads``). Everything runs on the model's device.

Loss (:func:`compute_losses`) = masked L1 (or MSE, as the paper) on the mel before and after the postnet
+ stop-token BCE with ``pos_weight`` 5 (the paper) + **guided-attention loss** (Tachibana et al. 2018,
``W[s, l] = 1 - exp(-(l/L - s/S)^2 / (2 g^2))``, g = 0.2, on every head of every decoder layer). The guided
attention is *not* in the paper: on CPU a candidate trains for minutes, not hours, and without it the
encoder-decoder attention of most candidates does not align in that time, so the diagonal focus rate could not
rank them (``tts_offline_notes.md`` §4: weight 1 -> DFR 0.67, weight 20 -> 0.90 after 8 minutes). Set
``guided_attn_weight=0`` for the paper's loss. The other side of it: at weight 20 every path's DFR saturates. On the
1,200-utterance eSpeak corpus the ``default`` supernet (8-arch pool, 1 thread) went from DFR 0.37 to 0.65-0.87 after
~200 steps, 0.85-0.93 after ~300 and 0.97-0.99 for all 8 after ~1,700 steps (12 min), so the spread that ranks
archs is widest early: score after a short, fixed budget, lower the weight, or also look at ``loss``/``fr``.

Scoring (:func:`score_archs`) is the paper's diagonal focus rate (DFR; the authors' ``utils.get_diagonal_focus_rate``
with ``select_attn``): per utterance, take the decoder layer and head whose attention is most focused (largest sum
over decoder steps of the max weight), and measure the share of its attention mass inside the band
``|l - k*s| <= k*w`` with ``k = L/S`` and ``w = min(S/5, 50)`` (``S`` decoder steps, ``L`` characters). The paper
scores free-running decoding; here the default is teacher-forced (one forward per batch, 5-12 ms per utterance,
and it does not depend on the stop token of a briefly trained candidate), with ``mode="free_running"`` available.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any
from typing import Callable
from typing import Iterable
from typing import Iterator
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from seminas_ray.tasks.tts.model import TTSModelConfig
from seminas_ray.tasks.tts.model import TTSNet
from seminas_ray.tasks.tts.model import TTSOutput
from seminas_ray.tasks.tts.model import decoder_inputs
from seminas_ray.tasks.tts.model import lengths_to_padding
from seminas_ray.utils.batching import batch_plan
from seminas_ray.utils.training_step import train_step as optimisation_step

Batch = dict[str, torch.Tensor]


# ----------------------------------------------------------------------------------------------------------------
# batching
# ----------------------------------------------------------------------------------------------------------------
def collate(items: Sequence[tuple[np.ndarray, np.ndarray]], r: int, n_mels: int | None = None) -> Batch:
    """Pad ``(chars int64 [L], mel float [T, n_mels])`` pairs into a batch.

    Returns ``chars [B, Lmax]`` (0-padded), ``text_lens [B]``, ``mels [B, Tmax, n_mels]`` with ``Tmax`` rounded up
    to a multiple of ``r`` (zero-padded), ``mel_lens [B]`` (true frame counts) and ``stop [B, Tmax]`` (1.0 at each
    utterance's last frame, else 0).
    """
    if len(items) == 0:
        raise ValueError("collate needs at least one (chars, mel) pair")
    chars_list, mel_list = [], []
    for i, item in enumerate(items):
        chars, mel = item[0], item[1]
        chars = np.asarray(chars)
        mel = np.asarray(mel, dtype=np.float32)
        if chars.ndim != 1 or chars.size == 0 or not np.issubdtype(chars.dtype, np.integer):
            raise ValueError(f"item {i}: chars must be a non-empty 1-D integer array, got {chars.dtype} {chars.shape}")
        if mel.ndim != 2 or mel.shape[0] == 0 or (n_mels is not None and mel.shape[1] != n_mels):
            raise ValueError(f"item {i}: mel must be [frames, {n_mels or 'n_mels'}], got {mel.shape}")
        chars_list.append(chars.astype(np.int64))
        mel_list.append(mel)
    b = len(items)
    n = mel_list[0].shape[1]
    if any(m.shape[1] != n for m in mel_list):
        raise ValueError(f"mels in one batch disagree on n_mels: {sorted({m.shape[1] for m in mel_list})}")
    text_lens = np.array([len(c) for c in chars_list], dtype=np.int64)
    mel_lens = np.array([len(m) for m in mel_list], dtype=np.int64)
    t_max = int(math.ceil(mel_lens.max() / r) * r)
    chars = np.zeros((b, text_lens.max()), dtype=np.int64)
    mels = np.zeros((b, t_max, n), dtype=np.float32)
    stop = np.zeros((b, t_max), dtype=np.float32)
    for i, (c, m) in enumerate(zip(chars_list, mel_list)):
        chars[i, : len(c)] = c
        mels[i, : len(m)] = m
        stop[i, len(m) - 1] = 1.0
    return {
        "chars": torch.from_numpy(chars),
        "text_lens": torch.from_numpy(text_lens),
        "mels": torch.from_numpy(mels),
        "mel_lens": torch.from_numpy(mel_lens),
        "stop": torch.from_numpy(stop),
    }


def make_batches(
    items: Sequence[tuple[np.ndarray, np.ndarray]],
    r: int,
    batch_size: int | None = 16,
    max_frames: int | None = None,
    rng: np.random.Generator | None = None,
    collate_fn: Callable[..., Batch] | None = None,
) -> list[Batch]:
    """Length-bucketed batches: sort by mel length, cut into batches, shuffle the batch order with ``rng``.

    Items are ``(tokens, mel, ...)``; ``collate_fn(items, r)`` (default :func:`collate`) pads one batch, so the
    duration-based backbone's aligned items batch the same way.

    A batch closes at ``batch_size`` utterances or when its padded size ``B * Tmax`` would exceed ``max_frames``
    (the paper's "max tokens per batch"), whichever comes first; at least one of the two must be given.
    Without ``rng`` the order is by length (deterministic validation batches).
    """
    if batch_size is None and max_frames is None:
        raise ValueError("make_batches needs batch_size or max_frames")
    lengths = [len(item[1]) for item in items]
    order = sorted(range(len(items)), key=lambda i: (lengths[i], len(items[i][0]), i))
    groups = batch_plan(lengths, batch_size, max_frames, order=order)
    if rng is not None:
        groups = [groups[j] for j in rng.permutation(len(groups))]
    pad = collate_fn or collate
    return [pad([items[i] for i in g], r) for g in groups]


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    """The batch with every tensor on ``device``."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def step_lens(mel_lens: torch.Tensor, r: int) -> torch.Tensor:
    """Decoder steps per utterance, ``ceil(mel_lens / r)``."""
    return torch.div(mel_lens + r - 1, r, rounding_mode="floor")


def model_device(model: torch.nn.Module) -> torch.device:
    """The device the model's parameters live on."""
    return next(model.parameters()).device


# ----------------------------------------------------------------------------------------------------------------
# loss
# ----------------------------------------------------------------------------------------------------------------
def guided_attention_weights(text_lens: torch.Tensor, n_steps: torch.Tensor, max_steps: int, max_text: int,
                             sigma: float) -> torch.Tensor:
    """Tachibana et al.'s penalty ``W [B, S, L]`` (0 on the diagonal, near 1 far from it), 0 outside the lengths."""
    s = torch.arange(max_steps, device=text_lens.device, dtype=torch.float32)[None, :, None]
    l_ = torch.arange(max_text, device=text_lens.device, dtype=torch.float32)[None, None, :]
    ns = n_steps.float()[:, None, None]
    nl = text_lens.float()[:, None, None]
    w = 1.0 - torch.exp(-((l_ / nl - s / ns) ** 2) / (2.0 * sigma**2))
    valid = (s < ns) & (l_ < nl)
    return w * valid


def compute_losses(out: TTSOutput, batch: Batch, cfg: TTSModelConfig) -> dict[str, torch.Tensor]:
    """Scalar losses: ``loss`` (the total that is optimised), ``mel``, ``post``, ``stop``, ``guided``."""
    mels, mel_lens = batch["mels"], batch["mel_lens"]
    t = out.mel.shape[1]
    if mels.shape[1] < t:
        mels = F.pad(mels, (0, 0, 0, t - mels.shape[1]))
    frame_mask = (~lengths_to_padding(mel_lens, t)).float()  # [B, T]
    n_valid = frame_mask.sum() * out.mel.shape[2]
    dist = F.l1_loss if cfg.mel_loss == "l1" else F.mse_loss
    mel_loss = (dist(out.mel, mels, reduction="none") * frame_mask[..., None]).sum() / n_valid
    if out.mel_post is out.mel:
        post_loss = torch.zeros_like(mel_loss)
    else:
        post_loss = (dist(out.mel_post, mels, reduction="none") * frame_mask[..., None]).sum() / n_valid
    stop_target = batch["stop"]
    if stop_target.shape[1] < t:
        stop_target = F.pad(stop_target, (0, t - stop_target.shape[1]))
    pos_weight = torch.tensor(cfg.stop_pos_weight, device=out.stop_logits.device)
    stop_loss = (
        F.binary_cross_entropy_with_logits(out.stop_logits, stop_target, reduction="none", pos_weight=pos_weight)
        * frame_mask
    ).sum() / frame_mask.sum()
    guided = torch.zeros_like(mel_loss)
    if cfg.guided_attn_weight > 0 and out.attn:
        s_max, l_max = out.attn[0].shape[-2:]
        n_steps = step_lens(mel_lens, cfg.r)
        w = guided_attention_weights(batch["text_lens"], n_steps, s_max, l_max, cfg.guided_attn_sigma)
        # mean penalty per valid (step, char) cell and head, then over layers
        n_cells = _valid_mask(batch["text_lens"], n_steps, s_max, l_max).sum().clamp(min=1)
        per_layer = [(a * w[:, None]).sum() / (n_cells * a.shape[1]) for a in out.attn]
        guided = torch.stack(per_layer).mean()
    total = mel_loss + post_loss + stop_loss + cfg.guided_attn_weight * guided
    return {"loss": total, "mel": mel_loss, "post": post_loss, "stop": stop_loss, "guided": guided}


# ----------------------------------------------------------------------------------------------------------------
# optimiser and schedule
# ----------------------------------------------------------------------------------------------------------------
def noam_lr(step: int, hidden: int, scale: float = 2.0, warmup: int = 4000) -> float:
    """The paper's rate ``scale * min(step/warmup, 1) * max(step, warmup)^-0.5 * hidden^-0.5`` (step >= 1)."""
    step = max(int(step), 1)
    return scale * min(step / warmup, 1.0) * max(step, warmup) ** -0.5 * hidden**-0.5


def make_optimizer(model: torch.nn.Module, cfg: TTSModelConfig) -> torch.optim.AdamW:
    """AdamW with the paper's betas (0.9, 0.98); the rate is set per step by :func:`make_scheduler`.

    Uses the fused kernel (CPU and CUDA): with hundreds of small parameter tensors the per-tensor loop of the
    default implementation cost ~30 ms per step on CPU, the fused one ~4 ms.
    """
    kwargs = dict(lr=1.0, betas=(0.9, 0.98), eps=1e-9, weight_decay=cfg.weight_decay)
    try:
        return torch.optim.AdamW(model.parameters(), fused=True, **kwargs)
    except (RuntimeError, ValueError):  # a device/dtype without a fused kernel
        return torch.optim.AdamW(model.parameters(), **kwargs)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TTSModelConfig,
                   start_step: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` whose k-th optimiser step (1-based, counting ``start_step`` earlier ones, e.g. when resuming)
    uses :func:`noam_lr` at step ``start_step + k``. The optimiser's base lr must be 1 (:func:`make_optimizer`)."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", 1.0)
    # LambdaLR passes its epoch counter, which starts at start_step: the counter is 0-based, the schedule 1-based
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda epoch: noam_lr(epoch + 1, cfg.hidden, cfg.lr_scale, cfg.warmup_steps),
        last_epoch=start_step - 1,
    )


# ----------------------------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------------------------
def uniform_arch_sampler(pool: Sequence[Any], seed: int) -> Callable[[], Any]:
    """A callable returning a uniformly drawn member of ``pool`` (seeded; one draw per training batch)."""
    if len(pool) == 0:
        raise ValueError("the arch pool is empty")
    pool = list(pool)
    rng = np.random.default_rng(seed)
    return lambda: pool[int(rng.integers(len(pool)))]


def path_losses(model: TTSNet, batch: Batch, arch: Any, cfg: TTSModelConfig) -> dict[str, torch.Tensor]:
    """Teacher-forced losses of path ``arch`` on ``batch`` (already on the model's device): the training objective."""
    out = model(batch["chars"], batch["mels"], arch, text_lens=batch["text_lens"])
    return compute_losses(out, batch, cfg)


def train_step(model: TTSNet, batch: Batch, arch: Any, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler | None, cfg: TTSModelConfig,
               losses: Callable[..., dict[str, torch.Tensor]] | None = None) -> dict[str, float]:
    """One optimisation step along ``arch`` (``None`` for a child's own arch). Returns the losses and grad norm.

    ``losses(model, batch, arch, cfg)`` is the backbone's objective (default: this module's ``path_losses``).
    The step itself is the project's one ``utils.training_step.train_step`` (the supernet replicas take the same):
    gradients reset to ``None``, so ops off the path get no update and no weight decay.
    """
    batch = to_device(batch, model_device(model))
    objective = losses or path_losses
    return optimisation_step(model, optimizer, scheduler, lambda: objective(model, batch, arch, cfg),
                             cfg.clip_norm)


def _cycle(batches: Iterable[Batch]) -> Iterator[Batch]:
    cache = list(batches)
    if not cache:
        raise ValueError("no training batches")
    while True:
        yield from cache


def train_steps(
    model: TTSNet,
    batches: Iterable[Batch] | Iterator[Batch],
    n_steps: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    cfg: TTSModelConfig,
    arch_sampler: Callable[[], Any] | None = None,
    time_budget_s: float | None = None,
    losses: Callable[..., dict[str, torch.Tensor]] | None = None,
) -> dict[str, float]:
    """Train ``n_steps`` steps (or until ``time_budget_s``), cycling over ``batches`` if it is a list.

    Supernet: pass ``arch_sampler`` (e.g. :func:`uniform_arch_sampler` over the current pool): one arch per batch,
    single-path. Child: leave it ``None``. Returns the mean of each loss over the steps run, ``steps``,
    ``seconds`` and ``ms_per_step``.
    """
    it = _cycle(batches) if isinstance(batches, (list, tuple)) else iter(batches)
    sums: dict[str, float] = {}
    done = 0
    t0 = time.perf_counter()
    for _ in range(int(n_steps)):
        if time_budget_s is not None and time.perf_counter() - t0 >= time_budget_s:
            break
        arch = arch_sampler() if arch_sampler is not None else None
        res = train_step(model, next(it), arch, optimizer, scheduler, cfg, losses)
        for k, v in res.items():
            sums[k] = sums.get(k, 0.0) + v
        done += 1
    seconds = time.perf_counter() - t0
    summary = {k: v / max(done, 1) for k, v in sums.items()}
    summary.update(steps=float(done), seconds=seconds, ms_per_step=1000.0 * seconds / max(done, 1))
    return summary


# ----------------------------------------------------------------------------------------------------------------
# alignment metrics
# ----------------------------------------------------------------------------------------------------------------
def _valid_mask(text_lens: torch.Tensor, n_steps: torch.Tensor, s_max: int, l_max: int) -> torch.Tensor:
    s = torch.arange(s_max, device=text_lens.device)[None, :, None]
    l_ = torch.arange(l_max, device=text_lens.device)[None, None, :]
    return (s < n_steps[:, None, None]) & (l_ < text_lens[:, None, None])


def select_best_attention(attns: Sequence[torch.Tensor], text_lens: torch.Tensor,
                          n_steps: torch.Tensor) -> torch.Tensor:
    """Per utterance, the most focused head of any layer (the authors' ``select_attn``): ``[B, S, L]``.

    Focus of a head = sum over valid decoder steps of its maximum weight over valid characters.
    """
    heads = torch.cat([a.float() for a in attns], dim=1)  # [B, H_total, S, L]
    mask = _valid_mask(text_lens, n_steps, heads.shape[2], heads.shape[3])[:, None]
    focus = (heads * mask).amax(-1).sum(-1)  # [B, H_total]
    best = focus.argmax(1)
    return heads[torch.arange(heads.shape[0], device=heads.device), best]


def diagonal_focus_rate(attn: torch.Tensor, text_lens: torch.Tensor, n_steps: torch.Tensor,
                        band_factor: float = 5.0, band_width: float = 50.0) -> torch.Tensor:
    """DFR per utterance ``[B]`` of ``attn [B, S, L]`` (decoder steps × characters), as the authors compute it.

    Band: ``|l - k*s| <= k*w`` with ``k = L/S`` and ``w = min(S/band_factor, band_width)``; DFR = attention mass
    in the band / attention mass over the valid ``S × L`` region.
    """
    b, s_max, l_max = attn.shape
    k = (text_lens.float() / n_steps.float().clamp(min=1))[:, None, None]
    width = torch.minimum(n_steps.float() / band_factor, torch.full_like(n_steps.float(), band_width))[:, None, None]
    s = torch.arange(s_max, device=attn.device, dtype=torch.float32)[None, :, None]
    l_ = torch.arange(l_max, device=attn.device, dtype=torch.float32)[None, None, :]
    cond = l_ - k * s
    band = (cond >= -k * width) & (cond <= k * width)
    a = attn.float() * _valid_mask(text_lens, n_steps, s_max, l_max)
    return (a * band).sum((1, 2)) / a.sum((1, 2)).clamp(min=1e-12)


def focus_rate(attn: torch.Tensor, text_lens: torch.Tensor, n_steps: torch.Tensor) -> torch.Tensor:
    """The authors' focus rate per utterance: mean over valid steps of the max attention weight."""
    a = attn.float() * _valid_mask(text_lens, n_steps, attn.shape[1], attn.shape[2])
    return a.amax(-1).sum(-1) / a.sum((1, 2)).clamp(min=1e-12)


def word_spans(ids: Sequence[int] | np.ndarray | torch.Tensor, separator_ids: Iterable[int]) -> list[tuple[int, int]]:
    """``[start, end)`` character spans of the words in ``ids``: maximal runs of non-separator tokens
    (pass the ids of space, punctuation, EOS and pad as ``separator_ids``)."""
    seps = {int(t) for t in separator_ids}
    spans: list[tuple[int, int]] = []
    start = None
    for i, t in enumerate(np.asarray(ids).reshape(-1).tolist()):
        if int(t) in seps:
            if start is not None:
                spans.append((start, i))
                start = None
        elif start is None:
            start = i
    if start is not None:
        spans.append((start, len(np.asarray(ids).reshape(-1))))
    return spans


def alignment_errors(
    attn: torch.Tensor | np.ndarray,
    text_len: int | None = None,
    n_steps: int | None = None,
    words: Sequence[tuple[int, int]] | None = None,
    cover_threshold: float = 0.1,
    back_tolerance: float = 3.0,
    jump_tolerance: float = 5.0,
) -> dict[str, Any]:
    """Robustness flags from one alignment ``attn [S, L]`` (decoder steps × characters; rows sum to 1).

    * **skips**: a unit is skipped when no decoder step gives any of its characters a weight of at least
      ``cover_threshold`` (the authors' "phone coverage" idea). Units are the ``words`` spans if given (see
      :func:`word_spans`), else single characters. Prefer words: even a well-aligned character model leaves ~20 %
      of characters (silent letters, doubled consonants, spaces) below 0.1 in its most focused head, while whole
      words are missed only when speech is really dropped. The tail of a text that was never reached counts too;
    * **repeats**: episodes where the attention centroid ``sum_l l * a[s, l]`` falls more than ``back_tolerance``
      characters behind its running maximum (re-reading; the centroid is used instead of the argmax because the
      argmax of a diagonal-but-smeared alignment hops back and forth by a character or two);
    * **jumps**: steps where the centroid advances by more than ``jump_tolerance`` characters (a normal step
      advances ~0.5 characters at ``r = 3``).

    Returns ``skipped`` (unit indices), ``n_skipped``, ``repeats``, ``jumps``, ``ok`` (none of the three),
    ``coverage`` (per-character max weight) and ``centroid`` (per step).
    """
    a = torch.as_tensor(np.asarray(attn) if not torch.is_tensor(attn) else attn).float()
    if a.ndim != 2:
        raise ValueError(f"alignment_errors takes one [steps, chars] alignment, got shape {tuple(a.shape)}")
    s_len = a.shape[0] if n_steps is None else int(n_steps)
    l_len = a.shape[1] if text_len is None else int(text_len)
    if s_len < 1 or l_len < 1:
        raise ValueError(f"empty alignment: {s_len} steps x {l_len} characters")
    a = a[:s_len, :l_len]
    coverage = a.max(0).values
    units = list(words) if words is not None else [(i, i + 1) for i in range(l_len)]
    for lo, hi in units:
        if not 0 <= lo < hi <= l_len:
            raise ValueError(f"word span ({lo}, {hi}) outside the {l_len} characters")
    skipped = [k for k, (lo, hi) in enumerate(units) if float(coverage[lo:hi].max()) < cover_threshold]
    centroid = (a * torch.arange(l_len, dtype=torch.float32)).sum(1) / a.sum(1).clamp(min=1e-12)
    behind = (torch.cummax(centroid, 0).values - centroid) > back_tolerance
    repeats = int((behind[1:] & ~behind[:-1]).sum()) + int(behind[0])
    jumps = int(((centroid[1:] - centroid[:-1]) > jump_tolerance).sum())
    return {
        "skipped": skipped,
        "n_skipped": len(skipped),
        "repeats": repeats,
        "jumps": jumps,
        "ok": not skipped and repeats == 0 and jumps == 0,
        "coverage": coverage.tolist(),
        "centroid": centroid.tolist(),
    }


# ----------------------------------------------------------------------------------------------------------------
# scoring
# ----------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block with torch's RNG seeded to ``seed`` and restore the previous RNG state afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def evaluate_arch(model: TTSNet, arch: Any, batches: Sequence[Batch], cfg: TTSModelConfig,
                  seed: int = 0) -> dict[str, float]:
    """Teacher-forced validation of one path: mean DFR and focus rate over utterances, mean losses over batches
    (weighted by utterances). Eval mode (no layer dropout); the prenet dropout, which stays on at inference by
    default, draws from an RNG seeded with ``seed``, so every arch sees the same masks."""
    model.eval()
    device = model_device(model)
    dfr_sum = fr_sum = 0.0
    n_utts = 0
    loss_sums: dict[str, float] = {}
    with seeded(seed, device):
        for batch in batches:
            batch = to_device(batch, device)
            out = model(batch["chars"], batch["mels"], arch, text_lens=batch["text_lens"])
            losses = compute_losses(out, batch, cfg)
            steps = step_lens(batch["mel_lens"], cfg.r)
            best = select_best_attention(out.attn, batch["text_lens"], steps)
            b = batch["chars"].shape[0]
            dfr_sum += float(diagonal_focus_rate(best, batch["text_lens"], steps).sum())
            fr_sum += float(focus_rate(best, batch["text_lens"], steps).sum())
            for k, v in losses.items():
                loss_sums[k] = loss_sums.get(k, 0.0) + float(v) * b
            n_utts += b
    if n_utts == 0:
        raise ValueError("no validation batches")
    result = {"dfr": dfr_sum / n_utts, "fr": fr_sum / n_utts, "n_utts": float(n_utts)}
    result.update({("loss" if k == "loss" else f"loss_{k}"): v / n_utts for k, v in loss_sums.items()})
    return result


@torch.no_grad()
def evaluate_arch_free_running(model: TTSNet, arch: Any, batches: Sequence[Batch], cfg: TTSModelConfig,
                               seed: int = 0, max_len_ratio: float = 2.0,
                               separator_ids: Iterable[int] | None = None) -> dict[str, float]:
    """Free-running validation of one path (the paper's setting): DFR of the generated alignment, the share of
    utterances whose stop token fired, and the share with a clean alignment (:func:`alignment_errors`, at word
    level when ``separator_ids`` — space, punctuation, EOS — are given, else at character level, which is strict).
    Generation is capped at ``max_len_ratio`` × the true length."""
    seps = None if separator_ids is None else list(separator_ids)
    dfrs, stopped, clean = [], [], []
    for batch in batches:
        max_frames = int(float(batch["mel_lens"].max()) * max_len_ratio) + cfg.r
        res = synthesize(model, arch, batch["chars"], max_frames, text_lens=batch["text_lens"], seed=seed)
        for i in range(batch["chars"].shape[0]):
            a = res.attn[i]
            tl, ns = int(batch["text_lens"][i]), int(res.n_steps[i])
            dfrs.append(float(diagonal_focus_rate(a[None], torch.tensor([tl]), torch.tensor([ns]))[0]))
            stopped.append(res.stop_steps[i] is not None)
            words = None if seps is None else word_spans(batch["chars"][i, :tl], seps)
            clean.append(alignment_errors(a, text_len=tl, n_steps=ns, words=words or None)["ok"])
    if not dfrs:
        raise ValueError("no validation batches")
    return {"dfr": float(np.mean(dfrs)), "stop_rate": float(np.mean(stopped)),
            "clean_rate": float(np.mean(clean)), "n_utts": float(len(dfrs))}


def score_archs(
    supernet: TTSNet,
    archs: Sequence[Any],
    valid_batches: Sequence[Batch],
    cfg: TTSModelConfig,
    seed: int = 0,
    mode: str = "teacher_forced",
    separator_ids: Iterable[int] | None = None,
) -> list[dict[str, float]]:
    """Score each arch of ``archs`` on the shared supernet weights: one dict per arch, in order, with ``dfr``
    (the search reward), ``fr`` and the validation ``loss`` (teacher-forced) or ``stop_rate``/``clean_rate``
    (``mode="free_running"``; pass the text's space/punctuation/EOS ids as ``separator_ids`` for word-level skip
    detection). Eval mode, no gradients, the same dropout seed for every arch."""
    if mode not in ("teacher_forced", "free_running"):
        raise ValueError(f"mode must be 'teacher_forced' or 'free_running', got {mode!r}")
    if mode == "teacher_forced":
        return [evaluate_arch(supernet, arch, valid_batches, cfg, seed=seed) for arch in archs]
    return [evaluate_arch_free_running(supernet, arch, valid_batches, cfg, seed=seed, separator_ids=separator_ids)
            for arch in archs]


# ----------------------------------------------------------------------------------------------------------------
# free-running inference
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class SynthesisResult:
    """Output of :func:`synthesize` for a batch of B texts."""

    mels: torch.Tensor  # [B, T, n_mels] after the postnet; frames past lengths[i] are zero
    lengths: list[int]  # frames per utterance
    stop_steps: list[int | None]  # decoder step at which the stop token fired; None when it never did
    n_steps: list[int]  # decoder steps run per utterance (stop step + 1, or the cap)
    attn: list[torch.Tensor]  # per utterance the most focused enc-dec alignment [n_steps, text_len]


@torch.no_grad()
def synthesize(
    model: TTSNet,
    arch: Any,
    chars: torch.Tensor,
    max_frames: int,
    text_lens: torch.Tensor | None = None,
    stop_threshold: float = 0.5,
    seed: int = 0,
) -> SynthesisResult:
    """Autoregressive generation from ``chars [B, L]`` (or ``[L]``) along ``arch`` (``None`` for a child).

    Each step feeds the last generated frame back; an utterance ends at the first frame whose stop probability
    exceeds ``stop_threshold`` (that frame is kept), or at ``max_frames``. The decoder is recomputed over the
    whole prefix each step (no incremental state: exact and simple). Eval mode; prenet dropout (on by default,
    see the model) is seeded with ``seed``.
    """
    model.eval()
    cfg = model.cfg
    device = model_device(model)
    if chars.ndim == 1:
        chars = chars[None]
    chars = chars.to(device)
    if text_lens is None:
        text_lens = (chars != 0).sum(1)
    text_lens = text_lens.to(device)
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    b, r = chars.shape[0], cfg.r
    max_steps = -(-int(max_frames) // r)
    stop_steps: list[int | None] = [None] * b
    lengths = [0] * b
    with seeded(seed, device):
        memory, padding = model.encode(chars, text_lens, arch)
        dec_in = torch.zeros(b, 1, cfg.n_mels, device=device)
        mel_steps, attn_steps = [], None
        for step in range(max_steps):
            mel, stop, attns = model.decode(memory, padding, dec_in, arch)
            new = mel[:, -r:]  # [B, r, n]
            mel_steps.append(new)
            attn_steps = attns
            probs = torch.sigmoid(stop[:, -r:])
            for i in range(b):
                if stop_steps[i] is not None:
                    continue
                fired = (probs[i] > stop_threshold).nonzero()
                if len(fired):
                    stop_steps[i] = step
                    lengths[i] = min(step * r + int(fired[0]) + 1, max_frames)
            if all(s is not None for s in stop_steps):
                break
            dec_in = torch.cat([dec_in, new[:, -1:]], dim=1)
        mels = torch.cat(mel_steps, dim=1)
        mels = model.apply_postnet(mels)
    n_run = len(mel_steps)
    for i in range(b):
        if stop_steps[i] is None:
            lengths[i] = min(n_run * r, max_frames)
    mels = mels[:, : max(lengths)].clone()
    for i in range(b):
        mels[i, lengths[i] :] = 0.0
    n_steps = [(s + 1) if s is not None else n_run for s in stop_steps]
    best = select_best_attention(attn_steps, text_lens, torch.tensor(n_steps, device=device))
    attn = [best[i, : n_steps[i], : int(text_lens[i])].cpu() for i in range(b)]
    return SynthesisResult(mels=mels.cpu(), lengths=lengths, stop_steps=stop_steps, n_steps=n_steps, attn=attn)


__all__ = [
    "SynthesisResult",
    "alignment_errors",
    "collate",
    "compute_losses",
    "decoder_inputs",
    "diagonal_focus_rate",
    "evaluate_arch",
    "evaluate_arch_free_running",
    "focus_rate",
    "guided_attention_weights",
    "make_batches",
    "make_optimizer",
    "make_scheduler",
    "noam_lr",
    "path_losses",
    "score_archs",
    "select_best_attention",
    "seeded",
    "step_lens",
    "synthesize",
    "to_device",
    "train_step",
    "train_steps",
    "uniform_arch_sampler",
    "word_spans",
]
