"""The generic supernet actors on a second, non-TTS backend: the MBConv supernet of the ``mbconv`` space (width
0.25, stride-1 stem) on real Fashion-MNIST images (Debian's ``dataset-fashion-mnist``, found installed or fetched into the cache by ``locate_or_fetch``).

- the IDX reader on real-format files written here (gzip'd and plain) and its one-line errors;
- one in-process ``SupernetWorker`` learns (loss falls, top-1 rises) and scores deterministically;
- two CPU replicas (real local Ray, gloo) stay bitwise identical, and sharded scoring equals scoring the whole pool
  on one replica and in this process on the same state.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from seminas_ray.distributed.supernet_actor import SupernetWorker
from seminas_ray.distributed.supernet_actor import plan_placement
from seminas_ray.spaces.mbconv import MBConvSpace
from seminas_ray.tasks.imagenet import fashion_mnist
from seminas_ray.tasks.imagenet.data import ArraySource
from seminas_ray.tasks.imagenet.supernet_backend import ImageSupernetBackend

SPACE = MBConvSpace(net="search", width_mult=0.25, resolution=64, n_classes=10)  # 32x32 input, stride-1 stem
POOL = [SPACE.key(a) for a in SPACE.sample(np.random.default_rng(3), 5)]


def make_backend(**kwargs) -> ImageSupernetBackend:
    """384 real training images (6 global batches of 64) and 200 real validation images, padded to 32x32."""
    root = fashion_mnist.locate_or_fetch()
    train = ArraySource(*fashion_mnist.load_split(root, "train", limit=384), size=32)
    x, y = fashion_mnist.load_split(root, "test", limit=200)
    valid = ArraySource(x, y, size=32, mean=train.mean, std=train.std)
    return ImageSupernetBackend(train, valid, SPACE, stem_stride=1, **{"batch_size": 64, "lr": 0.1, **kwargs})


@pytest.fixture(scope="module")
def backend() -> ImageSupernetBackend:
    return make_backend(augment=False)


@pytest.fixture
def torch_threads():
    """In-process workers set torch's thread count; give the rest of the session its own back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


# ------------------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------------------
def test_idx_reader_on_real_format_files_and_its_errors(tmp_path: Path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7).astype(np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(labels))  # plain, unpacked
    x, y = fashion_mnist.load_split(tmp_path, "train")
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    assert x.dtype == np.uint8 and y.dtype == np.int64
    x3, y3 = fashion_mnist.load_split(tmp_path, "train", limit=3)
    np.testing.assert_array_equal(x3, images[:3])
    np.testing.assert_array_equal(y3, labels[:3])
    ints = np.arange(6, dtype=np.int32).reshape(2, 3) - 2
    (tmp_path / "ints.idx").write_bytes(_idx_bytes(ints, 0x0C))  # other IDX types read too (big-endian)
    np.testing.assert_array_equal(fashion_mnist.read_idx(tmp_path / "ints.idx"), ints)

    bad = tmp_path / "bad-magic.gz"
    bad.write_bytes(gzip.compress(b"\x12\x34\x08\x03" + _idx_bytes(images)[4:]))
    with pytest.raises(ValueError, match=r"bad-magic\.gz: not an IDX file \(magic 0x12340803\)"):
        fashion_mnist.read_idx(bad)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: IDX magic 0x00000801, expected 0x00000803"):
        fashion_mnist.read_idx(tmp_path / "train-labels-idx1-ubyte", magic=fashion_mnist.IMAGES_MAGIC)
    short = tmp_path / "short"
    short.write_bytes(_idx_bytes(images)[:-5])
    with pytest.raises(ValueError, match=r"short: truncated IDX file"):
        fashion_mnist.read_idx(short)
    long = tmp_path / "long"
    long.write_bytes(_idx_bytes(labels) + b"\0")
    with pytest.raises(ValueError, match=r"long: IDX file longer than its header says"):
        fashion_mnist.read_idx(long)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(_idx_bytes(images))[:200])
    with pytest.raises(ValueError, match=r"cut\.gz: unreadable IDX file"):
        fashion_mnist.read_idx(cut)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        fashion_mnist.load_split(tmp_path, "test")


def test_fetch_without_apt_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(fashion_mnist.shutil, "which", lambda tool: None)
    with pytest.raises(RuntimeError, match="apt-get and dpkg-deb is unavailable .* copy its IDX files into"):
        fashion_mnist.fetch(tmp_path)


def test_locate_prefers_the_installed_package_then_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    system, cache = tmp_path / "usr-share", tmp_path / "cache"
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", system)
    monkeypatch.setenv("SEMINAS_CACHE_DIR", str(cache))
    monkeypatch.delenv("SEMINAS_DATA_DIR", raising=False)
    assert fashion_mnist.locate() is None
    names = [n for pair in fashion_mnist.FILES.values() for n in pair]
    cached = cache / fashion_mnist.CACHE_NAME
    for name in names[:-1]:
        (cached / name).write_bytes(b"")
    assert fashion_mnist.locate() is None  # three of the four files are not enough
    (cached / names[-1].removesuffix(".gz")).write_bytes(b"")  # unpacked counts too
    assert fashion_mnist.locate() == cached
    system.mkdir()
    for name in names:
        (system / name).write_bytes(b"")
    assert fashion_mnist.locate_or_fetch() == system  # the installed package wins


def test_real_fashion_mnist_is_found_or_fetched():
    root = fashion_mnist.locate_or_fetch()
    x, y = fashion_mnist.load_split(root, "test", limit=500)
    assert x.shape == (500, 28, 28) and x.dtype == np.uint8 and 30 < x.mean() < 120  # real pictures, not noise
    assert set(np.unique(y)) == set(range(10))


# ------------------------------------------------------------------------------------------------------------
# the backend in one process
# ------------------------------------------------------------------------------------------------------------
def test_backend_contract(backend: ImageSupernetBackend):
    assert (backend.name, backend.reward, backend.mode) == ("mbconv", "top1", "max")
    assert backend.parse_arch(POOL[0]) == SPACE.coerce(POOL[0]).tokens
    for key, why in [("1 5 7", "21 layer tokens"), ("7" + " 1" * 20, "cannot be skip"), ("8" + " 1" * 20, "1..7")]:
        with pytest.raises(ValueError, match=why):
            backend.parse_arch(key)
    assert backend.num_batches() == 6
    x0, y0 = backend.batch(2, 0, 2, "cpu")
    x1, y1 = backend.batch(2, 1, 2, "cpu")
    xa, ya = backend.batch(2, 0, 1, "cpu")
    assert x0.shape == (32, 3, 32, 32) and y0.dtype == torch.int64
    torch.testing.assert_close(torch.stack([x0, x1], 1).reshape(64, 3, 32, 32), xa, rtol=0, atol=0)
    torch.testing.assert_close(torch.stack([y0, y1], 1).reshape(64), ya, rtol=0, atol=0)
    replica = backend.build(0, "cpu")
    arch = backend.parse_arch("1 7 2 3 4 5 6 1 2 3 4 5 6 1 2 3 4 5 6 1 2")
    path = backend.path_parameters(replica.model, arch)
    names = {id(p): n for n, p in replica.model.named_parameters()}
    used = [names[id(p)] for p in path]
    assert used[0].startswith("stem.") and used[-1].startswith("classifier.")
    assert {n.split(".")[2] for n in used if n.startswith("layers.1.")} == set()  # the skip has none
    assert len(set(used)) == len(used) < len(names)
    assert sum(p.numel() for p in path) == SPACE.cost(arch)["params"]

    cosine = make_backend(total_steps=10)
    ran, resumed = cosine.build(0, "cpu"), cosine.build(0, "cpu")
    for _ in range(4):
        ran.optimizer.step()
        ran.scheduler.step()
    cosine.resume_scheduler(resumed, 4)  # after a restore at step 4 the schedule goes on from there
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(ran.optimizer.param_groups[0]["lr"])
    assert ran.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * (1 + np.cos(np.pi * 0.4)))


def test_in_process_worker_learns_and_scores_deterministically(backend: ImageSupernetBackend, torch_threads):
    worker = SupernetWorker(0, 1, backend, seed=0)
    before = worker.score(POOL)
    first = worker.train(POOL, 6, seed=1)  # one epoch
    worker.train(POOL, 12, seed=2)         # two more
    last = worker.train(POOL, 6, seed=3)   # and the fourth
    assert first["steps"] == 6 and worker.step == 24
    assert last["loss"] < first["loss"] - 0.25, (first, last)
    weights = worker.get_weights()
    after = worker.score(POOL)
    assert all(0.0 <= s["top1"] <= 1.0 and np.isfinite(s["loss"]) for s in before + after)
    # 24 steps of a 21-layer supernet: well above chance (0.1), not yet good
    assert np.mean([s["top1"] for s in after]) > max(0.15, np.mean([s["top1"] for s in before]) + 0.05)
    assert worker.score(POOL[::-1])[::-1] == after  # order and neighbours change nothing
    for k, v in worker.get_weights().items():  # scoring recalibrates BatchNorm and puts everything back
        np.testing.assert_array_equal(v, weights[k], err_msg=k)


# ------------------------------------------------------------------------------------------------------------
# two CPU replicas through Ray
# ------------------------------------------------------------------------------------------------------------
def test_two_replicas_stay_identical_and_sharded_scoring_matches(backend: ImageSupernetBackend, ray_local,
                                                                  torch_threads):
    ray = ray_local
    from seminas_ray.distributed.supernet_actor import SupernetGroup

    group = SupernetGroup(backend, seed=3, placement=plan_placement(2, actor_cpus=1.0), name_prefix="image")
    try:
        initial = group.all_weights()
        stats = group.train(POOL, 12, seed=5)  # two epochs, every step all-reduced over gloo
        assert stats["steps"] == 12 and np.isfinite(stats["loss"]) and 0.0 <= stats["top1"] <= 1.0
        weights = group.all_weights()
        for k in weights[0]:
            np.testing.assert_array_equal(weights[0][k], weights[1][k], err_msg=k)
        assert sum(not np.array_equal(initial[0][k], weights[0][k]) for k in weights[0]) > 20
        sharded = group.score(POOL)                                       # ranks 0 and 1 score 3 + 2 keys
        alone = ray.get(group.actors[0].score.remote(POOL))               # rank 0 scores all 5
        others = ray.get(group.actors[1].score.remote(POOL[::-1]))[::-1]  # rank 1 scores all 5, reversed
        state = group.get_state()
        for a, b in zip(weights, group.all_weights()):  # scoring left the replicas as they were
            for k in a:
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    finally:
        group.shutdown()
    assert len(sharded) == len(POOL) and all(0.0 <= s["top1"] <= 1.0 for s in sharded)
    assert sharded == alone == others
    local = SupernetWorker(0, 1, backend, seed=3)  # this process, the group's state: the same numbers again
    local.set_state(state)
    assert local.score(POOL) == sharded
