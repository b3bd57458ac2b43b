"""Presets of the ImageNet task (``experiments/run.py --task imagenet --preset NAME``): data sizes, supernet
schedule, SemiNAS settings and the final stage in one place.

- ``smoke``: a CI check of the whole pipeline in under 3 minutes on 2 CPU cores (Fashion-MNIST subsets, a
  0.25-wide network, 10 architectures, a few dozen supernet steps, 3 networks trained for one short epoch). Its
  numbers mean nothing.
- ``default``: what ``python experiments/run.py --task imagenet`` does on a 2-core CPU box in about half an hour:
  Fashion-MNIST (28x28 padded to 32x32, stride-1 stem, width 0.25), SemiNAS with N=16, M=4,000 and 2 rounds of 8
  (32 architectures scored on the supernet), then the top 3 found, the MobileNetV2-style baseline and 3 random
  architectures under the same FLOPs budget trained from scratch (ASHA) and compared on the test split.
- ``paper``: the paper's search on ImageNet (``--data``): N=100, M=4,000, 100 new per round, 3 rounds, 20,000
  supernet updates per round at batch 512 (4 GPUs), SGD Nesterov lr 0.4, label smoothing 0.1, 5,000 held-out
  validation images; final training 300 epochs, batch 256, SGD lr 0.05 cosine, label smoothing 0.1, dropout 0.3.
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

from seminas_ray.algorithm.config import merge_settings

#: SemiNAS settings of the paper's ImageNet search (spec section 4).
PAPER_SEMINAS: dict[str, Any] = {
    "n_seed": 100, "n_unlabelled": 4000, "n_per_round": 100, "n_rounds": 3, "top_k": 100,
    "up_sample": 1, "pretrain_epochs": 10_000, "train_epochs": 1000, "target_norm": "minmax",
    "step_size_start": 0.1, "step_size_increment": 0.1, "max_step_size": 10.0,
    "controller": {"hidden_size": 16, "mlp_hidden_size": 64, "output_activation": "sigmoid", "residual_scale": True,
                   "weight_decay": 1e-4, "lr": 1e-3},
}


@dataclass(frozen=True)
class ImageNetPreset:
    """Everything an ImageNet-task run depends on besides the data path, the budget and the seed."""

    name: str
    description: str
    # -- data --
    n_valid: int = 5000                  # training images held out: the supernet's scoring split (authors: 5,000)
    n_train: int | None = None           # training images used (None: all the others)
    n_test: int | None = None            # test images evaluated (None: all)
    folder_input_size: int = 224         # --data images are cropped to this (Fashion-MNIST: 32, stride-1 stem)
    width_mult: float = 1.0
    # -- supernet --
    batch_size: int = 512                # global batch (all replicas together)
    lr: float = 0.4
    steps_per_arch: int = 0              # supernet steps per round = steps_per_arch x pool size, clamped to ...
    min_round_steps: int = 20_000        # ... [min_round_steps, max_round_steps]
    max_round_steps: int = 20_000
    first_round_steps: int = 0
    calib_batches: int = 4               # global batches that recalibrate a path's BatchNorm before scoring
    supernet_actors: int | None = None   # None: one per GPU, or 2 CPU replicas
    seminas: dict[str, Any] = field(default_factory=dict)
    # -- final stage --
    final_top_k: int = 5                 # found architectures trained from scratch (and as many random ones)
    final_epochs: int = 300
    final_batch_size: int = 256
    final_lr: float = 0.05
    final_dropout: float = 0.3
    final_train: int | None = None       # training images per final epoch (None: the whole training split)
    grace_epochs: int = 1                # ASHA: epochs every network trains before it may be stopped
    final_concurrency: int = 2
    latency_runs: int = 30               # batch-1 CPU forward passes timed per network (median reported)

    def seminas_dict(self) -> dict[str, Any]:
        """The SemiNAS settings: the paper's ImageNet values with this preset's overrides (nested merge)."""
        return merge_settings(PAPER_SEMINAS, self.seminas)

    def with_overrides(self, **changes: Any) -> "ImageNetPreset":
        return replace(self, **changes)


PRESETS: dict[str, ImageNetPreset] = {
    "smoke": ImageNetPreset(
        name="smoke", description="CI check of the whole pipeline (< 3 min on 2 cores); numbers are meaningless",
        n_valid=200, n_train=1024, n_test=300, folder_input_size=32, width_mult=0.25, batch_size=32, lr=0.05,
        steps_per_arch=2, min_round_steps=16, max_round_steps=40, calib_batches=1,
        seminas={"n_seed": 6, "n_unlabelled": 200, "n_per_round": 4, "n_rounds": 1, "top_k": 10,
                 "pretrain_epochs": 100, "train_epochs": 30, "patience": 10},
        final_top_k=1, final_epochs=1, final_batch_size=64, final_train=384, final_dropout=0.0, latency_runs=5),
    "default": ImageNetPreset(
        name="default", description="2-core CPU run of about half an hour: Fashion-MNIST, N=16, M=4000, 2 rounds of 8",
        n_valid=1000, n_train=20_000, n_test=5000, folder_input_size=64, width_mult=0.25, batch_size=64, lr=0.1,
        steps_per_arch=40, min_round_steps=300, max_round_steps=800, first_round_steps=300, calib_batches=2,
        seminas={"n_seed": 16, "n_unlabelled": 4000, "n_per_round": 8, "n_rounds": 2, "top_k": 100},
        final_top_k=3, final_epochs=5, final_batch_size=64, final_lr=0.1, final_train=10_000, final_dropout=0.1,
        grace_epochs=2, latency_runs=30),
    "paper": ImageNetPreset(
        name="paper", description="the paper's search and final settings for GPUs (use --data an ImageNet folder)"),
}
DEFAULT_PRESET = "default"


def get_preset(name: str | None) -> ImageNetPreset:
    """The preset called ``name`` (``None``: ``default``); ``ValueError`` naming the choices otherwise."""
    name = DEFAULT_PRESET if name is None else name
    if name not in PRESETS:
        raise ValueError(f"unknown ImageNet preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


__all__ = ["DEFAULT_PRESET", "PAPER_SEMINAS", "PRESETS", "ImageNetPreset", "get_preset"]
