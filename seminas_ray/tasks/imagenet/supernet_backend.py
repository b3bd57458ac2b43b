"""The image-classification supernet as a ``SupernetBackend``: what the generic supernet actors need to train and
score the MBConv supernet of ``supernet.py`` on a small labelled image set (today: real Fashion-MNIST images).

The backend carries its data as uint8 numpy arrays (shipped once to every replica) and turns them into tensors on
demand. Global batch ``i`` is a fixed slice of one fixed permutation of the training images, so every replica agrees
on it; rank ``r`` takes ``[r::world_size]`` of it. Scoring has no randomness at all (fixed calibration batches for
BatchNorm, fixed validation split, eval mode), so sharded scoring equals single-replica scoring.
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
from seminas_ray.tasks.imagenet import fashion_mnist
from seminas_ray.tasks.imagenet.supernet import ImageSupernet
from seminas_ray.tasks.imagenet.supernet import ImageSupernetConfig
from seminas_ray.tasks.imagenet.supernet import parse_arch
from seminas_ray.tasks.imagenet.supernet import recalibrated


def _check_split(images: np.ndarray, labels: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = np.ascontiguousarray(images, dtype=np.uint8), np.asarray(labels, dtype=np.int64)
    if images.ndim not in (3, 4) or len(images) != len(labels) or not len(images):
        raise ValueError(f"{what}: expected (n, h, w[, c]) uint8 images and n labels, got {images.shape} and "
                         f"{labels.shape}")
    return images, labels


class ImageSupernetBackend(SupernetBackend):
    """Single-path training (cross entropy) and top-1 scoring of the MBConv supernet on small images.

    Args:
        train_images, train_labels, valid_images, valid_labels: uint8 ``(n, h, w[, c])`` images, integer labels.
        config: the supernet's shape (default: the 28x28 one, channels and classes taken from the data).
        batch_size: images per *global* batch (split over the replicas); the tail of the training set is dropped.
        lr, momentum, weight_decay, clip_norm: SGD (Nesterov when ``momentum > 0``) and the path's gradient clip.
        total_steps: length of a cosine learning-rate decay (0: constant rate).
        calib_batches: whole global batches that recalibrate a path's BatchNorm statistics before it is scored.
        score_batch_size: validation images per forward pass when scoring.
        order_seed: the fixed permutation that assigns training images to global batches.
    """

    name = "image"
    reward = "top1"
    mode = "max"

    def __init__(self, train_images: np.ndarray, train_labels: np.ndarray, valid_images: np.ndarray,
                 valid_labels: np.ndarray, *, config: ImageSupernetConfig | None = None, batch_size: int = 64,
                 lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 4e-5, clip_norm: float = 5.0,
                 total_steps: int = 0, calib_batches: int = 2, score_batch_size: int = 200,
                 order_seed: int = 0) -> None:
        self.train_images, self.train_labels = _check_split(train_images, train_labels, "training split")
        self.valid_images, self.valid_labels = _check_split(valid_images, valid_labels, "validation split")
        if not 0 < batch_size <= len(self.train_images):
            raise ValueError(f"batch size {batch_size} does not fit {len(self.train_images)} training images")
        channels = 1 if self.train_images.ndim == 3 else self.train_images.shape[-1]
        self.config = config or ImageSupernetConfig(in_channels=channels,
                                                    num_classes=int(self.train_labels.max()) + 1)
        self.batch_size, self.lr, self.momentum, self.weight_decay = batch_size, lr, momentum, weight_decay
        self.clip_norm, self.total_steps = clip_norm, total_steps
        self.calib_batches = max(1, min(calib_batches, self.num_batches()))
        self.score_batch_size = score_batch_size
        # normalisation from the training pixels (computed once on the driver, shipped with the backend)
        pixels = self.train_images.astype(np.float64) / 255.0
        self.mean, self.std = float(pixels.mean()), float(pixels.std()) or 1.0
        self.order = np.random.default_rng([order_seed, 12]).permutation(len(self.train_images))
        self._cache: dict[Any, Any] = {}

    @classmethod
    def fashion_mnist(cls, n_train: int = 512, n_valid: int = 200, **kwargs: Any) -> "ImageSupernetBackend":
        """The first ``n_train`` Fashion-MNIST training images and the first ``n_valid`` test images."""
        root = fashion_mnist.locate_or_fetch()
        train = fashion_mnist.load_split(root, "train", limit=n_train)
        valid = fashion_mnist.load_split(root, "test", limit=n_valid)
        return cls(*train, *valid, **kwargs)

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
        model = ImageSupernet(self.config).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum,
                                    weight_decay=self.weight_decay, nesterov=self.momentum > 0)
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
        return parse_arch(key, self.config)

    # -- data -----------------------------------------------------------------------------------------
    def num_batches(self) -> int:
        return len(self.train_images) // self.batch_size  # the tail that does not fill a batch is left out

    def _tensors(self, images: np.ndarray, labels: np.ndarray, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(images.astype(np.float32) / 255.0)
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        x = ((x - self.mean) / self.std).contiguous()
        return x.to(device), torch.from_numpy(labels).to(device)

    def _global(self, index: int) -> np.ndarray:
        if not 0 <= index < self.num_batches():
            raise IndexError(f"global batch {index} outside 0..{self.num_batches() - 1}")
        return self.order[index * self.batch_size:(index + 1) * self.batch_size]

    def batch(self, index: int, rank: int, world_size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels of rank ``rank``'s shard ``[rank::world_size]`` of global batch ``index``."""
        key = ("train", int(index), int(rank), int(world_size), str(device))
        if key not in self._cache:
            members = self._global(int(index))[rank::world_size]
            self._cache[key] = self._tensors(self.train_images[members], self.train_labels[members], device)
        return self._cache[key]

    def _calibration(self, device: str) -> list[torch.Tensor]:
        """The first ``calib_batches`` whole global batches (the same on every replica)."""
        key = ("calib", str(device))
        if key not in self._cache:
            self._cache[key] = [self._tensors(self.train_images[self._global(i)], self.train_labels[self._global(i)],
                                              device)[0] for i in range(self.calib_batches)]
        return self._cache[key]

    def _validation(self, device: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        key = ("valid", str(device))
        if key not in self._cache:
            n, b = len(self.valid_images), self.score_batch_size
            self._cache[key] = [self._tensors(self.valid_images[i:i + b], self.valid_labels[i:i + b], device)
                                for i in range(0, n, b)]
        return self._cache[key]

    # -- training and scoring -------------------------------------------------------------------------
    def loss(self, model: torch.nn.Module, batch: Any, arch: Any) -> dict[str, torch.Tensor]:
        """Cross entropy of path ``arch`` (and its top-1 on the batch, for the logs)."""
        x, y = batch
        model.train()
        logits = model(x, arch)
        return {"loss": F.cross_entropy(logits, y), "top1": (logits.detach().argmax(1) == y).float().mean()}

    def path_parameters(self, model: torch.nn.Module, arch: Any) -> list[torch.nn.Parameter]:
        return model.path_parameters(arch)

    def score(self, model: torch.nn.Module, archs: Sequence[Any], device: str) -> list[dict[str, float]]:
        """Top-1 accuracy and mean cross entropy on the validation split, BatchNorm recalibrated per path."""
        calibration, validation = self._calibration(device), self._validation(device)
        n = len(self.valid_images)
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
        return {"name": self.name, "train_images": len(self.train_images), "valid_images": len(self.valid_images),
                "image_shape": list(self.train_images.shape[1:]), "global_batch": self.batch_size,
                "batches_per_epoch": self.num_batches(), "config": self.config.to_dict(),
                "parameters": sum(p.numel() for p in ImageSupernet(self.config).parameters())}


__all__ = ["ImageSupernetBackend"]
