"""The MBConv supernet as a ``SupernetBackend``: what the generic supernet actors need to train and score it.

The backend carries its data as an :class:`~seminas_ray.tasks.imagenet.data.ImageSource` per split (uint8 arrays
for Fashion-MNIST, file lists for an ImageFolder tree), shipped once to every replica. Global batch ``i`` is a fixed
slice of one fixed permutation of the training images, so every replica agrees on it; rank ``r`` takes
``[r::world_size]`` of it (augmented with a generator seeded by the batch, the rank and the replica's call count).
Scoring has no randomness at all: BatchNorm recalibrated per path on the first ``calib_batches`` global batches
(eval transform), the whole fixed validation split, eval mode; so sharded scoring equals single-replica scoring.
Reward = validation top-1.
"""
from __future__ import annotations

import math
from typing import Any
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from seminas_ray.distributed.supernet_backend import Replica
from seminas_ray.distributed.supernet_backend import SupernetBackend
from seminas_ray.spaces.mbconv import MBConvSpace
from seminas_ray.tasks.imagenet.data import ImageSource
from seminas_ray.tasks.imagenet.supernet import MBConvSupernet
from seminas_ray.tasks.imagenet.supernet import recalibrated


def to_tensor(images: np.ndarray, mean: Sequence[float], std: Sequence[float], device: str) -> torch.Tensor:
    """uint8 ``(n, h, w, 3)`` -> normalised float ``(n, 3, h, w)`` on ``device``."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=device).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous()


def no_decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Parameter groups with weight decay on conv/linear weights only (none on BatchNorm and biases), as the authors'."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    rest = [p for n, p in model.named_parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


class ImageSupernetBackend(SupernetBackend):
    """Single-path training (label-smoothed cross entropy) and top-1 scoring of the MBConv supernet.

    Args:
        train, valid: the search's training split and its fixed held-out validation split.
        space: the supernet's ``mbconv`` space (search widths at the run's geometry; no budget needed here).
        stem_stride: 2, or 1 for small images (``geometry.py``).
        batch_size: images per *global* batch (split over the replicas); the tail of the training set is dropped.
        lr, momentum, weight_decay, label_smoothing, clip_norm: SGD (Nesterov) as the authors' search.
        total_steps: length of a cosine learning-rate decay (0: constant rate).
        calib_batches: whole global batches that recalibrate a path's BatchNorm statistics before it is scored.
        score_batch_size: validation images per forward pass when scoring.
        augment: augment the training batches (the data source's training transform).
        order_seed: the fixed permutation that assigns training images to global batches.
    """

    name = "mbconv"
    reward = "top1"
    mode = "max"

    def __init__(self, train: ImageSource, valid: ImageSource, space: MBConvSpace, *, stem_stride: int = 2,
                 batch_size: int = 64, lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 4e-5,
                 label_smoothing: float = 0.1, clip_norm: float = 5.0, total_steps: int = 0, calib_batches: int = 2,
                 score_batch_size: int = 250, augment: bool = True, order_seed: int = 0) -> None:
        if not 0 < batch_size <= len(train):
            raise ValueError(f"batch size {batch_size} does not fit {len(train)} training images")
        if not len(valid):
            raise ValueError("the validation split is empty")
        self.train_source, self.valid_source, self.space, self.stem_stride = train, valid, space, int(stem_stride)
        self.batch_size, self.lr, self.momentum, self.weight_decay = batch_size, lr, momentum, weight_decay
        self.label_smoothing, self.clip_norm, self.total_steps = label_smoothing, clip_norm, total_steps
        self.calib_batches = max(1, min(calib_batches, self.num_batches()))
        self.score_batch_size, self.augment = score_batch_size, augment
        self.order_seed = int(order_seed)
        self.order = np.random.default_rng([order_seed, 12]).permutation(len(train))
        self._cache: dict[Any, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = {}  # tensors are rebuilt in each replica, never pickled
        return state

    def setup(self, rank: int, world_size: int, device: str) -> None:
        """A cache of its own: the worker holds a shallow copy, which would otherwise share the driver's dict."""
        self._cache = {}

    # -- replicas -------------------------------------------------------------------------------------
    def build(self, seed: int, device: str) -> Replica:
        """Supernet from ``seed``, SGD with Nesterov momentum, an optional cosine schedule over ``total_steps``."""
        torch.manual_seed(int(seed))
        model = MBConvSupernet(self.space, self.stem_stride).to(device)
        optimizer = torch.optim.SGD(no_decay_groups(model, self.weight_decay), lr=self.lr, momentum=self.momentum,
                                    nesterov=self.momentum > 0)
        return Replica(model=model, optimizer=optimizer, scheduler=self._scheduler(optimizer, 0),
                       clip_norm=self.clip_norm)

    def _lr_factor(self, step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))

    def _scheduler(self, optimizer: torch.optim.Optimizer, step: int) -> Any:
        if self.total_steps <= 0:
            return None
        return torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_factor, last_epoch=step - 1 if step else -1)

    def resume_scheduler(self, replica: Replica, step: int) -> None:
        """The cosine schedule continued from global ``step`` (it reads ``initial_lr`` from the optimiser)."""
        if replica.scheduler is not None:
            replica.scheduler = self._scheduler(replica.optimizer, int(step))

    def parse_arch(self, key: str) -> tuple[int, ...]:
        """The 21 tokens of a layer string (``ValueError`` naming the problem for a malformed one)."""
        return self.space.coerce(str(key)).tokens

    # -- data -----------------------------------------------------------------------------------------
    def num_batches(self) -> int:
        return len(self.train_source) // self.batch_size  # the tail that does not fill a batch is left out

    def _global(self, index: int) -> np.ndarray:
        if not 0 <= index < self.num_batches():
            raise IndexError(f"global batch {index} outside 0..{self.num_batches() - 1}")
        return self.order[index * self.batch_size:(index + 1) * self.batch_size]

    def _tensors(self, source: ImageSource, members: np.ndarray, train: bool, device: str,
                 rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_tensor(source.load(members, train, rng), source.mean, source.std, device)
        return x, torch.from_numpy(source.labels[members]).to(device)

    def batch(self, index: int, rank: int, world_size: int, device: str,
              step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels of rank ``rank``'s shard ``[rank::world_size]`` of global batch ``index``; the
        augmentation of global step ``step`` (seeded by it: a resumed supernet draws what an uninterrupted one
        does, and a batch seen again in a later epoch is augmented anew)."""
        members = self._global(int(index))[rank::world_size]
        if self.augment:
            rng = np.random.default_rng([self.order_seed, int(index), int(rank), int(step)])
            return self._tensors(self.train_source, members, True, device, rng)
        key = ("train", int(index), int(rank), int(world_size), str(device))
        if key not in self._cache:
            self._cache[key] = self._tensors(self.train_source, members, False, device)
        return self._cache[key]

    def _calibration(self, device: str) -> list[torch.Tensor]:
        """The first ``calib_batches`` whole global batches, eval transform (the same on every replica)."""
        key = ("calib", str(device))
        if key not in self._cache:
            self._cache[key] = [self._tensors(self.train_source, self._global(i), False, device)[0]
                                for i in range(self.calib_batches)]
        return self._cache[key]

    def _validation(self, device: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        key = ("valid", str(device))
        if key not in self._cache:
            n, b = len(self.valid_source), self.score_batch_size
            self._cache[key] = [self._tensors(self.valid_source, np.arange(i, min(n, i + b)), False, device)
                                for i in range(0, n, b)]
        return self._cache[key]

    # -- training and scoring -------------------------------------------------------------------------
    def loss(self, model: torch.nn.Module, batch: Any, arch: Any) -> dict[str, torch.Tensor]:
        """Label-smoothed cross entropy of path ``arch`` (and its top-1 on the batch, for the logs)."""
        x, y = batch
        model.train()
        logits = model(x, arch)
        return {"loss": F.cross_entropy(logits, y, label_smoothing=self.label_smoothing),
                "top1": (logits.detach().argmax(1) == y).float().mean()}

    def path_parameters(self, model: torch.nn.Module, arch: Any) -> list[torch.nn.Parameter]:
        return model.path_parameters(arch)

    def score(self, model: torch.nn.Module, archs: Sequence[Any], device: str) -> list[dict[str, float]]:
        """Top-1 accuracy and mean cross entropy on the validation split, BatchNorm recalibrated per path."""
        calibration, validation = self._calibration(device), self._validation(device)
        n = len(self.valid_source)
        results = []
        for arch in archs:
            correct, loss_sum = 0, 0.0
            with recalibrated(model, arch, calibration), torch.no_grad():
                for x, y in validation:
                    logits = model(x, arch)
                    correct += int((logits.argmax(1) == y).sum())
                    loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            results.append({"top1": correct / n, "loss": loss_sum / n})
        return results

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "train_images": len(self.train_source), "valid_images": len(self.valid_source),
                "input_size": self.train_source.size, "stem_stride": self.stem_stride,
                "global_batch": self.batch_size, "batches_per_epoch": self.num_batches(),
                "widths": list(self.space.widths.stages), "width_mult": self.space.width_mult}


__all__ = ["ImageSupernetBackend", "no_decay_groups", "to_tensor"]
