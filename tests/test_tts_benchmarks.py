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


def make_run_folder(path: Path, key: str) -> Path:
    """A finished smoke-preset fastspeech run as the benchmark reads it: report.json and the supernet checkpoint in
    the coordinator's format (an untrained supernet: its ranking is arbitrary, the plumbing is real)."""
    from seminas_ray.distributed.supernet_actor import SupernetWorker
    from seminas_ray.reporting import write_json
    from seminas_ray.tasks.tts.data import prepare_data
    from seminas_ray.tasks.tts.packing import pack_items
    from seminas_ray.tasks.tts.presets import get_preset
    from seminas_ray.tasks.tts.supernet_backend import TTSSupernetBackend
    from seminas_ray.tasks.tts.task import model_config
    from seminas_ray.utils.state_io import save_state

    preset = get_preset("smoke")
    data = prepare_data(None, "low-resource", preset, backbone="fastspeech", progress=False)
    cfg = model_config(preset.model_names("fastspeech")[0], {})
    backend = TTSSupernetBackend(cfg.to_dict(), pack_items(data.train), pack_items(data.valid),
                                 batch_size=preset.batch_size, max_frames=preset.max_frames)
    worker = SupernetWorker(0, 1, backend, seed=0)
    save_state(path / "supernet" / "supernet_state.npz", {"supernet": worker.get_state(), "round": 0})
    write_json(path / "report.json", {"task": "tts", "preset": "smoke", "backbone": "fastspeech", "seed": 0,
                                      "search": {"best": {"key": key}}})
    return path


@pytest.mark.slow
def test_search_value_benchmark_compares_found_baseline_and_random_and_resumes(tmp_path):
    found = "2 5 10 10 4 2 | 6 10 4 3 8 10"
    run_dir = make_run_folder(tmp_path / "run", found)
    args = ["--found", str(run_dir), "--seeds", "0", "--n-random", "1", "--steps", "3", "--n-test", "2",
            "--n-hard", "1", "--out", str(tmp_path / "out")]
    proc = run("tts_search_value.py", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "out" / "tts_search_value.csv")
    assert sorted(rows["system"]) == ["baseline", "found", "random"]
    assert rows.loc[rows["system"] == "baseline", "key"].item() == "9 9 9 9 9 9 | 9 9 9 9 9 9"
    assert rows.loc[rows["system"] == "found", "key"].item() == found  # read from the run's report.json
    assert rows["supernet_valid_loss"].gt(0).all() and rows["valid_loss"].gt(0).all()
    summary = pd.read_csv(tmp_path / "out" / "tts_search_value_summary.csv")
    assert list(summary["system"]) == ["found", "baseline", "random"]
    assert (summary["relative_intelligibility_ci_low"] <= summary["relative_intelligibility_ci_high"]).all()
    assert summary["hard_sentence_error_rate"].between(0, 1).all()
    agreement = pd.read_csv(tmp_path / "out" / "tts_search_value_rank_agreement.csv")
    reward = agreement[agreement["is_search_reward"] & (agreement["standalone"] == "valid_loss")]
    assert reward["supernet_score"].item() == "valid_loss" and reward["n_archs"].item() == 3
    assert -1.0 <= reward["kendall_tau"].item() <= 1.0
    assert {"valid_mel", "valid_duration"} <= set(agreement["supernet_score"])
    assert (tmp_path / "out" / "tts_search_value.png").stat().st_size > 10_000
    # the same command again trains nothing; other settings into the same folder are refused in one line
    again = run("tts_search_value.py", *args)
    assert again.returncode == 0 and "0 trainings of 3 steps to run (3 done earlier" in again.stdout
    assert len(pd.read_csv(tmp_path / "out" / "tts_search_value.csv")) == 3
    # a second seed for the found architecture only (resumes beside the first seed's rows)
    more = run("tts_search_value.py", *args[:3], "0,1", *args[4:], "--systems", "found")
    assert more.returncode == 0 and "1 trainings of 3 steps to run (1 done earlier" in more.stdout, more.stderr[-2000:]
    summary = pd.read_csv(tmp_path / "out" / "tts_search_value_summary.csv").set_index("system")
    assert summary.loc["found", "seeds"] == 2 and summary.loc["random", "seeds"] == 1
    other = run("tts_search_value.py", *args[:-2], "--steps", "4", "--out", str(tmp_path / "out"))
    assert other.returncode != 0 and "other settings (steps)" in other.stderr


def test_search_value_refuses_a_folder_without_a_report(tmp_path):
    proc = run("tts_search_value.py", "--found", str(tmp_path), "--out", str(tmp_path / "x"), timeout=120)
    assert proc.returncode != 0 and "no report.json" in proc.stderr
