"""Weight-sharing supernet actors: data-parallel training and sharded scoring of an architecture pool, for any task.

SemiNAS's TTS search (and its ImageNet search) trains one weight-sharing supernet per round on the round's pool
(one uniformly drawn architecture per batch, single path) and then scores every pool member on the shared weights.
Here that supernet is a group of Ray actors; everything task-specific comes from a
:class:`~seminas_ray.distributed.supernet_backend.SupernetBackend` (this module imports no task):

- **One actor per GPU** (``num_gpus=1``, NCCL) or, where the cluster has none, a few CPU actors (gloo). The
  resources are chosen from ``ray.cluster_resources()`` and checked before anything is requested, and actor start-up
  has a timeout: a request that cannot be met fails with a message instead of waiting forever.
- **Replicas stay identical.** Every actor builds the supernet from the same seed and joins one
  ``torch.distributed`` process group (actor 0 picks a free port on its node, the others connect to it over TCP).
  At each step every actor draws the *same* architecture (a generator seeded by the round's seed and the global
  step), takes its own shard of the same global batch, and the gradients of that path
  (``backend.path_parameters``) are averaged with one ``all_reduce`` over a flattened buffer before clipping and the
  optimiser step (``utils.training_step.train_step``). With the same optimiser state everywhere, the weights stay
  bitwise identical (the tests check it).
- **Sharded scoring.** ``SupernetGroup.score(keys)`` cuts the pool into contiguous shards, one per actor; each
  scores its shard with ``backend.score`` and the results come back in pool order, identical to what one actor
  would compute (the backend scores every architecture with the same dropout seed).
- **Named actors** (``supernet-0``, ``supernet-1``, ...) in the run's namespace, so they are listed in the
  dashboard's Actors view and can be found with ``ray.get_actor``. The backend (with its numpy data) goes through
  the object store once and every actor reads it from there.

``SupernetCoordinator`` is a small named actor (``supernet-coordinator``, 0 CPUs) that owns the group for a Tune
search: each Tune trial is one architecture and calls ``score(round, pool, key)``; the first call of a round trains
the group on the round's pool and scores the whole pool, later calls read the cached result (actor calls are
serialised, so they simply wait for the first one).
"""
from __future__ import annotations

import copy
import datetime
import logging
import math
import os
import socket
import time
from dataclasses import asdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from typing import Sequence

import numpy as np
import ray
import torch
import torch.distributed as dist

from seminas_ray.distributed.supernet_backend import SupernetBackend
from seminas_ray.utils.progress import progress_bar
from seminas_ray.utils.state_io import load_state
from seminas_ray.utils.state_io import save_state
from seminas_ray.utils.training_step import train_step

logger = logging.getLogger(__name__)

COORDINATOR_NAME = "supernet-coordinator"
ACTOR_PREFIX = "supernet"
START_TIMEOUT_S = 300.0  # actors that cannot be placed within this time mean the cluster cannot host them
_TIMING_KEYS = ("seconds", "ms_per_step")


# ------------------------------------------------------------------------------------------------------------
# One replica
# ------------------------------------------------------------------------------------------------------------
class SupernetWorker:
    """One supernet replica (the body of the ``SupernetActor``; usable without Ray in a single process).

    Works on a shallow copy of ``backend`` (its per-replica state comes from ``backend.setup``), so one backend
    object can serve several in-process workers.
    """

    def __init__(self, rank: int, world_size: int, backend: SupernetBackend, seed: int, device: str = "cpu",
                 threads: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a group of {world_size}")
        torch.set_num_threads(max(1, int(threads)))
        self.rank, self.world_size, self.seed, self.device = rank, world_size, int(seed), str(device)
        self.backend = copy.copy(backend)
        self.backend.setup(rank, world_size, self.device)
        torch.manual_seed(self.seed)  # identical initial weights on every replica
        self.replica = self.backend.build(self.seed, self.device)
        torch.manual_seed(self.seed * 1000 + rank + 1)  # dropout masks differ per replica, like DDP
        self.step = 0
        self._path_params: dict[str, list[torch.nn.Parameter]] = {}
        self._group = False

    @property
    def model(self) -> torch.nn.Module:
        return self.replica.model

    # -- process group --------------------------------------------------------------------------------
    def master_address(self) -> tuple[str, int]:
        """An address for the process group's TCP store: this node's IP and a port that was free a moment ago."""
        ip = ray.util.get_node_ip_address() if ray.is_initialized() else "127.0.0.1"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ip, int(port)

    def init_process_group(self, ip: str, port: int, backend: str, timeout_s: float = 300.0) -> bool:
        """Join the group (blocks until every replica has joined)."""
        if self.world_size > 1 and not self._group:
            dist.init_process_group(backend, init_method=f"tcp://{ip}:{port}", rank=self.rank,
                                    world_size=self.world_size, timeout=datetime.timedelta(seconds=timeout_s))
            self._group = True
        return True

    def close(self) -> bool:
        """Leave the process group."""
        if self._group and dist.is_initialized():
            dist.destroy_process_group()
        self._group = False
        return True

    def info(self) -> dict[str, Any]:
        """Where this replica runs and what it holds (shown in logs and the results)."""
        return {**self.backend.describe(), "rank": self.rank, "world_size": self.world_size, "device": self.device,
                "pid": os.getpid(),
                "node_ip": ray.util.get_node_ip_address() if ray.is_initialized() else "127.0.0.1",
                "threads": torch.get_num_threads(), "global_batches": self.backend.num_batches(),
                "step": self.step, "parameters": sum(p.numel() for p in self.model.parameters())}

    # -- training -------------------------------------------------------------------------------------
    def _batch_index(self, step: int) -> int:
        """Global batch of ``step``: a fresh permutation per epoch, the same on every replica."""
        n = self.backend.num_batches()
        epoch, pos = divmod(step, n)
        return int(np.random.default_rng([self.seed, 7, epoch]).permutation(n)[pos])

    def _params_of(self, key: str, arch: Any) -> list[torch.nn.Parameter]:
        if key not in self._path_params:
            self._path_params[key] = list(self.backend.path_parameters(self.model, arch))
        return self._path_params[key]

    def _average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """All-reduce the path's gradients as one flat buffer (every replica holds the same path, same order)."""
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(self.world_size)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    def train(self, pool: Sequence[str], n_steps: int, seed: int) -> dict[str, float]:
        """``n_steps`` single-path steps; the architecture of global step ``s`` is ``pool[rng(seed, s)]``."""
        if not pool:
            raise ValueError("the architecture pool is empty")
        pool = list(pool)
        archs = [self.backend.parse_arch(k) for k in pool]
        r = self.replica
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        for _ in range(int(n_steps)):
            j = int(np.random.default_rng([int(seed), self.step]).integers(len(archs)))
            arch = archs[j]
            batch = self.backend.batch(self._batch_index(self.step), self.rank, self.world_size, self.device,
                                       step=self.step)
            sync = partial(self._average_gradients, self._params_of(pool[j], arch)) if self._group else None
            stats = train_step(r.model, r.optimizer, r.scheduler, partial(self.backend.loss, r.model, batch, arch),
                               r.clip_norm, sync_gradients=sync)
            self.step += 1
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
        seconds = time.perf_counter() - t0
        done = max(int(n_steps), 1)
        out = {k: v / done for k, v in sums.items()}
        out.update(steps=float(n_steps), seconds=seconds, ms_per_step=1000.0 * seconds / done,
                   global_step=float(self.step))
        return out

    # -- scoring --------------------------------------------------------------------------------------
    def score(self, keys: Sequence[str]) -> list[dict[str, float]]:
        """Scores of ``keys`` on the current shared weights (``backend.score``), in order."""
        if not keys:
            return []
        return self.backend.score(self.model, [self.backend.parse_arch(k) for k in keys], self.device)

    # -- weights and checkpoints ----------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        """The supernet's ``state_dict`` as numpy arrays."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def get_state(self) -> dict[str, Any]:
        """Model, optimiser and step counter (for a checkpoint; numpy arrays, no pickled objects).

        The arrays are copies: a snapshot, not views of the live state (in one process they would change with it).
        """
        opt = self.replica.optimizer.state_dict()
        return {
            "model": self.get_weights(),
            "optimizer_state": {str(k): {kk: (vv.detach().cpu().numpy().copy() if hasattr(vv, "detach") else vv)
                                         for kk, vv in v.items()} for k, v in opt["state"].items()},
            "optimizer_groups": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
                                 for g in opt["param_groups"]],
            "step": self.step,
        }

    def set_state(self, state: dict[str, Any]) -> bool:
        """Install a :meth:`get_state` dict (every replica loads the same one, so they stay identical)."""
        # copies: the state arrives as read-only views of Ray's object store
        self.model.load_state_dict({k: torch.from_numpy(np.array(v, copy=True)) for k, v in state["model"].items()})
        groups = []
        for g in state["optimizer_groups"]:
            g = dict(g)
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
            groups.append(g)
        opt_state = {int(k): {kk: (torch.from_numpy(np.array(vv, copy=True)).to(self.device)
                                   if isinstance(vv, np.ndarray) else vv) for kk, vv in v.items()}
                     for k, v in state["optimizer_state"].items()}
        self.replica.optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
        self.step = int(state["step"])
        self.backend.resume_scheduler(self.replica, self.step)
        return True


@ray.remote(max_restarts=0, max_task_retries=0)
class SupernetActor(SupernetWorker):
    """The Ray actor of one replica (a subclass, so the dashboard lists it under this name)."""


# ------------------------------------------------------------------------------------------------------------
# The group
# ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    """How the replicas are placed: the result of :func:`plan_placement`."""

    n_actors: int
    use_gpu: bool
    num_cpus: float
    num_gpus: float
    backend: str
    device: str
    threads: int


def plan_placement(n_actors: int | None = None, *, use_gpu: bool | None = None, actor_cpus: float | None = None,
                   reserved_cpus: float = 0.0, threads: int | None = None,
                   resources: dict[str, float] | None = None) -> Placement:
    """Choose replicas from the cluster's resources, refusing anything the cluster could never grant.

    GPUs present (and ``use_gpu`` not False): one replica per GPU (``num_gpus=1``, NCCL, 1 CPU each). Otherwise CPU
    replicas (gloo): ``n_actors`` (default 2, or 1 on a 1-CPU cluster), each reserving an equal share of the CPUs
    left after ``reserved_cpus`` (Ray's CPU counts are logical; torch gets ``threads`` threads per replica).
    """
    res = dict(resources if resources is not None else ray.cluster_resources())
    total_cpu, total_gpu = float(res.get("CPU", 0.0)), float(res.get("GPU", 0.0))
    gpu = (total_gpu >= 1) if use_gpu is None else bool(use_gpu)
    if gpu:
        n = int(n_actors or int(total_gpu))
        if n < 1 or n > total_gpu:
            raise ValueError(f"{n} GPU supernet actors requested but the cluster has {total_gpu:g} GPU(s)")
        cpus = 1.0 if actor_cpus is None else float(actor_cpus)
        if n * cpus > total_cpu - reserved_cpus + 1e-9:
            cpus = max(0.0, (total_cpu - reserved_cpus) / n)
        return Placement(n, True, cpus, 1.0, "nccl", "cuda", max(1, int(threads or max(1, math.floor(cpus)))))
    free = total_cpu - reserved_cpus
    n = int(n_actors or (2 if total_cpu >= 2 else 1))
    if n < 1:
        raise ValueError(f"need at least one supernet actor, got {n}")
    cpus = free / n if actor_cpus is None else float(actor_cpus)
    if cpus <= 0 or n * cpus > free + 1e-9:
        raise ValueError(f"{n} CPU supernet actors x {cpus:g} CPUs do not fit the cluster's {total_cpu:g} CPUs "
                         f"({reserved_cpus:g} reserved for the controller and trials)")
    return Placement(n, False, round(cpus, 4), 0.0, "gloo", "cpu", max(1, int(threads or max(1, round(cpus)))))


class SupernetGroup:
    """Creates the named replicas, joins them in one process group, and trains/scores through them.

    Args:
        backend: the task's supernet (or an object ref to it); put in the object store once for all replicas.
        seed: the supernet seed (initial weights, batch order); the same on every replica.
        placement: from :func:`plan_placement` (default: chosen from the cluster).
        name_prefix: actors are named ``f"{name_prefix}-{i}"``.
        start_timeout_s: how long to wait for the replicas to start before giving up with an error.
    """

    def __init__(self, backend: SupernetBackend | ray.ObjectRef, *, seed: int, placement: Placement | None = None,
                 name_prefix: str = ACTOR_PREFIX, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self.placement = placement or plan_placement()
        p = self.placement
        self.seed = int(seed)
        self.names = [f"{name_prefix}-{i}" for i in range(p.n_actors)]
        backend_ref = backend if isinstance(backend, ray.ObjectRef) else ray.put(backend)
        opts: dict[str, Any] = {"num_cpus": p.num_cpus}
        if p.use_gpu:
            opts["num_gpus"] = p.num_gpus
        self.actors = [SupernetActor.options(name=name, **opts).remote(i, p.n_actors, backend_ref, self.seed,
                                                                       p.device, p.threads)
                       for i, name in enumerate(self.names)]
        self._started = False
        self.infos: list[dict[str, Any]] = []
        try:
            ready, pending = ray.wait([a.info.remote() for a in self.actors], num_returns=len(self.actors),
                                      timeout=start_timeout_s)
            if pending:
                raise RuntimeError(
                    f"only {len(ready)} of {p.n_actors} supernet actors started within {start_timeout_s:.0f}s: the "
                    f"cluster cannot host {p.n_actors} x {{CPU: {p.num_cpus:g}, GPU: {p.num_gpus:g}}} right now")
            self.infos = ray.get(ready)
            self._started = True
            if p.n_actors > 1:
                ip, port = ray.get(self.actors[0].master_address.remote())
                ray.get([a.init_process_group.remote(ip, port, p.backend) for a in self.actors],
                        timeout=start_timeout_s)
        except BaseException:
            self.shutdown()
            raise

    @property
    def size(self) -> int:
        return len(self.actors)

    def train(self, pool_keys: Sequence[str], n_steps: int, seed: int) -> dict[str, float]:
        """Data-parallel training on ``pool_keys`` for ``n_steps``; losses averaged over replicas."""
        stats = ray.get([a.train.remote(list(pool_keys), int(n_steps), int(seed)) for a in self.actors])
        out = {k: float(np.mean([s[k] for s in stats])) for k in stats[0] if k not in _TIMING_KEYS}
        out.update({k: max(s[k] for s in stats) for k in _TIMING_KEYS})
        return out

    def score(self, keys: Sequence[str]) -> list[dict[str, float]]:
        """Scores of ``keys``, sharded contiguously across the replicas, in the given order."""
        keys = list(keys)
        shards = [list(s) for s in np.array_split(np.arange(len(keys)), self.size) if len(s)]
        refs = [self.actors[i].score.remote([keys[j] for j in shard]) for i, shard in enumerate(shards)]
        out: list[dict[str, float]] = []
        for part in ray.get(refs):
            out.extend(part)
        return out

    def get_weights(self, rank: int = 0) -> dict[str, np.ndarray]:
        return ray.get(self.actors[rank].get_weights.remote())

    def all_weights(self) -> list[dict[str, np.ndarray]]:
        """Every replica's weights (to check that they agree)."""
        return ray.get([a.get_weights.remote() for a in self.actors])

    def get_state(self) -> dict[str, Any]:
        return ray.get(self.actors[0].get_state.remote())

    def set_state(self, state: dict[str, Any]) -> None:
        ref = ray.put(state)
        ray.get([a.set_state.remote(ref) for a in self.actors])

    def shutdown(self) -> None:
        """Leave the process group and kill the replicas (their names are free again afterwards)."""
        actors, self.actors = getattr(self, "actors", []), []
        if not actors:
            return
        if getattr(self, "_started", False):  # replicas that never started have no group to leave
            try:
                ray.get([a.close.remote() for a in actors], timeout=30)
            except Exception:  # a replica that is already gone cannot leave politely
                pass
        for a in actors:
            try:
                ray.kill(a)
            except Exception:
                pass


# ------------------------------------------------------------------------------------------------------------
# The coordinator used by the Tune trials
# ------------------------------------------------------------------------------------------------------------
@dataclass
class RoundSchedule:
    """Supernet steps per round: ``steps_per_arch x |pool|`` (the paper's "epochs x pool size"), clamped."""

    steps_per_arch: int = 30
    min_steps: int = 50
    max_steps: int = 100_000
    log_every: int = 50
    first_round_steps: int | None = None  # extra warm-up of the freshly initialised supernet in the seed round

    def steps(self, round_index: int, pool_size: int) -> int:
        n = min(self.max_steps, max(self.min_steps, self.steps_per_arch * pool_size))
        if round_index == 0 and self.first_round_steps:
            n += int(self.first_round_steps)
        return int(n)


class SupernetCoordinatorImpl:
    """Owns a :class:`SupernetGroup` for one search; see the module docstring. Exposed as ``SupernetCoordinator``.

    The round log names the reward statistics after ``backend.reward`` (``f"{reward}_min"``, ``_max``, ``_mean``).
    """

    def __init__(self, backend: SupernetBackend, schedule: RoundSchedule, *, seed: int,
                 placement: Placement | None = None, checkpoint_dir: str | None = None,
                 progress: bool = True) -> None:
        self.backend = backend
        self.schedule = schedule
        self.seed = int(seed)
        self.group = SupernetGroup(backend, seed=self.seed, placement=placement)
        self.cache: dict[int, dict[str, dict[str, float]]] = {}
        self.errors: dict[int, str] = {}
        self.log: list[dict[str, Any]] = []
        self.progress = progress
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        if self.checkpoint_dir is not None:
            self._restore()

    def info(self) -> dict[str, Any]:
        return {"actors": self.group.names, "placement": asdict(self.group.placement), "replicas": self.group.infos,
                "rounds_done": sorted(self.cache), "backend": self.backend.name, "reward": self.backend.reward,
                "mode": self.backend.mode}

    def score(self, round_index: int, pool: Sequence[str], key: str) -> dict[str, float]:
        """The score of ``key`` in round ``round_index`` (training and scoring the round's pool on first call)."""
        round_index = int(round_index)
        if round_index not in self.cache and round_index not in self.errors:
            try:
                self._run_round(round_index, list(pool))
            except Exception as exc:
                self.errors[round_index] = f"{type(exc).__name__}: {exc}"
                raise
        if round_index in self.errors:
            raise RuntimeError(f"supernet round {round_index} failed: {self.errors[round_index]}")
        scores = self.cache[round_index]
        if key not in scores:  # not in the pool this round was trained on: score it on the same weights
            scores[key] = dict(self.group.score([key])[0], round=round_index)
        return dict(scores[key])

    def _train_round(self, round_index: int, pool: list[str], n_steps: int) -> dict[str, float]:
        """Train the group on ``pool`` in chunks of ``log_every`` steps; the step-weighted sums of the losses."""
        seed = int(np.random.default_rng([self.seed, round_index]).integers(2**31 - 1))
        totals: dict[str, float] = {}
        done = 0
        bar = progress_bar(n_steps, f"supernet round {round_index} ({self.group.size} replicas)",
                           enabled=self.progress)
        while done < n_steps:
            chunk = min(self.schedule.log_every, n_steps - done)
            stats = self.group.train(pool, chunk, seed)
            for k, v in stats.items():
                if k not in ("seconds", "ms_per_step", "steps", "global_step"):
                    totals[k] = totals.get(k, 0.0) + v * chunk
            done += chunk
            if bar is not None:
                bar.update(chunk)
                bar.set_description(f"supernet round {round_index}: loss {stats['loss']:.3f}")
        if bar is not None:
            bar.close()
        return totals

    def _run_round(self, round_index: int, pool: list[str]) -> None:
        for k in pool:
            self.backend.parse_arch(k)  # a malformed key fails here, before minutes of training
        n_steps = self.schedule.steps(round_index, len(pool))
        t0 = time.perf_counter()
        totals = self._train_round(round_index, pool, n_steps)
        train_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        results = self.group.score(pool)
        score_seconds = time.perf_counter() - t1
        self.cache[round_index] = {k: dict(r, round=round_index, train_steps=n_steps) for k, r in zip(pool, results)}
        reward = self.backend.reward
        values = [r[reward] for r in results]
        entry = {"round": round_index, "pool_size": len(pool), "supernet_steps": n_steps,
                 "supernet_train_seconds": round(train_seconds, 2), "score_seconds": round(score_seconds, 2),
                 "ms_per_step": round(1000 * train_seconds / max(n_steps, 1), 1),
                 f"{reward}_min": float(np.min(values)), f"{reward}_max": float(np.max(values)),
                 f"{reward}_mean": float(np.mean(values))}
        entry.update({f"train_{k}": v / max(n_steps, 1) for k, v in totals.items()})
        self.log.append(entry)
        print(f"[supernet] round {round_index}: {n_steps} steps on {len(pool)} archs in {train_seconds:.0f}s "
              f"({entry['ms_per_step']:.0f} ms/step, {self.group.size} replicas), scored in {score_seconds:.1f}s, "
              f"{reward} {entry[f'{reward}_min']:.3f}..{entry[f'{reward}_max']:.3f}", flush=True)
        self._checkpoint(round_index)

    # -- checkpoints (resume) -------------------------------------------------------------------------
    def _checkpoint(self, round_index: int) -> None:
        if self.checkpoint_dir is None:
            return
        state = {"supernet": self.group.get_state(), "cache": {str(k): v for k, v in self.cache.items()},
                 "log": self.log, "round": round_index}
        save_state(self.checkpoint_dir / "supernet_state.npz", state)

    def _restore(self) -> None:
        path = self.checkpoint_dir / "supernet_state.npz"
        if not path.is_file():
            return
        state = load_state(path)
        self.group.set_state(state["supernet"])
        self.cache = {int(k): v for k, v in state["cache"].items()}
        self.log = list(state["log"])
        print(f"[supernet] resumed from {path} (rounds {sorted(self.cache)} done)", flush=True)

    def rescore(self, keys: Sequence[str]) -> dict[str, dict[str, float]]:
        """Scores of ``keys`` on the current (final) weights, sharded across the replicas: one scale for all."""
        keys = list(dict.fromkeys(keys))
        return dict(zip(keys, self.group.score(keys)))

    def rounds(self) -> list[dict[str, Any]]:
        """One entry per trained round (steps, timings, reward range, mean training losses)."""
        return list(self.log)

    def scores(self) -> dict[int, dict[str, dict[str, float]]]:
        return {k: dict(v) for k, v in self.cache.items()}

    def get_weights(self) -> dict[str, np.ndarray]:
        return self.group.get_weights()

    def shutdown(self) -> bool:
        self.group.shutdown()
        return True


@ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0)
class SupernetCoordinator(SupernetCoordinatorImpl):
    """The named Ray actor the Tune trials call (0 CPUs: it only waits on the replicas)."""


__all__ = [
    "ACTOR_PREFIX",
    "COORDINATOR_NAME",
    "Placement",
    "RoundSchedule",
    "SupernetActor",
    "SupernetCoordinator",
    "SupernetCoordinatorImpl",
    "SupernetGroup",
    "SupernetWorker",
    "plan_placement",
]
