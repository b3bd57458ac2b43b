"""``--task imagenet``: the FLOPs constraint in the search, the stride-1-stem costs, the ImageFolder loader on real
images written here, the MBConv supernet backend on that folder, bad input, and the smoke preset end to end
(``experiments/run.py`` subprocess, real Ray/Tune, real Fashion-MNIST, real training)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from results_checks import undocumented
import torch
from PIL import Image

from seminas_ray.algorithm.config import build_config
from seminas_ray.algorithm.direct import ask_tell_loop
from seminas_ray.algorithm.registry import make_method
from seminas_ray.spaces.mbconv import ALL_K3E6
from seminas_ray.spaces.mbconv import SEMINASNET
from seminas_ray.spaces.mbconv import MBConvSpace
from seminas_ray.spaces.nasbench201 import NB201Space
from seminas_ray.tasks.imagenet import fashion_mnist
from seminas_ray.tasks.imagenet.data import load_image_folder
from seminas_ray.tasks.imagenet.final import choose_candidates
from seminas_ray.tasks.imagenet.final import mobilenet_baseline
from seminas_ray.tasks.imagenet.geometry import ImageGeometry
from seminas_ray.tasks.imagenet.geometry import constrained_space
from seminas_ray.tasks.imagenet.geometry import run_budget
from seminas_ray.tasks.imagenet.mbconv_net import build_network
from seminas_ray.tasks.imagenet.supernet import MBConvSupernet

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "experiments" / "run.py")]
SMALL = ImageGeometry(input_size=32, stem_stride=1, width_mult=0.25, n_classes=10)


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")
    return subprocess.run(RUN + list(args), capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


# ------------------------------------------------------------------------------------------------------------
# the constraint and the costs
# ------------------------------------------------------------------------------------------------------------
def test_feasible_hook_is_the_budget_for_mbconv_and_true_elsewhere():
    space = constrained_space(SMALL)
    rng = np.random.default_rng(0)
    free = SMALL.space()
    archs = free.sample(rng, 200)
    assert [space.feasible(a) for a in archs] == [space.within_budget(a) for a in archs]
    assert not all(space.feasible(a) for a in archs) and any(space.feasible(a) for a in archs)
    assert free.feasible(archs[0]) and NB201Space().feasible(NB201Space().sample(rng, 1)[0])
    # the paper's setting: SemiNASNet sits exactly at the limit, about a fifth of the space fits
    assert run_budget(ImageGeometry(224, 2, 1.0, 1000)) == 600_000_000
    assert space.within_budget(SEMINASNET)
    with pytest.raises(ValueError, match="below the cheapest architecture"):
        constrained_space(SMALL, budget_224=50e6)


def _search(space: MBConvSpace, cfg) -> tuple[list, list]:
    """A SemiNAS run whose reward grows with FLOPs, so generation pushes against the budget."""
    opt = make_method("seminas", space, 0, cfg)
    asked, scale = [], float(space.max_flops)

    def reward(arch) -> float:
        asked.append(arch)
        return space.cost(arch)["flops"] / scale

    ask_tell_loop(opt, reward, batch=4)
    return asked, opt.rounds_log


def test_seminas_generation_rejects_over_budget_decodes(monkeypatch):
    space = constrained_space(SMALL)
    cfg = build_config(None, None, ["n_seed=12", "n_unlabelled=60", "n_per_round=8", "n_rounds=1", "top_k=12",
                                    "pretrain_epochs=30", "train_epochs=10", "fill_with_predicted=false"])
    asked, log = _search(space, cfg)
    assert len(asked) == 20 and all(space.within_budget(a) for a in asked) and log[-1]["n_generated"] == 8
    # a tighter limit for generation than for seeding: the median seed cost. Rewards grow with FLOPs, so without
    # the hook ascent from the best (costliest) seeds goes past it; with it every generated one stays below
    limit = float(np.median([space.cost(a)["flops"] for a in asked[:12]]))
    unconstrained, free_log = _search(space, cfg)
    assert max(space.cost(a)["flops"] for a in unconstrained[12:]) > limit
    monkeypatch.setattr(MBConvSpace, "feasible", lambda self, arch: self.cost(arch)["flops"] <= limit)
    constrained, log = _search(space, cfg)
    assert constrained[:12] == asked[:12] and len(constrained) > 12  # rejected decodes: fewer found, none over
    assert all(space.cost(a)["flops"] <= limit for a in constrained[12:])
    assert log[-1]["max_step_size_used"] > free_log[-1]["max_step_size_used"]  # the step size kept growing


def test_stride1_stem_network_costs_what_the_space_counts():
    from torch.utils.flop_counter import FlopCounterMode

    space = SMALL.space()
    assert space.resolution == 64
    for arch in (SEMINASNET, ALL_K3E6):
        net = build_network(arch, space, stem_stride=1).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(torch.zeros(1, 3, 32, 32))
        assert counter.get_total_flops() == 2 * space.cost(arch)["flops"]
        assert sum(p.numel() for p in net.parameters()) == space.cost(arch)["params"]
    supernet = MBConvSupernet(SMALL.space("search"), stem_stride=1)
    search = SMALL.space("search")
    path = {id(p) for p in supernet.path_parameters(SEMINASNET.tokens)}
    assert sum(p.numel() for p in supernet.parameters() if id(p) in path) == search.cost(SEMINASNET)["params"]
    assert supernet(torch.zeros(2, 3, 32, 32), SEMINASNET.tokens).shape == (2, 10)


def test_baselines_fit_the_budget():
    space = constrained_space(SMALL)
    base = mobilenet_baseline(space)
    assert space.within_budget(base) and set(base.tokens) <= {2, 7}
    loose = SMALL.space(flops_budget=SMALL.space().max_flops)
    assert mobilenet_baseline(loose) == ALL_K3E6
    found = [space.key(a) for a in space.sample(np.random.default_rng(1), 3)]
    cands = choose_candidates(space, found, 2, seed=0)
    assert [c.role for c in cands] == ["seminas"] * 2 + ["mobilenetv2"] + ["random"] * 2
    assert len({c.key for c in cands}) == 5 and all(space.within_budget(c.key) for c in cands)


# ------------------------------------------------------------------------------------------------------------
# the ImageFolder loader on real images
# ------------------------------------------------------------------------------------------------------------
def write_image_folder(root: Path, per_class: int = 12, n_classes: int = 3, val_per_class: int = 4) -> Path:
    """Real Fashion-MNIST pictures saved as JPEG in ``train/<class>/`` and ``val/<class>/`` (RGB, 36x36)."""
    images, labels = fashion_mnist.load_split(fashion_mnist.locate_or_fetch(), "test", limit=2000)
    for split, count in (("train", per_class), ("val", val_per_class)):
        for c in range(n_classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            picks = np.flatnonzero(labels == c)[: count] if split == "train" else np.flatnonzero(labels == c)[-count:]
            for j, i in enumerate(picks):
                Image.fromarray(images[i]).convert("RGB").resize((36, 36)).save(folder / f"img_{j}.JPEG")
    return root


def test_image_folder_loader_and_backend_on_real_jpegs(tmp_path):
    from seminas_ray.distributed.supernet_actor import SupernetWorker
    from seminas_ray.tasks.imagenet.supernet_backend import ImageSupernetBackend

    root = write_image_folder(tmp_path / "tree")
    data = load_image_folder(root, n_valid=6, n_train=None, n_test=None, size=32, seed=0)
    assert (len(data.train), len(data.valid), len(data.test), data.n_classes) == (30, 6, 12, 3)
    assert data.classes == ["n00000000", "n00000001", "n00000002"] and data.stem_stride == 2
    x = data.train.load(np.arange(4), train=True, rng=np.random.default_rng(0))
    e1, e2 = data.valid.load(np.arange(3), train=False), data.valid.load(np.arange(3), train=False)
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.uint8 and np.array_equal(e1, e2) and e1.std() > 10
    geo = ImageGeometry(data.input_size, data.stem_stride, 0.25, data.n_classes)
    backend = ImageSupernetBackend(data.train, data.valid, geo.space("search"), stem_stride=2, batch_size=10)
    before = torch.get_num_threads()
    try:
        worker = SupernetWorker(0, 1, backend, seed=0)
        pool = [geo.space().key(a) for a in geo.space().sample(np.random.default_rng(0), 3)]
        stats = worker.train(pool, 3, seed=1)
        scores = worker.score(pool)
        again = worker.score(pool[::-1])[::-1]  # deterministic, whatever the order (same thread count)
    finally:
        torch.set_num_threads(before)
    assert stats["steps"] == 3 and np.isfinite(stats["loss"])
    assert all(0.0 <= s["top1"] <= 1.0 for s in scores) and again == scores


# ------------------------------------------------------------------------------------------------------------
# bad input: one line, nothing written
# ------------------------------------------------------------------------------------------------------------
def _refused(tmp_path: Path, *args: str, needle: str) -> None:
    out = tmp_path / "out"
    proc = run_cli("--task", "imagenet", "--preset", "smoke", "--out", str(out), *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_bad_inputs_are_one_line_errors(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.JPEG").write_bytes(b"")
    _refused(tmp_path, "--data", str(flat), needle="is not an ImageFolder tree")
    tree = write_image_folder(tmp_path / "tree", per_class=3, val_per_class=1)
    empty = tree / "train" / "n00000001"
    moved = [p.rename(tmp_path / f"x{i}.JPEG") for i, p in enumerate(sorted(empty.iterdir()))]
    _refused(tmp_path, "--data", str(tree), "--valid-size", "3", needle=f"class folder {empty} holds no images")
    for i, p in enumerate(moved):
        p.rename(empty / f"img_{i}.JPEG")
    broken = tree / "val" / "n00000002" / "img_0.JPEG"
    broken.write_bytes(b"not a jpeg at all")
    _refused(tmp_path, "--data", str(tree), "--valid-size", "3", needle=f"unreadable image {broken}")
    _refused(tmp_path, "--data", str(tree), "--valid-size", "9", needle="--valid-size 9: the held-out validation")
    _refused(tmp_path, "--flops-budget", "50", needle="below the cheapest architecture")


# ------------------------------------------------------------------------------------------------------------
# the smoke preset end to end
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_smoke_preset_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("--task", "imagenet", "--preset", "smoke", "--out", str(out), "--num-cpus", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "results in" in proc.stdout and "[controller round 1]" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    budget = report["budget"]["run"]
    assert report["budget"]["all_within"] and budget == run_budget(SMALL)

    evals = pd.read_csv(out / "evaluations.csv")
    assert len(evals) == 6 + 4 == evals["key"].nunique() and list(evals["round"]) == [0] * 6 + [1] * 4
    assert evals["within_budget"].all() and (evals["flops"] <= budget).all() and (evals["params"] > 0).all()
    assert evals["top1"].between(0, 1).all() and evals["final_top1"].between(0, 1).all()
    space = SMALL.space()
    assert list(evals["flops"]) == [space.cost(k)["flops"] for k in evals["key"]]  # at the run's resolution
    final = pd.read_csv(out / "final.csv")
    assert list(final["role"]) == ["seminas", "mobilenetv2", "random"] and (final["flops"] <= budget).all()
    assert final["test_top1"].between(0, 1).all() and (final["latency_ms"] > 0).all()
    assert final.loc[0, "key"] == report["search"]["best"]["key"]
    ranking = report["final"]["ranking"]
    assert ranking["n_archs"] == 3 and ranking["at_epoch"] == 1 and "supernet_kendall_tau" in ranking
    markdown = (out / "report.md").read_text()
    for needle in ("| system | architecture | FLOPs (M)", "MobileNetV2-style", "Kendall tau", "CPU latency"):
        assert needle in markdown
    rounds = pd.read_csv(out / "rounds.csv")
    assert list(rounds["round"]) == [0, 1] and (rounds["supernet_steps"] > 0).all()
    for name in ("config.yaml", "search_curve.png", "accuracy_vs_flops.png", "tune", "final_tune", "supernet"):
        assert (out / name).exists(), name
    assert not undocumented(out), "add these to docs/results_schema.md"
    assert list((out / "tensorboard").glob("events.out.tfevents.*")), "no search-level TensorBoard file"
    assert (out / "predicted_vs_true.png").is_file() and (out / "kendall_tau.png").is_file()


@pytest.mark.slow
def test_sigkill_mid_search_then_resume_gives_the_uninterrupted_search(tmp_path):
    """The driver and every Ray process killed after the first controller round; ``--resume`` restores the supernet
    from its round checkpoint and finishes the same search: the same architectures with the same supernet scores
    (augmentation is seeded by the global step, not by a per-process counter)."""
    search = ["--task", "imagenet", "--preset", "smoke", "--no-final", "--num-cpus", "2"]
    reference = run_cli(*search, "--out", str(tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr[-3000:]

    out, log_path = tmp_path / "run", tmp_path / "first.log"
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(RUN + search + ["--out", str(out)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=REPO, start_new_session=True)
    deadline = time.time() + 600
    while "[controller round 1]" not in log_path.read_text():
        assert proc.poll() is None and time.time() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.5)
    time.sleep(2.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (out / "report.json").exists()

    resumed = run_cli("--task", "imagenet", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    first = pd.read_csv(tmp_path / "ref" / "evaluations.csv").sort_values("key").reset_index(drop=True)
    again = pd.read_csv(out / "evaluations.csv").sort_values("key").reset_index(drop=True)
    assert list(again["key"]) == list(first["key"]) and list(again["round"]) == list(first["round"])
    for column in ("top1", "final_top1"):
        assert np.allclose(again[column], first[column], rtol=0, atol=1e-9), column
