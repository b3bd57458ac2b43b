"""Pseudo-labelling of unlabelled pools, split into seeded shards.

The pool of ``n`` unlabelled architectures is cut into shards of ``shard_size``; shard ``i`` samples its own
architectures from the space with seed ``(seed, i)`` and labels them with the predictor. Because every shard is
a pure function of (space, weights, shard seed), the local loop here and Ray's remote tasks
(``seminas_ray.distributed.pseudo_label``) produce bit-identical pools, and a retried shard reproduces itself.
Shards are merged in shard order, duplicates (same token sequence) dropped, and the pool cut to ``n``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from seminas_ray.controller import ControllerConfig
from seminas_ray.controller import predict_with_weights
from seminas_ray.spaces.base import SearchSpace

TOKEN_DTYPE = np.int8  # vocabularies are tiny; int8 keeps a 1M pool of NB101 tokens at 27 MB


def shard_plan(n: int, shard_size: int, oversample: float = 0.05) -> list[int]:
    """Sizes of the shards for a pool of ``n`` (a few percent extra to make up for cross-shard duplicates)."""
    if n <= 0:
        return []
    total = int(np.ceil(n * (1.0 + oversample))) if n > shard_size else n
    sizes = [shard_size] * (total // shard_size)
    if total % shard_size:
        sizes.append(total % shard_size)
    return sizes


def shard_seed(seed: int, index: int) -> int:
    """Independent, reproducible seed of shard ``index``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def sample_distinct(space: SearchSpace, n: int, rng: np.random.Generator, exclude: frozenset[str]) -> list[Any]:
    """``n`` distinct architectures from ``space`` whose keys are not in ``exclude`` (fewer if the space runs out)."""
    seen: set[str] = set()
    archs: list[Any] = []
    for _ in range(50):
        need = n - len(archs)
        if need <= 0:
            break
        for arch in space.sample(rng, int(need * 1.1) + 8):
            key = space.key(arch)
            if key in exclude or key in seen:
                continue
            seen.add(key)
            archs.append(arch)
            if len(archs) == n:
                break
    return archs


def sample_shard(space: SearchSpace, n: int, seed: int, exclude: frozenset[str]) -> np.ndarray:
    """One shard of ``n`` sampled architectures as int8 tokens."""
    archs = sample_distinct(space, n, np.random.default_rng(seed), exclude)
    return space.encode_many(archs).astype(TOKEN_DTYPE)


def label_shard(space: SearchSpace, controller_config: ControllerConfig, weights: dict[str, np.ndarray],
                n: int, seed: int, exclude: frozenset[str], batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Sample one shard and predict its (normalised) scores."""
    seqs = sample_shard(space, n, seed, exclude)
    preds = predict_with_weights(space, controller_config, weights, seqs.astype(np.int64), batch_size=batch_size)
    return seqs, np.asarray(preds, dtype=np.float32)


def merge_shards(parts: list[tuple[np.ndarray, np.ndarray]], n: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate shards in shard order, drop repeated sequences (first wins), keep the first ``n``."""
    if not parts:
        return np.zeros((0, seq_len), dtype=TOKEN_DTYPE), np.zeros((0,), dtype=np.float32)
    seqs = np.concatenate([p[0] for p in parts])
    preds = np.concatenate([p[1] for p in parts])
    _, first = np.unique(seqs, axis=0, return_index=True)
    keep = np.sort(first)[:n]
    return seqs[keep], preds[keep]


@dataclass(frozen=True)
class LocalPseudoLabeler:
    """Pseudo-labels shard after shard in this process (the default; no Ray)."""

    shard_size: int = 20_000
    batch_size: int = 8192

    def __call__(self, space: SearchSpace, controller_config: ControllerConfig, weights: dict[str, np.ndarray],
                 n: int, seed: int, exclude: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
        parts = [label_shard(space, controller_config, weights, size, shard_seed(seed, i), exclude, self.batch_size)
                 for i, size in enumerate(shard_plan(n, self.shard_size))]
        return merge_shards(parts, n, space.seq_len)
