"""Supernet replicas as Ray actors: data-parallel training keeps them identical, sharded scoring equals one actor's
scoring, the actors are named and visible in the state API, and requests the cluster cannot meet fail fast.

Real local Ray (2 CPUs), real torch.distributed (gloo), the real supernet at the smoke width, on a toy corpus whose
alignment is learnable (each character is a fixed random mel frame held for 3 frames).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from seminas_ray.distributed import supernet_actor
from seminas_ray.distributed.supernet_actor import Placement
from seminas_ray.distributed.supernet_actor import RoundSchedule
from seminas_ray.distributed.supernet_actor import SupernetWorker
from seminas_ray.distributed.supernet_actor import plan_placement
from seminas_ray.tasks.tts import text as tts_text
from seminas_ray.tasks.tts.model import preset
from seminas_ray.tasks.tts.packing import pack_items
from seminas_ray.tasks.tts.packing import unpack_items
from seminas_ray.tasks.tts.supernet_backend import TTSSupernetBackend
from seminas_ray.tasks.tts.training import make_batches
from seminas_ray.utils.batching import batch_plan

POOL = ["1 2 3 4 5 6 | 7 8 9 10 11 1", "9 9 9 9 9 9 | 9 9 9 9 9 9", "11 11 11 11 11 11 | 11 11 11 11 11 11",
        "10 10 4 3 6 3 | 9 2 4 2 11 6", "7 1 8 2 9 3 | 4 10 5 11 6 1"]


def toy_items(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    table = np.random.default_rng(123).standard_normal((tts_text.vocab_size, 80)).astype(np.float32)
    items = []
    for _ in range(n):
        chars = rng.integers(2, tts_text.vocab_size, size=int(rng.integers(5, 14)))
        items.append((chars, np.repeat(table[chars], 3, axis=0)))
    return items


SEED = 1
TRAIN, VALID = pack_items(toy_items(40, 0)), pack_items(toy_items(6, 1))
BACKEND = TTSSupernetBackend(preset("smoke", vocab_size=tts_text.vocab_size).to_dict(), TRAIN, VALID, batch_size=8,
                             valid_batch_size=4)


@pytest.fixture(scope="module")
def ray_with_state_api():
    """Local Ray with the default (headless) dashboard, so ``ray.util.state`` can list actors."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_pack_items_round_trip_and_batch_plan():
    items = toy_items(11, 3)
    back = unpack_items(pack_items(items))
    assert len(back) == 11
    for (c, m), (c2, m2) in zip(items, back):
        np.testing.assert_array_equal(c, c2)
        np.testing.assert_allclose(m, m2.astype(np.float32), atol=2e-3)  # float16 storage
    lengths = [len(m) for _, m in items]
    plan = batch_plan(lengths, batch_size=4, max_frames=None, min_size=2)
    assert sorted(i for g in plan for i in g) == list(range(11))
    assert all(2 <= len(g) <= 5 for g in plan)  # the short tail is merged so both replicas get data
    with pytest.raises(ValueError, match="cannot feed"):
        batch_plan([10], batch_size=4, max_frames=None, min_size=2)
    # standalone TTS batching is the same grouping (min_size 1), with the characters breaking length ties
    by_frames = make_batches(items, r=3, batch_size=None, max_frames=60)
    groups = batch_plan(lengths, max_frames=60)
    assert [len(b["chars"]) for b in by_frames] == [len(g) for g in groups] and batch_plan([], batch_size=4) == []


def test_generic_layer_imports_no_task():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(supernet_actor))
    modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in modules if m and m.startswith(("seminas_ray.tasks", "seminas_ray.spaces"))]


def test_worker_without_ray_trains_and_restores_bitwise():
    """One in-process replica: a restored copy continues exactly like the original (optimiser state, LR step)."""
    a = SupernetWorker(0, 1, BACKEND, SEED)
    a.train(POOL, 3, seed=5)
    b = SupernetWorker(0, 1, BACKEND, SEED)  # one backend object serves both (each works on its own copy)
    b.set_state(a.get_state())
    sa, sb = [(torch.manual_seed(9), w.train(POOL, 2, seed=5))[1] for w in (a, b)]  # in-process: one dropout RNG
    assert sa["loss"] == sb["loss"] and sa["global_step"] == 5.0
    wa, wb = a.get_weights(), b.get_weights()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert a.score(POOL[:2]) == b.score(POOL[:2])


def test_placement_refuses_what_the_cluster_cannot_grant():
    cpu_only = {"CPU": 2.0}
    p = plan_placement(resources=cpu_only, reserved_cpus=1.1)
    assert (p.n_actors, p.use_gpu, p.backend) == (2, False, "gloo") and p.num_cpus * 2 <= 0.9 + 1e-9
    with pytest.raises(ValueError, match="do not fit"):
        plan_placement(3, actor_cpus=1.0, resources=cpu_only)
    with pytest.raises(ValueError, match="GPU"):
        plan_placement(use_gpu=True, resources=cpu_only)
    gpu = plan_placement(resources={"CPU": 16.0, "GPU": 4.0})
    assert (gpu.n_actors, gpu.num_gpus, gpu.backend, gpu.device) == (4, 1.0, "nccl", "cuda")


def test_data_parallel_replicas_stay_identical_and_sharded_scoring_matches(ray_with_state_api):
    ray = ray_with_state_api
    from ray.util.state import list_actors

    from seminas_ray.distributed.supernet_actor import SupernetGroup

    group = SupernetGroup(BACKEND, seed=SEED, placement=plan_placement(2, actor_cpus=1.0))
    try:
        before = group.all_weights()
        for k in before[0]:  # same seed, same initial weights
            np.testing.assert_array_equal(before[0][k], before[1][k])
        stats = group.train(POOL, 8, seed=3)
        assert stats["steps"] == 8 and np.isfinite(stats["loss"])
        after = group.all_weights()
        for k in after[0]:
            np.testing.assert_array_equal(after[0][k], after[1][k], err_msg=k)
        changed = [k for k in before[0] if not np.array_equal(before[0][k], after[0][k])]
        assert len(changed) > 50  # the shared parts and the sampled paths moved

        # named, findable and listed (what the dashboard's Actors view shows)
        assert ray.get(ray.get_actor("supernet-1").info.remote())["rank"] == 1
        alive = list_actors(address=ray.get_runtime_context().gcs_address,
                            filters=[("class_name", "=", "SupernetActor"), ("state", "=", "ALIVE")])
        assert {a.name for a in alive} == {"supernet-0", "supernet-1"}

        sharded = group.score(POOL)
        state = group.get_state()
    finally:
        group.shutdown()
    assert len(sharded) == len(POOL) and all(0.0 <= s["dfr"] <= 1.0 for s in sharded)

    single = SupernetGroup(BACKEND, seed=SEED, placement=plan_placement(1, actor_cpus=1.0), name_prefix="single")
    try:
        single.set_state(state)
        alone = single.score(POOL)
        np.testing.assert_array_equal(single.get_weights()["embed.weight"], after[0]["embed.weight"])
    finally:
        single.shutdown()
    for a, b in zip(alone, sharded):
        assert a == b  # same weights, same seed per architecture: the sharding changes nothing


def test_coordinator_trains_once_per_round_and_caches(ray_with_state_api):
    ray = ray_with_state_api
    from seminas_ray.distributed.supernet_actor import SupernetCoordinator

    coordinator = SupernetCoordinator.options(name="supernet-coordinator").remote(
        BACKEND, RoundSchedule(steps_per_arch=2, min_steps=4, log_every=4), seed=SEED,
        placement=plan_placement(2, actor_cpus=0.5), checkpoint_dir=None, progress=False)
    try:
        pool = POOL[:3]
        first = ray.get([coordinator.score.remote(0, pool, k) for k in pool])
        again = ray.get(coordinator.score.remote(0, pool, pool[1]))
        rounds = ray.get(coordinator.rounds.remote())
        assert len(rounds) == 1 and rounds[0]["supernet_steps"] == 6 and rounds[0]["pool_size"] == 3
        assert rounds[0]["dfr_min"] <= rounds[0]["dfr_mean"] <= rounds[0]["dfr_max"]  # named after backend.reward
        assert again == first[1] and all(r["round"] == 0 for r in first)
        ray.get(coordinator.score.remote(1, POOL[3:], POOL[3]))
        assert [r["round"] for r in ray.get(coordinator.rounds.remote())] == [0, 1]
        final = ray.get(coordinator.rescore.remote(POOL))
        assert list(final) == POOL and all(0.0 <= v["dfr"] <= 1.0 for v in final.values())
        with pytest.raises(ray.exceptions.RayTaskError, match="not a TTS|op token|layer"):
            ray.get(coordinator.score.remote(2, ["not an arch"], "not an arch"))
    finally:
        ray.get(coordinator.shutdown.remote())
        ray.kill(coordinator)


def test_replicas_that_cannot_be_placed_fail_instead_of_waiting(ray_with_state_api):
    from seminas_ray.distributed.supernet_actor import SupernetGroup

    impossible = Placement(n_actors=1, use_gpu=False, num_cpus=4.0, num_gpus=0.0, backend="gloo", device="cpu",
                           threads=1)
    with pytest.raises(RuntimeError, match="started within"):
        SupernetGroup(BACKEND, seed=SEED, placement=impossible, name_prefix="never", start_timeout_s=5)
