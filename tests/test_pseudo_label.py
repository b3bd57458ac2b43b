"""Pseudo-labelling pools: local loop vs Ray tasks (real local Ray), exclusion, determinism, shard plans, dedupe,
and the task resource choice on a GPU-less cluster. Real spaces and real controller predictions throughout."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from seminas_ray.algorithm.pseudo_label import LocalPseudoLabeler
from seminas_ray.algorithm.pseudo_label import first_occurrences
from seminas_ray.algorithm.pseudo_label import index_pool
from seminas_ray.algorithm.pseudo_label import label_shard
from seminas_ray.algorithm.pseudo_label import merge_shards
from seminas_ray.algorithm.pseudo_label import sample_distinct
from seminas_ray.algorithm.pseudo_label import sample_shard
from seminas_ray.algorithm.pseudo_label import shard_plan
from seminas_ray.benchmarks.loading import load_table
from seminas_ray.controller import ControllerConfig
from seminas_ray.controller import NAOController
from seminas_ray.spaces.nasbench101 import NB101Space
from seminas_ray.spaces.nasbench201 import NB201Space
from seminas_ray.spaces.nb101_arrays import NB101Arrays
from seminas_ray.spaces.tts import TTSSpace

SPACES = ["nb101", "nb201", "nb101-restricted", "tts"]


@pytest.fixture(scope="module")
def spaces(nb101_subset_path) -> dict:
    """NB101 over the real 20,001-cell subset as its enumeration, NB201, the subset table's restricted space (what a
    search on the subset uses), and TTS (not a finite table: the per-shard sampling path)."""
    with np.load(nb101_subset_path) as data:
        cells = NB101Arrays(data["hash"], data["n_vertices"], data["adjacency"], data["labels"])
    return {
        "nb101": NB101Space(enumeration=cells),
        "nb201": NB201Space(),
        "nb101-restricted": load_table(nb101_subset_path).restricted_space(),
        "tts": TTSSpace(),
    }


@pytest.fixture
def one_thread():
    """Predict with one PyTorch thread, as a Ray task with one CPU does, so predictions can be compared bit for bit."""
    before = torch.get_num_threads()
    yield ControllerConfig(hidden_size=16, mlp_hidden_size=16, num_threads=1)
    torch.set_num_threads(before)


def weights_for(space, cfg: ControllerConfig) -> dict[str, np.ndarray]:
    return NAOController(space, cfg, seed=0).get_weights()


def keys_of_tokens(space, seqs: np.ndarray) -> list[str]:
    archs = [space.decode(row) for row in seqs]
    assert all(a is not None for a in archs), "the pool holds a sequence that is not an architecture"
    return [space.key(a) for a in archs]


def some_keys(space, n: int, seed: int) -> frozenset[str]:
    return frozenset(space.key(a) for a in sample_distinct(space, n, np.random.default_rng(seed), frozenset()))


@pytest.mark.parametrize("name", SPACES)
def test_local_and_ray_pools_are_identical(ray_local, spaces, one_thread, name):
    from seminas_ray.distributed.pseudo_label import RayPseudoLabeler

    space, cfg = spaces[name], one_thread
    weights = weights_for(space, cfg)
    exclude = some_keys(space, 200, seed=5)
    local = LocalPseudoLabeler(shard_size=700)(space, cfg, weights, 3000, 7, exclude)
    remote = RayPseudoLabeler(shard_size=700)(space, cfg, weights, 3000, 7, exclude)  # 5 shards, 2 workers
    assert local[0].dtype == remote[0].dtype == np.int8 and local[1].dtype == remote[1].dtype == np.float32
    assert local[0].shape == (3000, space.seq_len) and len(set(map(bytes, local[0]))) == 3000
    np.testing.assert_array_equal(remote[0], local[0])
    np.testing.assert_array_equal(remote[1], local[1])  # same maths, same thread count: bit for bit
    assert np.isfinite(local[1]).all() and np.ptp(local[1]) > 0
    # and the predictions are the controller's own
    controller = NAOController(space, cfg, seed=0)
    np.testing.assert_allclose(local[1], controller.predict(local[0].astype(np.int64)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", SPACES)
def test_excluded_keys_never_appear(spaces, name):
    space = spaces[name]
    exclude = some_keys(space, 5000, seed=1)
    seqs = sample_shard(space, 4000, 2, exclude)
    keys = keys_of_tokens(space, seqs)
    assert len(keys) == 4000 == len(set(keys))
    assert not set(keys) & exclude


def test_a_space_that_runs_out_gives_every_remaining_architecture(spaces, one_thread):
    space = spaces["nb201"]  # 15,625 cells
    exclude = some_keys(space, 9000, seed=3)
    seqs, preds = LocalPseudoLabeler(shard_size=4000)(space, one_thread, weights_for(space, one_thread),
                                                        20_000, 4, exclude)
    keys = keys_of_tokens(space, seqs)
    assert len(keys) == len(set(keys)) == len(preds) == 15_625 - 9000
    assert not set(keys) & exclude
    archs = sample_distinct(space, 20_000, np.random.default_rng(0), exclude)
    assert len(archs) == 15_625 - 9000 and not {space.key(a) for a in archs} & exclude


@pytest.mark.parametrize("name", SPACES)
def test_pools_are_deterministic_per_seed(spaces, one_thread, name):
    space, cfg = spaces[name], one_thread
    weights = weights_for(space, cfg)
    labeler = LocalPseudoLabeler(shard_size=400)
    first, again, other = (labeler(space, cfg, weights, 1000, seed, frozenset()) for seed in (11, 11, 12))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])
    if index_pool(space) is not None:
        # an indexed pool is a function of (space, seed, exclude, n) alone: shard size does not matter, and one
        # shard of n is label_shard itself
        bigger = LocalPseudoLabeler(shard_size=10_000)(space, cfg, weights, 1000, 11, frozenset())
        np.testing.assert_array_equal(bigger[0], first[0])
        np.testing.assert_array_equal(bigger[1], first[1])
        seqs, preds = label_shard(space, cfg, weights, 1000, 11, frozenset())
        np.testing.assert_array_equal(seqs, first[0])
        np.testing.assert_array_equal(preds, first[1])


@pytest.mark.parametrize("n,shard_size", [(1, 5), (999, 1000), (1000, 1000), (1001, 1000), (10_000, 700),
                                          (1_000_000, 20_000)])
def test_shard_plan_covers_the_pool(n, shard_size):
    sizes = shard_plan(n, shard_size)
    assert sum(sizes) >= n and all(0 < s <= shard_size for s in sizes)
    assert sum(shard_plan(n, shard_size, oversample=0.0)) == n
    assert shard_plan(0, shard_size) == []


@pytest.mark.parametrize("name", SPACES)
def test_merged_pool_has_exactly_n_distinct_sequences(spaces, one_thread, name):
    space = spaces[name]
    seqs, preds = LocalPseudoLabeler(shard_size=300)(space, one_thread, weights_for(space, one_thread), 2000, 9,
                                                     frozenset())
    assert len(seqs) == len(preds) == 2000
    assert len(first_occurrences(seqs)) == 2000


def test_merge_keeps_first_occurrences_in_shard_order():
    rng = np.random.default_rng(0)
    parts = [(rng.integers(1, 4, size=(500, 5)).astype(np.int8), rng.random(500).astype(np.float32))
             for _ in range(3)]
    seqs, preds = merge_shards(parts, 100, 5)
    all_seqs = np.concatenate([p[0] for p in parts])
    all_preds = np.concatenate([p[1] for p in parts])
    _, first = np.unique(all_seqs, axis=0, return_index=True)
    expected = np.sort(first)[:100]
    np.testing.assert_array_equal(seqs, all_seqs[expected])
    np.testing.assert_array_equal(preds, all_preds[expected])
    # rows wider than one packed word (NB101: 27 tokens of 3 bits) and a token range needing a full byte
    wide = rng.integers(0, 7, size=(4000, 27)).astype(np.int8)
    wide[2000:] = wide[:2000]
    np.testing.assert_array_equal(first_occurrences(wide), np.arange(2000))
    big = rng.integers(0, 120, size=(3000, 12)).astype(np.int8)
    big[::3] = big[0]
    np.testing.assert_array_equal(first_occurrences(big), np.sort(np.unique(big, axis=0, return_index=True)[1]))


@pytest.mark.parametrize("name", ["nb101", "nb201", "nb101-restricted"])
def test_sample_distinct_draws_like_space_sample(spaces, name):
    """With nothing excluded and no repeats the first draw is ``space.sample``'s, and the RNG ends in the same state."""
    space = spaces[name]
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    got = sample_distinct(space, 100, rng_a, frozenset())
    expected = space.sample(rng_b, int(100 * 1.1) + 8)[:100]
    assert [space.key(a) for a in got] == [space.key(a) for a in expected]
    assert rng_a.integers(1 << 30) == rng_b.integers(1 << 30)


def test_task_options_never_ask_for_what_the_cluster_lacks(ray_local):
    from seminas_ray.distributed.pseudo_label import choose_task_options
    from seminas_ray.distributed.pseudo_label import task_options

    cpu_nodes = [{"CPU": 2.0, "memory": 1e9}, {"CPU": 1.0}]
    assert choose_task_options(cpu_nodes, 1.0) == {"num_cpus": 1.0}
    assert choose_task_options(cpu_nodes, 4.0) == {"num_cpus": 2.0}  # lowered to the largest node, not pending
    assert choose_task_options(cpu_nodes + [{"CPU": 8.0, "GPU": 1.0}], 1.0) == {"num_gpus": 0.25, "num_cpus": 1}
    with pytest.raises(RuntimeError, match="no Ray node has a CPU"):
        choose_task_options([{"GPU": 1.0}], 1.0)

    # the real GPU-less local cluster: CPU options, and a task launched with them runs
    options = task_options(1.0)
    assert options == {"num_cpus": 1.0} and "num_gpus" not in options
    ray = ray_local

    @ray.remote
    def probe() -> int:
        return 1

    assert ray.get(probe.options(**options).remote(), timeout=60) == 1
