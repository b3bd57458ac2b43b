"""The TTS backbones: two model families over the one 11-op layer space, each one registry entry.

* ``transformer-tts`` (``model.py`` / ``training.py``): the paper's autoregressive Transformer TTS, character input,
  encoder-decoder attention; reward: the diagonal focus rate (DFR) of that attention, higher is better. Used by the
  ``paper`` preset.
* ``fastspeech`` (``duration_model.py`` / ``duration_training.py``): non-autoregressive, phoneme input with eSpeak's
  exact durations (LightSpeech's search space shape); reward: the validation loss on the shared weights, lower is
  better. The embedded corpus's default: it is the one whose speech a recogniser can follow after minutes of CPU
  training.

The supernet backend, the final evaluation and the task ask the backbone for what differs (model classes, batches,
loss, score, reward direction) and share everything else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import Callable
from typing import Sequence

import numpy as np
import torch

from seminas_ray.tasks.tts import duration_training as dt
from seminas_ray.tasks.tts import training as ar
from seminas_ray.tasks.tts.duration_model import DurationChild
from seminas_ray.tasks.tts.duration_model import DurationSupernet
from seminas_ray.tasks.tts.model import BACKBONES as BACKBONE_NAMES
from seminas_ray.tasks.tts.model import ChildModel
from seminas_ray.tasks.tts.model import Supernet
from seminas_ray.tasks.tts.model import TTSModelConfig

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Backbone:
    """What one model family supplies to the search and the final evaluation."""

    name: str
    input_kind: str                      # "characters" or "phonemes"
    reward: str                          # the score key told to SemiNAS
    mode: str                            # "max" or "min"
    reward_label: str                    # for reports and plots
    supernet: Callable[[TTSModelConfig], torch.nn.Module]
    child: Callable[[Any, TTSModelConfig], torch.nn.Module]
    collate: Callable[..., Batch]        # (items, r) -> batch
    losses: Callable[..., dict[str, torch.Tensor]]  # (model, batch, arch, cfg) -> losses (``loss`` optimised)
    loss_keys: tuple[str, ...]           # the losses a training log keeps

    def batches(self, items: Sequence[Any], cfg: TTSModelConfig, batch_size: int | None, max_frames: int | None,
                rng: np.random.Generator | None = None) -> list[Batch]:
        """Length-bucketed batches of ``items`` (shuffled batch order with ``rng``), padded by ``self.collate``."""
        return ar.make_batches(items, cfg.r, batch_size=batch_size, max_frames=max_frames, rng=rng,
                               collate_fn=self.collate)

    def score(self, model: torch.nn.Module, archs: Sequence[Any], valid_batches: Sequence[Batch],
              cfg: TTSModelConfig, seed: int = 0, mode: str = "teacher_forced",
              separator_ids: Sequence[int] | None = None) -> list[dict[str, float]]:
        """One score dict per arch with the reward key (and diagnostics), on ``model``'s shared weights."""
        if self.name == "fastspeech":
            return dt.score_duration_archs(model, archs, valid_batches, cfg, seed=seed)
        return ar.score_archs(model, list(archs), valid_batches, cfg, seed=seed, mode=mode,
                              separator_ids=separator_ids)

    def better(self, a: float, b: float) -> bool:
        """Whether reward ``a`` is better than ``b``."""
        return a > b if self.mode == "max" else a < b


BACKBONES: dict[str, Backbone] = {
    "transformer-tts": Backbone(
        name="transformer-tts", input_kind="characters", reward="dfr", mode="max",
        reward_label="supernet DFR (reward)", supernet=Supernet, child=ChildModel, collate=ar.collate,
        losses=ar.path_losses, loss_keys=("loss", "mel", "stop", "guided")),
    "fastspeech": Backbone(
        name="fastspeech", input_kind="phonemes", reward="valid_loss", mode="min",
        reward_label="supernet validation loss (reward, lower is better)", supernet=DurationSupernet,
        child=DurationChild, collate=dt.collate_aligned, losses=dt.duration_path_losses,
        loss_keys=("loss", "mel", "post", "duration")),
}
assert tuple(BACKBONES) == BACKBONE_NAMES


def get_backbone(name: str) -> Backbone:
    """The backbone called ``name``; ``ValueError`` naming the choices otherwise."""
    if name not in BACKBONES:
        raise ValueError(f"unknown TTS backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


__all__ = ["BACKBONES", "Backbone", "get_backbone"]
