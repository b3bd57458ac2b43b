"""Length-bucketed batching as index groups: one grouping rule for the supernet replicas and standalone training."""
from __future__ import annotations

from typing import Sequence


def batch_plan(lengths: Sequence[int], batch_size: int | None = None, max_frames: int | None = None,
               min_size: int = 1, order: Sequence[int] | None = None) -> list[list[int]]:
    """Global batches as lists of item indices, walking the items from shortest to longest.

    A batch closes at ``batch_size`` items or when its padded size ``(len + 1) * longest`` would exceed
    ``max_frames`` (the paper's "max tokens per batch"); at least one of the two must be given. Batches smaller
    than ``min_size`` (the number of data-parallel replicas, so that every replica gets at least one item) are
    merged into their neighbour. ``order`` overrides the walking order (default: by ``(length, index)``); it should
    still go from short to long, or the ``max_frames`` rule no longer bounds the padded size.
    """
    if batch_size is None and max_frames is None:
        raise ValueError("batch_plan needs batch_size or max_frames")
    if min_size > 1 and len(lengths) < min_size:
        raise ValueError(f"{len(lengths)} training items cannot feed {min_size} data-parallel replicas")
    if order is None:
        order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    groups: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        full = batch_size is not None and len(cur) >= batch_size
        too_big = max_frames is not None and cur and (len(cur) + 1) * lengths[i] > max_frames
        if (full or too_big) and len(cur) >= min_size:
            groups.append(cur)
            cur = []
        cur.append(i)
    if cur:
        if len(cur) < min_size and groups:
            groups[-1].extend(cur)
        else:
            groups.append(cur)
    return groups


__all__ = ["batch_plan"]
