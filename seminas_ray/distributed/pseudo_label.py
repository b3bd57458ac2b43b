"""Pseudo-labelling as Ray remote tasks (named ``pseudo_label`` in the dashboard).

The controller's weights go into the object store once per call. For an indexed space (NB101, NB201, a restricted
subset; see ``seminas_ray.algorithm.pseudo_label``) the driver draws the pool as one seeded permutation of row
indices and one int8 gather (no per-architecture Python), puts the tokens in the object store once, and every shard
task predicts a slice of them (read zero-copy) and sends back only float32 predictions, written straight into the
result; the driver holds the returned pool and nothing else that grows with its size. For other spaces the shards
sample on the workers with per-shard seeds and return int8 tokens + float32 predictions, merged in shard order.

Results are gathered with ``ray.wait`` (a slow node does not hold the others back) and placed by shard index, so
the pool is identical to the local loop's whatever the completion order. A worker that dies mid-shard is retried
(``max_retries``) and, the shard being a pure function of its inputs, reproduces itself.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any
from typing import Mapping
from typing import Sequence

import numpy as np
import ray
from ray.util import get_current_placement_group

from seminas_ray.algorithm.pseudo_label import PRED_DTYPE
from seminas_ray.algorithm.pseudo_label import LocalPseudoLabeler
from seminas_ray.algorithm.pseudo_label import label_shard
from seminas_ray.algorithm.pseudo_label import merge_shards
from seminas_ray.algorithm.pseudo_label import pool_tokens
from seminas_ray.algorithm.pseudo_label import predict_shard
from seminas_ray.algorithm.pseudo_label import shard_bounds
from seminas_ray.algorithm.pseudo_label import shard_plan
from seminas_ray.algorithm.pseudo_label import shard_seed

log = logging.getLogger(__name__)

GPU_SHARE = 0.25  # four pseudo-labelling tasks share one GPU (inference of a small LSTM does not fill it)


def _die_once(kill_once_marker: str | None, index: int) -> None:
    # fault injection for tests: the first attempt of shard 0 kills its own worker process
    if kill_once_marker is not None and index == 0 and not os.path.exists(kill_once_marker):
        open(kill_once_marker, "w").close()
        os._exit(1)


@ray.remote(max_retries=3)
def _predict_slice_task(vocab_size: int, seq_len: int, controller_config: Any, weights: dict, seqs: np.ndarray,
                        start: int, stop: int, batch_size: int | None, index: int,
                        kill_once_marker: str | None = None) -> tuple[int, np.ndarray]:
    """Indexed pools: predict rows ``start:stop`` of the pool's tokens (a zero-copy view of the object store)."""
    _die_once(kill_once_marker, index)
    return index, predict_shard(vocab_size, seq_len, controller_config, weights, seqs[start:stop], batch_size)


@ray.remote(max_retries=3)
def _pseudo_label_task(space: Any, controller_config: Any, weights: dict, n: int, seed: int,
                       exclude: frozenset, batch_size: int | None, index: int,
                       kill_once_marker: str | None = None) -> tuple[int, np.ndarray, np.ndarray]:
    """Other spaces: sample shard ``index`` with its own seed on the worker and label it."""
    _die_once(kill_once_marker, index)
    seqs, preds = label_shard(space, controller_config, weights, n, seed, exclude, batch_size)
    return index, seqs, preds


def choose_task_options(node_resources: Sequence[Mapping[str, float]], num_cpus: float = 1.0, *,
                        bundles: Sequence[Mapping[str, float]] | None = None) -> dict[str, Any]:
    """Resources of one shard task on a cluster whose alive nodes have ``node_resources`` (total per node).

    A GPU share (with one CPU) when some node has a GPU, else ``num_cpus`` CPUs, lowered to the largest node's CPU
    count when no node has that many: a request no node can ever satisfy would stay pending forever, silently.
    Raises ``RuntimeError`` when no node has any CPU.

    ``bundles``: the shard tasks run inside a placement group that captures them (the controller round's reserved
    group) with these bundles: they can only use the group's resources, and the round task that spawns them holds
    the group's GPU (if any) for its whole run (Ray gives a blocked task's CPUs back, never its GPUs), so they ask
    for CPUs only, at most the largest bundle's: a GPU share there would wait forever.
    """
    if num_cpus < 0:
        raise ValueError(f"num_cpus must be >= 0, got {num_cpus}")
    if bundles is not None:
        node_resources = [{"CPU": float(b.get("CPU", 0.0))} for b in bundles]  # CPU only, see above
    max_cpu = max((float(r.get("CPU", 0.0)) for r in node_resources), default=0.0)
    if any(float(r.get("GPU", 0.0)) >= GPU_SHARE and float(r.get("CPU", 0.0)) >= 1.0 for r in node_resources):
        return {"num_gpus": GPU_SHARE, "num_cpus": 1}
    if num_cpus == 0:
        return {"num_cpus": 0}
    if max_cpu <= 0:
        raise RuntimeError(f"no Ray node has a CPU to run pseudo-labelling tasks on (nodes: {list(node_resources)})")
    if num_cpus > max_cpu:
        log.warning("pseudo-labelling tasks asked for %s CPUs but the largest node has %s; using %s",
                    num_cpus, max_cpu, max_cpu)
        return {"num_cpus": max_cpu}
    return {"num_cpus": num_cpus}


def task_options(num_cpus: float = 1.0) -> dict[str, Any]:
    """Resources of one shard task on the connected cluster (see :func:`choose_task_options`); never a request
    that could wait forever, e.g. a GPU share on a GPU-less cluster."""
    if not ray.is_initialized():
        raise RuntimeError("Ray is not initialised: call ray.init() before pseudo-labelling with Ray")
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive", False)]
    return choose_task_options(nodes, num_cpus, bundles=captured_bundles())


def captured_bundles() -> list[dict[str, float]] | None:
    """The bundles of the placement group this task's child tasks are scheduled in (``None``: they are not, e.g. on
    the driver or in a task whose group does not capture its children)."""
    group = get_current_placement_group()
    if group is None or not ray.get_runtime_context().should_capture_child_tasks_in_placement_group:
        return None
    return [dict(b) for b in group.bundle_specs]


@dataclass(frozen=True)
class RayPseudoLabeler:
    """Drop-in ``PseudoLabeler`` that runs the shards as Ray tasks across the cluster.

    Gives the same pool as ``LocalPseudoLabeler`` with the same ``shard_size`` (for indexed spaces whatever the
    shard size). ``batch_size=None`` lets the controller pick the inference batch for the device. The default
    ``shard_size`` suits CPU workers (about 0.2 s of work per task against ~5 ms of fixed cost, and M = 10,000 makes 4
    tasks); on GPUs use shards of 50,000 or more so that each task fills its batches.
    """

    shard_size: int = 2_500
    batch_size: int | None = None
    num_cpus: float = 1.0
    max_retries: int = 3
    kill_once_marker: str | None = None  # fault injection (tests): shard 0's first worker dies if the file is absent

    def __call__(self, space: Any, controller_config: Any, weights: dict[str, np.ndarray], n: int, seed: int,
                 exclude: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
        slots = self.parallel_slots()
        if slots is not None and slots <= 1:
            # one shard at a time in the reserved group: remote tasks would only queue behind each other and start
            # cold worker processes every round (~4 s of imports and set-up); the same shards in this process give
            # the same pool
            return LocalPseudoLabeler(self.shard_size, self.batch_size)(space, controller_config, weights, n, seed,
                                                                        exclude)
        seqs = pool_tokens(space, n, seed, exclude)
        if seqs is not None:
            return seqs, self._predict_pool(space, controller_config, weights, seqs)
        return self._sample_and_label(space, controller_config, weights, n, seed, exclude)

    def parallel_slots(self) -> int | None:
        """Shard tasks that can run at once in the placement group that captures them (``None``: not captured,
        e.g. on the driver: the whole cluster)."""
        bundles = captured_bundles()
        if bundles is None:
            return None
        per_task = max(self.num_cpus, 1e-6)
        return int(sum(float(b.get("CPU", 0.0)) // per_task for b in bundles))

    def _options(self) -> dict[str, Any]:
        return dict(name="pseudo_label", max_retries=self.max_retries, **task_options(self.num_cpus))

    def _predict_pool(self, space: Any, controller_config: Any, weights: dict[str, np.ndarray],
                      seqs: np.ndarray) -> np.ndarray:
        preds = np.empty(len(seqs), dtype=PRED_DTYPE)
        bounds = shard_bounds(len(seqs), self.shard_size)
        if not bounds:
            return preds
        seqs_ref, weights_ref = ray.put(seqs), ray.put(weights)
        task = _predict_slice_task.options(**self._options())
        pending = {task.remote(space.vocab_size, space.seq_len, controller_config, weights_ref, seqs_ref, start, stop,
                               self.batch_size, i, self.kill_once_marker): i for i, (start, stop) in enumerate(bounds)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            pending.pop(done[0])
            index, part = ray.get(done[0])
            start, stop = bounds[index]
            preds[start:stop] = part  # copied out of the object store; the shard's object is freed with its ref
        return preds

    def _sample_and_label(self, space: Any, controller_config: Any, weights: dict[str, np.ndarray], n: int, seed: int,
                          exclude: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
        sizes = shard_plan(n, self.shard_size)
        if not sizes:
            return merge_shards([], n, space.seq_len)
        space_ref, weights_ref, exclude_ref = ray.put(space), ray.put(weights), ray.put(frozenset(exclude))
        task = _pseudo_label_task.options(**self._options())
        pending = [task.remote(space_ref, controller_config, weights_ref, size, shard_seed(seed, i), exclude_ref,
                               self.batch_size, i, self.kill_once_marker) for i, size in enumerate(sizes)]
        parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            index, seqs, preds = ray.get(done[0])
            parts[index] = (seqs, preds)
        return merge_shards([parts[i] for i in range(len(sizes))], n, space.seq_len)
