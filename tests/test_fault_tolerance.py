"""Faults a cluster has, for real: the driver killed mid-round and resumed, a pseudo-labelling worker killed
mid-task, Ctrl-C. Runs are real subprocesses of experiments/run.py."""
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

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "experiments" / "run.py")]
SEARCH = ["--task", "nasbench", "--benchmark", "nb201", "--dataset", "cifar100", "--preset", "paper-300",
          "--set", "n_seed=30", "--set", "n_unlabelled=2000", "--set", "n_per_round=20", "--set", "n_rounds=3",
          "--set", "pretrain_epochs=200", "--set", "train_epochs=30", "--seed", "3", "--num-cpus", "2",
          "--concurrency", "2"]


def env() -> dict[str, str]:
    # checkpoint Tune's experiment state (and our searcher) every second so a kill finds a recent one
    return dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1", TUNE_GLOBAL_CHECKPOINT_S="1")


def summary(out: Path) -> dict:
    report = json.loads((out / "report.json").read_text())
    evals = pd.read_csv(out / "evaluations.csv")
    return {"n_queries": report["n_queries"], "best": report["best"], "keys": sorted(evals["key"]),
            "n_rows": len(evals)}


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = subprocess.run(RUN + SEARCH + ["--out", str(out)], env=env(), capture_output=True, text=True,
                          timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return summary(out)


def test_driver_sigkill_mid_round_then_resume(reference, tmp_path):
    out = tmp_path / "run"
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(RUN + SEARCH + ["--out", str(out)], env=env(), stdout=log, stderr=subprocess.STDOUT,
                            cwd=REPO, start_new_session=True)
    # wait until the search is inside a controller round after round 1 (rounds.csv exists and Tune saved state)
    deadline = time.time() + 600
    while time.time() < deadline:
        text = (tmp_path / "first.log").read_text()
        if "[round 2]" in text and list((out / "tune").glob("searcher-state-*")):
            break
        assert proc.poll() is None, text[-3000:]
        time.sleep(0.5)
    else:
        pytest.fail("the run never reached round 2")
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and every Ray process it started
    proc.wait(timeout=60)
    assert not (out / "report.json").exists()

    resumed = subprocess.run(RUN + ["--task", "nasbench", "--resume", str(out)], env=env(), capture_output=True,
                             text=True, timeout=900, cwd=REPO)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    result = summary(out)
    # no query lost, none repeated, and the same search as an uninterrupted run with the same seed
    assert result["n_queries"] == reference["n_queries"] == result["n_rows"] == len(set(result["keys"]))
    assert result["keys"] == reference["keys"]
    assert result["best"] == reference["best"]


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "junk.txt").write_text("x")
    proc = subprocess.run(RUN + ["--task", "nasbench", "--resume", str(tmp_path)], env=env(), capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "not a run folder" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "junk.txt").read_text() == "x"


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(data_dir, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(RUN + SEARCH + ["--out", str(out)], env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True)
    # interrupt once something is kept (a run stopped before its first evaluation leaves nothing to resume)
    deadline = time.time() + 300
    while time.time() < deadline and not ((out / "rounds.csv").exists() and list((out / "tune").glob("searcher-state-*"))):
        assert proc.poll() is None
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-3000:]
    assert f"--resume {out}" in stderr


def test_killed_pseudo_label_worker_is_retried(ray_local, nb201_csv_path):
    """A pseudo-labelling task whose worker process dies is retried and the pool is identical."""
    from seminas_ray.algorithm.pseudo_label import LocalPseudoLabeler
    from seminas_ray.benchmarks.loading import load_table
    from seminas_ray.controller import ControllerConfig
    from seminas_ray.controller import NAOController
    from seminas_ray.distributed.pseudo_label import RayPseudoLabeler

    space = load_table(nb201_csv_path).space
    cfg = ControllerConfig(hidden_size=16, mlp_hidden_size=16)
    weights = NAOController(space, cfg, seed=0).get_weights()
    expected = LocalPseudoLabeler(shard_size=1000)(space, cfg, weights, 4000, 11, frozenset())

    marker = Path(os.environ.get("TMPDIR", "/tmp")) / f"seminas-kill-once-{os.getpid()}"
    marker.unlink(missing_ok=True)
    labeler = RayPseudoLabeler(shard_size=1000, kill_once_marker=str(marker))
    got = labeler(space, cfg, weights, 4000, 11, frozenset())
    assert marker.exists(), "no worker was killed: the fault was not exercised"
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-5, atol=1e-6)
