"""Pseudo-labelling as Ray remote tasks (named ``pseudo_label`` in the dashboard).

The controller's weights and the excluded keys go into the object store once per round; the pool is cut into
seeded shards (``seminas_ray.algorithm.pseudo_label``) that sample and label on the workers, so the driver never
ships architectures out. Results are gathered with ``ray.wait`` (a slow node does not hold the others back) and
merged in shard order, so the pool is identical to the local loop's whatever the completion order. A worker that
dies mid-shard is retried (``max_retries``) and, the shard being a pure function of its seed, reproduces itself.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from seminas_ray.algorithm.pseudo_label import label_shard
from seminas_ray.algorithm.pseudo_label import merge_shards
from seminas_ray.algorithm.pseudo_label import shard_plan
from seminas_ray.algorithm.pseudo_label import shard_seed


@ray.remote(max_retries=3)
def _pseudo_label_task(space: Any, controller_config: Any, weights: dict, n: int, seed: int,
                       exclude: frozenset, batch_size: int, index: int,
                       kill_once_marker: str | None = None) -> tuple[int, np.ndarray, np.ndarray]:
    if kill_once_marker is not None and index == 0 and not os.path.exists(kill_once_marker):
        # fault injection for tests: the first attempt of shard 0 kills its own worker process
        open(kill_once_marker, "w").close()
        os._exit(1)
    seqs, preds = label_shard(space, controller_config, weights, n, seed, exclude, batch_size)
    return index, seqs, preds


def task_options(num_cpus: float = 1.0) -> dict[str, Any]:
    """Resources of one shard task: a GPU share when the cluster has GPUs, CPUs otherwise (never a request that
    could wait forever on a GPU-less cluster)."""
    has_gpu = ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0
    if has_gpu:
        return {"num_gpus": 0.25, "num_cpus": 1}
    return {"num_cpus": num_cpus}


@dataclass(frozen=True)
class RayPseudoLabeler:
    """Drop-in ``PseudoLabeler`` that runs the shards as Ray tasks across the cluster."""

    shard_size: int = 20_000
    batch_size: int = 8192
    num_cpus: float = 1.0
    max_retries: int = 3
    kill_once_marker: str | None = None  # fault injection (tests): shard 0's first worker dies if the file is absent

    def __call__(self, space: Any, controller_config: Any, weights: dict[str, np.ndarray], n: int, seed: int,
                 exclude: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
        sizes = shard_plan(n, self.shard_size)
        if not sizes:
            return merge_shards([], n, space.seq_len)
        space_ref, weights_ref, exclude_ref = ray.put(space), ray.put(weights), ray.put(frozenset(exclude))
        task = _pseudo_label_task.options(name="pseudo_label", max_retries=self.max_retries,
                                          **task_options(self.num_cpus))
        pending = [task.remote(space_ref, controller_config, weights_ref, size, shard_seed(seed, i), exclude_ref,
                               self.batch_size, i, self.kill_once_marker) for i, size in enumerate(sizes)]
        parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            index, seqs, preds = ray.get(done[0])
            parts[index] = (seqs, preds)
        return merge_shards([parts[i] for i in range(len(sizes))], n, space.seq_len)
