"""``benchmarks/predictor_quality.py`` for real (subprocesses) on the NB201 table, at a tiny size."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "predictor_quality.py"
TINY = ["--labelled", "20,40", "--pseudo", "0,200", "--seeds", "2", "--heldout", "200",
        "--set", "fast_sample_budget=2000"]


def run_script(*args: str | Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def nb201_args(csv_path: Path) -> list[str]:
    return ["--benchmark", "nb201", "--data", str(csv_path), "--dataset", "cifar10"]


@pytest.fixture(scope="module")
def tiny_runs(nb201_csv_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same tiny command twice: in this process (1 worker) and in 2 spawned workers."""
    outs = []
    for workers in (1, 2):
        out = tmp_path_factory.mktemp(f"pq_w{workers}")
        proc = run_script(*nb201_args(nb201_csv_path), *TINY, "--workers", str(workers), "--out", out)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "## Kendall τ" in proc.stdout  # the Markdown tables are printed at the end
        outs.append(out)
    return outs[0], outs[1]


def test_csv_rows_and_metric_ranges(tiny_runs: tuple[Path, Path]) -> None:
    frame = pd.read_csv(tiny_runs[0] / "predictor_quality.csv")
    assert len(frame) == 2 * 2 * 2  # seeds x N x M
    for column in ("benchmark", "dataset", "table", "seed", "n_labelled", "n_pseudo", "n_pseudo_actual", "n_heldout",
                   "kendall_tau", "spearman_rho", "precision_at_50", "pretrain_seconds", "train_seconds"):
        assert column in frame.columns, column
    assert set(frame.benchmark) == {"nb201"} and set(frame.dataset) == {"cifar10"}
    assert sorted(set(frame.seed)) == [0, 1] and sorted(set(frame.n_labelled)) == [20, 40]
    assert sorted(set(frame.n_pseudo)) == [0, 200]
    assert (frame.n_pseudo_actual == frame.n_pseudo).all()  # NB201 has room for 200 more
    assert (frame.n_heldout == 200).all()
    assert frame.kendall_tau.between(-1, 1).all() and frame.spearman_rho.between(-1, 1).all()
    assert frame.precision_at_50.between(0, 1).all()
    # a predictor trained on 20+ NB201 labels ranks far better than chance
    assert frame.kendall_tau.mean() > 0.1
    # M = 0 is the pretrained controller only; M > 0 self-trained from it (same pretraining per seed and N)
    zero, self_trained = frame[frame.n_pseudo == 0], frame[frame.n_pseudo == 200]
    assert (zero.train_epochs == 0).all() and (self_trained.train_epochs >= 1).all()
    assert list(zero.pretrain_epochs) == list(self_trained.pretrain_epochs)


def test_reproducible_across_runs_and_worker_counts(tiny_runs: tuple[Path, Path]) -> None:
    a, b = (pd.read_csv(out / "predictor_quality.csv") for out in tiny_runs)
    numbers = ["seed", "n_labelled", "n_pseudo", "n_pseudo_actual", "kendall_tau", "spearman_rho", "precision_at_50",
               "pretrain_epochs", "train_epochs"]
    pd.testing.assert_frame_equal(a[numbers], b[numbers])


def test_report_and_plot(tiny_runs: tuple[Path, Path]) -> None:
    out = tiny_runs[0]
    md = (out / "predictor_quality.md").read_text()
    for heading in ("## Kendall τ", "## τ gain over M = 0", "## Spearman ρ", "## Precision@50"):
        assert heading in md
    assert "| N \\ M | 0 | 200 |" in md and "| 20 |" in md and "| 40 |" in md
    assert "Machine:" in md and "Command: `python benchmarks/predictor_quality.py" in md
    png = out / "predictor_quality.png"
    assert png.stat().st_size > 5_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "config.yaml").is_file()


def test_pool_capped_by_the_space(nb201_csv_path: Path, tmp_path: Path) -> None:
    # 15,625 cells - 20 labelled - 15,000 held-out = 605 left to pseudo-label
    proc = run_script(*nb201_args(nb201_csv_path), "--labelled", "20", "--pseudo", "1000,5000", "--seeds", "1",
                      "--heldout", "15000", "--workers", "1", "--set", "fast_sample_budget=2000", "--out", tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "capped" in proc.stdout
    frame = pd.read_csv(tmp_path / "predictor_quality.csv").set_index("n_pseudo")
    assert list(frame.index) == [0, 1000, 5000]
    assert list(frame.n_pseudo_actual) == [0, 605, 605]
    assert frame.loc[1000, "kendall_tau"] == frame.loc[5000, "kendall_tau"]  # the same pool: the same predictor
    assert not math.isnan(frame.loc[0, "kendall_tau"])


@pytest.mark.parametrize("args, message", [
    (["--labelled", "10000", "--heldout", "6000"], "has only 15,625"),
    (["--labelled", "20,x"], "expected a comma list of integers"),
    (["--pseudo", "-1"], "expected non-negative integers"),
    (["--heldout", "10"], "--heldout must be >= 50"),
    (["--set", "no_such_setting=1"], "unknown SemiNAS setting"),
])
def test_bad_input_exits_2_before_any_work(nb201_csv_path: Path, tmp_path: Path, args: list[str],
                                            message: str) -> None:
    out = tmp_path / "out"
    proc = run_script(*nb201_args(nb201_csv_path), *args, "--out", out, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
