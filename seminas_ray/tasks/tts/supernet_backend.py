"""The TTS search's supernet as the generic supernet actors see it (``distributed.supernet_backend``).

The Ray layer owns placement, the process group, the all-reduce, sharded scoring and checkpoints; this backend
supplies the TTS parts through the model config's backbone (``backbones.py``): the weight-sharing supernet
(``model.Supernet`` or ``duration_model.DurationSupernet``), its AdamW + Noam schedule, length-bucketed global
batches of items (each replica collates every ``world_size``-th utterance of a batch), the training loss, and the
reward: the diagonal focus rate on the validation set (transformer-tts, higher is better) or the validation loss
(fastspeech, lower is better), with one fixed dropout seed for every architecture, so sharded scoring equals one
replica's scoring.
"""
from __future__ import annotations

from typing import Any
from typing import Sequence

import numpy as np
import torch

from seminas_ray.distributed.supernet_backend import Replica
from seminas_ray.distributed.supernet_backend import SupernetBackend
from seminas_ray.spaces.tts import parse_arch
from seminas_ray.tasks.tts.backbones import get_backbone
from seminas_ray.tasks.tts.model import TTSModelConfig
from seminas_ray.tasks.tts.packing import unpack_items
from seminas_ray.tasks.tts.training import Batch
from seminas_ray.tasks.tts.training import make_optimizer
from seminas_ray.tasks.tts.training import make_scheduler
from seminas_ray.tasks.tts.training import to_device
from seminas_ray.utils.batching import batch_plan


class TTSSupernetBackend(SupernetBackend):
    """TTS supernet of the config's backbone (reward ``dfr`` maximised, or ``valid_loss`` minimised).

    Args:
        model: ``TTSModelConfig.to_dict()`` of the supernet.
        train / valid: ``packing.pack_items`` dicts (numpy only: shipped once through the object store).
        batch_size / max_frames: the *global* batch (utterances / padded frames); with ``k`` replicas each takes
            every k-th utterance of it, so the optimisation does not depend on the number of replicas.
        valid_batch_size: utterances per scoring batch.
        score_mode: ``"teacher_forced"`` or ``"free_running"`` (``training.score_archs``).
        separator_ids: word separators for free-running skip detection (``text.separator_ids()``).
        score_seed: the dropout seed every scored architecture uses.
    """

    name = "tts"

    def __init__(self, model: dict[str, Any], train: dict[str, np.ndarray], valid: dict[str, np.ndarray], *,
                 batch_size: int | None = 16, max_frames: int | None = None, valid_batch_size: int = 16,
                 score_mode: str = "teacher_forced", separator_ids: Sequence[int] = (),
                 score_seed: int = 0) -> None:
        if score_mode not in ("teacher_forced", "free_running"):
            raise ValueError(f"score_mode must be 'teacher_forced' or 'free_running', got {score_mode!r}")
        self.cfg = TTSModelConfig.from_dict(dict(model))
        self.backbone = get_backbone(self.cfg.backbone)
        self.reward, self.mode = self.backbone.reward, self.backbone.mode
        self.train_data, self.valid_data = train, valid
        self.batch_size, self.max_frames, self.valid_batch_size = batch_size, max_frames, valid_batch_size
        self.score_mode, self.separator_ids, self.score_seed = score_mode, tuple(separator_ids), int(score_seed)
        self.items: list[tuple[Any, ...]] = []
        self.plan: list[list[int]] = []
        self.valid_batches: list[Batch] = []
        self._shards: dict[int, Batch] = {}

    def setup(self, rank: int, world_size: int, device: str) -> None:
        """Unpack the data and plan the global batches (every rank gets at least one utterance of each)."""
        self.items = unpack_items(self.train_data)
        self.plan = batch_plan([len(item[1]) for item in self.items], self.batch_size, self.max_frames, world_size)
        self.valid_batches = self.backbone.batches(unpack_items(self.valid_data), self.cfg,
                                                   batch_size=self.valid_batch_size, max_frames=None)
        self._shards = {}

    def build(self, seed: int, device: str) -> Replica:
        """The supernet (weights from torch's RNG, which the caller seeded), AdamW and the Noam schedule."""
        model = self.backbone.supernet(self.cfg).to(torch.device(device))
        optimizer = make_optimizer(model, self.cfg)
        return Replica(model, optimizer, make_scheduler(optimizer, self.cfg), self.cfg.clip_norm)

    def parse_arch(self, key: str) -> Any:
        return parse_arch(key)

    def num_batches(self) -> int:
        return len(self.plan)

    def batch(self, index: int, rank: int, world_size: int, device: str, step: int = 0) -> Batch:
        """Every ``world_size``-th utterance of global batch ``index``, collated once and kept on ``device``."""
        if index not in self._shards:
            members = self.plan[index][rank::world_size]
            self._shards[index] = to_device(self.backbone.collate([self.items[i] for i in members], self.cfg.r),
                                            device)
        return self._shards[index]

    def loss(self, model: torch.nn.Module, batch: Batch, arch: Any) -> dict[str, torch.Tensor]:
        return self.backbone.losses(model, batch, arch, self.cfg)

    def path_parameters(self, model: torch.nn.Module, arch: Any) -> list[torch.nn.Parameter]:
        """The shared parts and the chosen op of every layer (the rest of the supernet gets no gradient)."""
        names = model.path_parameter_names(arch)
        return [p for n, p in model.named_parameters() if n in names]

    def score(self, model: torch.nn.Module, archs: Sequence[Any], device: str) -> list[dict[str, float]]:
        """The reward and diagnostics of each path, in order (DFR, focus rate and validation loss, or stop/clean
        rates when free-running; validation losses for fastspeech)."""
        if not archs:
            return []
        return self.backbone.score(model, list(archs), self.valid_batches, self.cfg, seed=self.score_seed,
                                   mode=self.score_mode, separator_ids=self.separator_ids or None)

    def resume_scheduler(self, replica: Replica, step: int) -> None:
        """The Noam schedule continues at global step ``step`` (its learning rate depends on the step)."""
        replica.scheduler = make_scheduler(replica.optimizer, self.cfg, start_step=step)

    def describe(self) -> dict[str, Any]:
        n_valid = len(self.valid_data["char_offsets"]) - 1
        n_train = len(self.items) if self.items else len(self.train_data["char_offsets"]) - 1
        out: dict[str, Any] = {"name": self.name, "backbone": self.backbone.name, "reward": self.reward,
                               "mode": self.mode, "train_utterances": n_train, "valid_utterances": n_valid,
                               "score_mode": self.score_mode}
        if self.plan:
            out["global_batches"] = len(self.plan)
        return out


__all__ = ["TTSSupernetBackend"]
