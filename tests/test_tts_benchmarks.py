"""The TTS evidence benchmarks run end to end at a tiny size (real corpus, real training, real PocketSphinx): what
they write is what docs/tts.md quotes at full size."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def run(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"), capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_routes_benchmark_measures_word_accuracy_per_checkpoint(tmp_path):
    proc = run("tts_routes.py", "--routes", "fs-style", "--steps", "2,4", "--n-test", "2", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    frame = pd.read_csv(tmp_path / "tts_routes.csv")
    assert list(frame["steps"]) == [2, 4] and set(frame["route"]) == {"fs-style"}
    assert frame["word_accuracy"].le(1.0).all() and frame["ground_truth_word_accuracy"].between(0, 1).all()
    assert (frame["relative_intelligibility"] == frame["word_accuracy"] / frame["ground_truth_word_accuracy"]).all()
    assert "vocoder ceiling" in proc.stdout


@pytest.mark.slow
def test_search_value_benchmark_compares_found_baseline_and_random(tmp_path):
    proc = run("tts_search_value.py", "--found", "2 5 10 10 4 2 | 6 10 4 3 8 10", "--seeds", "0", "--n-random", "1",
               "--steps", "3", "--n-test", "2", "--n-hard", "1", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "tts_search_value.csv")
    assert sorted(rows["system"]) == ["baseline", "found", "random"]
    assert rows.loc[rows["system"] == "baseline", "key"].item() == "9 9 9 9 9 9 | 9 9 9 9 9 9"
    summary = pd.read_csv(tmp_path / "tts_search_value_summary.csv")
    assert list(summary["system"]) == ["found", "baseline", "random"]
    assert (summary["relative_intelligibility_ci_low"] <= summary["relative_intelligibility_ci_high"]).all()
    assert summary["hard_sentence_error_rate"].between(0, 1).all()


def test_search_value_refuses_a_folder_without_a_report(tmp_path):
    proc = run("tts_search_value.py", "--found", str(tmp_path), "--out", str(tmp_path / "x"), timeout=120)
    assert proc.returncode != 0 and "no report.json" in proc.stderr
