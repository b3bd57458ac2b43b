"""``experiments/run.py --task tts`` end to end with the smoke preset (subprocess, real Ray/Tune, real eSpeak corpus,
real training, synthesis, Griffin-Lim and PocketSphinx), its results folder, its errors, and its configuration."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from results_checks import undocumented

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "experiments" / "run.py")]


def run_cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")
    return subprocess.run(RUN + list(args), capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


@pytest.mark.slow
def test_smoke_preset_end_to_end(tmp_path):
    """The default backbone (fastspeech): search, final training, synthesis, recognition and the fixed report shape."""
    out = tmp_path / "run"
    proc = run_cli("--task", "tts", "--preset", "smoke", "--out", str(out), "--num-cpus", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "results in" in proc.stdout and "[controller round 1]" in proc.stdout

    report = json.loads((out / "report.json").read_text())
    assert report["backbone"] == "fastspeech"
    # the fixed-shape head that scripts rely on (docs/results_schema.md)
    assert [s["name"] for s in report["systems"]] == ["best", "baseline"]
    for s in report["systems"]:
        assert {"word_accuracy", "relative_intelligibility", "hard_sentence_error_rate", "params",
                "real_time_factor", "samples"} <= set(s)
        assert s["params"] > 0 and 0.0 <= s["hard_sentence_error_rate"] <= 1.0 and s["real_time_factor"] > 0
        assert s["samples"] and all((out / f).is_file() for f in s["samples"])
    assert report["n_test_sentences"] == 2 and report["n_hard_sentences"] == 2
    systems = {r["system"]: r for r in report["final"]["systems"]}
    assert set(systems) == {"SemiNAS best", "Transformer-TTS (baseline)"}
    assert systems["Transformer-TTS (baseline)"]["key"] == "9 9 9 9 9 9 | 9 9 9 9 9 9"
    assert systems["SemiNAS best"]["key"] == report["search"]["best"]["key"]
    for row in systems.values():
        assert row["train_steps"] == 40 and 0.0 <= row["hard_error_rate"] <= 1.0
        assert row["valid_loss"] > 0 and row["valid_dfr_teacher_forced"] is None  # no attention in this backbone
        if report["final"]["asr"]:
            assert row["wer"] >= 0.0 and row["word_accuracy"] <= 1.0
    if report["final"]["asr"]:
        gt = report["final"]["ground_truth"]
        assert 0.0 <= gt["wer"] <= 1.5  # the recogniser's own errors on the recordings: the ceiling
        assert report["ground_truth_word_accuracy"] == pytest.approx(gt["word_accuracy"])
        assert report["vocoder_ceiling_word_accuracy"] is not None and report["vocoder_ceiling_word_accuracy"] <= 1.0
        ratio = report["systems"][0]["word_accuracy"] / gt["word_accuracy"] if gt["word_accuracy"] > 0 else None
        if ratio is not None:
            assert report["systems"][0]["relative_intelligibility"] == pytest.approx(ratio)
    markdown = (out / "report.md").read_text()
    for needle in ("SemiNAS best", "Transformer-TTS (baseline)", "Ground truth", "Vocoder ceiling",
                   "What this run can and cannot show", "samples/"):
        assert needle in markdown
    assert markdown.index("What a listener can check") < markdown.index("## Search")

    # the search: N seeds + 1 round of 4, every one scored, the best is the lowest final validation loss
    evals = pd.read_csv(out / "evaluations.csv")
    assert len(evals) == 6 + 4 == evals["key"].nunique()
    assert (evals["valid_loss"] > 0).all() and (evals["final_valid_loss"] > 0).all()
    assert report["search"]["best"]["key"] == evals.loc[evals["final_valid_loss"].idxmin(), "key"]
    assert list(evals["round"]) == [0] * 6 + [1] * 4
    assert (evals["best_so_far"].diff().dropna() <= 0).all()  # lower is better: the running best never rises
    assert not undocumented(out), "add these to docs/results_schema.md"
    assert list((out / "tensorboard").glob("events.out.tfevents.*")), "no search-level TensorBoard file"
    rounds = pd.read_csv(out / "rounds.csv")
    assert list(rounds["round"]) == [0, 1] and (rounds["supernet_steps"] > 0).all()
    assert (out / "config.yaml").is_file() and (out / "search_curve.png").stat().st_size > 1000
    assert list((out / "samples").glob("*.wav")) and list((out / "plots").glob("*.png"))
    sentences = pd.read_csv(out / "final_sentences.csv")
    assert len(sentences) == 2 * (2 + 2)
    assert set(sentences.loc[sentences["set"] == "hard", "error_reasons"].fillna("")) <= {"", "length", "asr",
                                                                                           "length;asr"}


@pytest.mark.slow
def test_smoke_transformer_tts_search_matches_the_golden_run(tmp_path):
    """``--backbone transformer-tts`` (the paper's): the same architectures, rounds and rewards as before the
    redesign (seed 0; tests/golden/)."""
    out = tmp_path / "run"
    proc = run_cli("--task", "tts", "--preset", "smoke", "--backbone", "transformer-tts", "--no-final",
                   "--out", str(out), "--num-cpus", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    assert report["backbone"] == "transformer-tts" and "final" not in report
    evals = pd.read_csv(out / "evaluations.csv")
    assert evals["dfr"].between(0, 1).all() and evals["final_dfr"].between(0, 1).all()
    assert report["search"]["best"]["key"] == evals.loc[evals["final_dfr"].idxmax(), "key"]
    golden = pd.read_csv(REPO / "tests" / "golden" / "tts_smoke_seed0.csv")
    got = evals.sort_values(["round", "key"]).reset_index(drop=True)
    golden = golden.sort_values(["round", "key"]).reset_index(drop=True)
    assert list(got["key"]) == list(golden["key"]) and list(got["round"]) == list(golden["round"])
    assert np.allclose(got["dfr"], golden["dfr"], rtol=0, atol=1e-9)
    assert not undocumented(out), "add these to docs/results_schema.md"


def test_fastspeech_refuses_ljspeech_data_in_one_line(tmp_path):
    corpus = tmp_path / "LJSpeech-1.1"
    (corpus / "wavs").mkdir(parents=True)
    (corpus / "metadata.csv").write_text("LJ001-0001|Hello there.|Hello there.\n")
    proc = run_cli("--task", "tts", "--preset", "smoke", "--backbone", "fastspeech", "--data", str(corpus),
                   "--out", str(tmp_path / "x"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "fastspeech" in proc.stderr and "--backbone transformer-tts" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_bad_data_path_is_one_clear_line(tmp_path):
    out = tmp_path / "x"
    proc = run_cli("--task", "tts", "--preset", "smoke", "--data", str(tmp_path / "no_such_corpus"), "--out", str(out))
    assert proc.returncode == 2
    assert "--data" in proc.stderr and "no such folder" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_unknown_tts_preset_is_refused(tmp_path):
    proc = run_cli("--task", "tts", "--preset", "paper-300", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "unknown TTS preset" in proc.stderr and "Traceback" not in proc.stderr


def test_seminas_config_follows_the_paper_scaled_by_the_preset():
    from seminas_ray.tasks.tts.presets import PRESETS
    from seminas_ray.tasks.tts.task import seminas_config

    paper = seminas_config(PRESETS["paper"])
    assert (paper.n_seed, paper.n_unlabelled, paper.n_per_round, paper.n_rounds, paper.top_k) == (100, 4000, 100, 3, 100)
    assert (paper.controller.hidden_size, paper.controller.mlp_hidden_size) == (16, 64)
    assert paper.controller.output_activation == "sigmoid" and paper.target_norm == "minmax"
    assert (paper.step_size_start, paper.step_size_increment) == (0.1, 0.1)
    default = seminas_config(PRESETS["default"], overrides=["n_unlabelled=1000"], budget=20)
    assert (default.n_seed, default.n_per_round, default.n_unlabelled, default.total_queries) == (16, 8, 1000, 20)
    with pytest.raises(ValueError, match="unknown SemiNAS setting"):
        seminas_config(PRESETS["smoke"], overrides=["no_such_setting=1"])


def test_eval_indices_spread_over_the_hard_sentences():
    from seminas_ray.tasks.tts.evaluation import eval_indices

    assert eval_indices(100, None) == list(range(100))
    picked = eval_indices(100, 5)
    assert picked == [0, 25, 50, 74, 99]
    assert eval_indices(3, 10) == [0, 1, 2]
