"""`experiments/run.py --task nasbench` end to end (subprocess), its results folder and its errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from results_checks import tensorboard_scalars
from results_checks import undocumented

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "experiments" / "run.py")]
TINY = ["--set", "n_seed=30", "--set", "n_unlabelled=500", "--set", "n_per_round=20", "--set", "n_rounds=2",
        "--set", "pretrain_epochs=60", "--set", "train_epochs=20"]


def run_cli(*args: str, timeout: int = 600, **env_vars: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1", **env_vars)
    return subprocess.run(RUN + list(args), capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def test_nasbench_run_writes_an_honest_results_folder(data_dir, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("--task", "nasbench", "--benchmark", "nb201", "--dataset", "cifar10", "--preset", "paper-300",
                   *TINY, "--seed", "0", "--out", str(out), "--num-cpus", "2", SEMINAS_PROGRESS="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    evals = pd.read_csv(out / "evaluations.csv")
    rounds = pd.read_csv(out / "rounds.csv")
    assert report["n_queries"] == len(evals) == evals["key"].nunique() == 70
    assert report["best"]["key"] == evals.loc[evals["search_value"].idxmax(), "key"]
    assert report["best"]["rank"] == evals["rank"].min()
    assert report["best"]["test_value"] is not None and "top" in report["best"]["rank_text"]
    assert len(rounds) == 2 and (rounds["controller_seconds"] > 0).all()
    assert (out / "search_curve.png").stat().st_size > 1000 and (out / "config.yaml").is_file()
    assert "[round 1]" in proc.stdout and "results in" in proc.stdout
    # one place for the best architecture (no flat best_* copies), the query bar, and the per-run plots
    assert not [k for k in report if k.startswith("best_")] and "rank" not in report
    assert "queries: 100%" in proc.stderr and "70/70" in proc.stderr and "round 2" in proc.stderr
    for plot in ("search_curve.png", "predicted_vs_true.png", "kendall_tau.png"):
        assert plot in report["plots"] and (out / plot).stat().st_size > 1000
    assert not undocumented(out), "add these to docs/results_schema.md"
    umask = os.umask(0)
    os.umask(umask)
    for name in ("report.json", "evaluations.csv", "config.yaml"):  # ordinary files, not mkstemp's private 0600
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    # search-level TensorBoard: the same numbers as evaluations.csv and rounds.csv
    scalars = tensorboard_scalars(out / "tensorboard")
    assert scalars["search/best_so_far"][70] == pytest.approx(evals["search_value"].max())
    assert len(scalars["search/value"]) == 70 and len(scalars["search/predicted"]) == 40
    assert set(scalars["round/train_kendall_tau"]) == {1, 2}
    assert scalars["round/controller_seconds"][2] == pytest.approx(rounds["controller_seconds"].iloc[1])

    # the same folder again is refused, and nothing in it is touched
    before = (out / "report.json").read_bytes()
    again = run_cli("--task", "nasbench", "--benchmark", "nb201", "--out", str(out))
    assert again.returncode == 2 and "already holds" in again.stderr
    assert (out / "report.json").read_bytes() == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "no-such-task"], "unknown task"),
        (["--task", "nasbench", "--preset", "paper-9"], "unknown preset"),
        (["--task", "nasbench", "--preset", "paper-300", "--budget", "10"], "below the seed set"),
        (["--task", "nasbench", "--data", "/nonexistent/table.npz"], "does not exist"),
    ],
)
def test_bad_input_is_one_clear_line(data_dir, tmp_path, args, message):
    proc = run_cli(*args, "--out", str(tmp_path / "x"))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
