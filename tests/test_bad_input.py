"""Issue #15: every bad input is refused with one line naming the file, line or option, with the right exit code,
and the results folder is left exactly as it was. The CLI runs in-process (``main(argv)``): all these cases fail
before Ray starts, and a failure that got further would show up here as a traceback or a changed folder."""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import time
from pathlib import Path
from typing import Callable

import pytest

from seminas_ray.cluster_config import main as cluster_main
from seminas_ray.distributed.run_folder import MANIFEST
from seminas_ray.distributed.run_folder import MARKER
from seminas_ray.distributed.runner import RunSettings
from seminas_ray.reporting import write_yaml

REPO = Path(__file__).resolve().parents[1]
NB201 = ["--task", "nasbench", "--benchmark", "nb201", "--dataset", "cifar10", "--preset", "paper-300"]


def cli():
    spec = importlib.util.spec_from_file_location("run_cli_bad_input", REPO / "experiments" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CLI = cli()


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file (the "folder unchanged" check)."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------------------
# Inputs: each builder writes what the case needs under tmp and returns the extra command-line arguments
# ------------------------------------------------------------------------------------------------------------
def nb201_rows(data_dir: Path, n: int = 40) -> tuple[list[str], list[dict[str, str]]]:
    with open(data_dir / "nb201" / "nb201_all15625_12epoch.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    rows.sort(key=lambda r: -float(r["cifar10-val"]))  # the best row first
    return list(rows[0]), rows[:n]


def write_csv_rows(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def bad_cell_csv(tmp: Path, data_dir: Path) -> list[str]:
    header, rows = nb201_rows(data_dir)
    rows[0]["cellstr"] = rows[0]["cellstr"].replace("|+|", "|+", 1)  # malformed cell string in the best row
    return ["--data", str(write_csv_rows(tmp / "BAD.csv", header, rows))]


def infinite_metric_csv(tmp: Path, data_dir: Path) -> list[str]:
    header, rows = nb201_rows(data_dir)
    rows[5]["cifar10-val"] = "inf"
    return ["--data", str(write_csv_rows(tmp / "INF.csv", header, rows))]


def nan_metric_csv(tmp: Path, data_dir: Path) -> list[str]:
    header, rows = nb201_rows(data_dir)
    rows[7]["cifar10-val"] = "nan"
    return ["--data", str(write_csv_rows(tmp / "NAN.csv", header, rows))]


def api_json(tmp: Path, data_dir: Path, edit: Callable[[dict], None], name: str) -> list[str]:
    data = json.loads((data_dir / "nb101" / "nasbench_api_sample30.json").read_text())
    edit(data[next(iter(data))])
    path = tmp / name
    path.write_text(json.dumps(data))
    return ["--benchmark", "nb101", "--data", str(path)]


def runs_not_objects(tmp: Path, data_dir: Path) -> list[str]:
    return api_json(tmp, data_dir, lambda rec: rec.update(runs_108=[5]), "runs.json")


def bad_adjacency(tmp: Path, data_dir: Path) -> list[str]:
    return api_json(tmp, data_dir, lambda rec: rec.update(module_adjacency=[[0, 1], [1]]), "adjacency.json")


def malformed_yaml(tmp: Path, data_dir: Path) -> list[str]:
    (tmp / "bad.yaml").write_text("n_seed: [30\nn_rounds: 1\n")
    return ["--config", str(tmp / "bad.yaml")]


def python_tag_yaml(tmp: Path, data_dir: Path) -> list[str]:
    (tmp / "evil.yaml").write_text("n_seed: !!python/object/apply:os.system ['touch pwned']\n")
    return ["--config", str(tmp / "evil.yaml")]


def plain(*args: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, data_dir: list(args)


# (id, input builder, exit code, words expected in the one-line message)
CASES = [
    ("bad-cell-string", bad_cell_csv, 2, ["BAD.csv", "data row 1", "fix or remove"]),
    ("infinite-metric", infinite_metric_csv, 2, ["INF.csv", "must be finite"]),
    ("nan-metric", nan_metric_csv, 2, ["NAN.csv", "must be finite"]),
    ("runs_108-not-objects", runs_not_objects, 2, ["runs.json", "runs_108[0] must be an object"]),
    ("bad-module-adjacency", bad_adjacency, 2, ["adjacency.json", "not a valid NB101 cell"]),
    ("config-malformed-yaml", malformed_yaml, 2, ["--config", "bad.yaml", "line"]),
    ("config-python-tag", python_tag_yaml, 2, ["--config", "evil.yaml", "python/object"]),
    ("set-controller-not-a-mapping", plain("--set", "controller=5"), 2, ["controller", "mapping of settings"]),
    ("set-not-a-number", plain("--set", "valid_fraction=abc"), 2, ["valid_fraction", "valid number", "'abc'"]),
    ("set-bad-yaml-value", plain("--set", "n_seed=[1"), 2, ["--set n_seed=[1", "not valid YAML"]),
    ("num-cpus-zero", plain("--num-cpus", "0"), 2, ["--num-cpus must be at least 1"]),
    ("concurrency-zero", plain("--concurrency", "0"), 2, ["--concurrency must be at least 1"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("folder", ["absent", "thesis", "earlier-run"])
def test_bad_input_is_one_line_and_the_folder_is_untouched(case, folder, data_dir, tmp_path, capsys):
    _, build, code, words = case
    out = tmp_path / "DIR"
    if folder == "thesis":
        out.mkdir()
        (out / "t.txt").write_text("thesis")
    elif folder == "earlier-run":
        (out / "tune").mkdir(parents=True)
        (out / MARKER).write_text("{}")
        (out / "config.yaml").write_text("task: nasbench\nsettings: {}\n")
    before = snapshot(out)
    args = [*NB201, *build(tmp_path, data_dir), "--out", str(out), "--overwrite"]
    started = time.perf_counter()
    assert CLI.main(args) == code
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    assert snapshot(out) == before
    assert not (tmp_path / "pwned").exists() and not (REPO / "pwned").exists()
    assert time.perf_counter() - started < 60  # refused at once (--num-cpus 0 used to wait 132 s)


def test_overwrite_refuses_a_folder_that_is_not_a_run(data_dir, tmp_path, capsys):
    """A valid run command with --overwrite on someone's thesis folder: refused, nothing deleted."""
    out = tmp_path / "DIR"
    out.mkdir()
    (out / "t.txt").write_text("thesis")
    assert CLI.main([*NB201, "--set", "n_seed=20", "--budget", "30", "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "not a results folder of this project" in err and "Traceback" not in err
    assert snapshot(out) == {"t.txt": hashlib.sha256(b"thesis").hexdigest()}
    assert [p.name for p in tmp_path.iterdir()] == ["DIR"]  # nothing moved aside either


def test_metadata_id_with_a_path_is_refused_with_its_line(tmp_path):
    from seminas_ray.tasks.tts.ljspeech import LJSpeechCorpus

    (tmp_path / "wavs").mkdir()
    (tmp_path / "metadata.csv").write_text("../../../../tmp/x/U001|Hi.|Hi.\n")
    with pytest.raises(ValueError, match=r"metadata.csv:1: utterance id .* is not a plain file name"):
        LJSpeechCorpus(tmp_path)


def test_metadata_latin1_byte_names_the_file_and_line(tmp_path):
    from seminas_ray.tasks.tts.ljspeech import LJSpeechCorpus

    (tmp_path / "wavs").mkdir()
    (tmp_path / "metadata.csv").write_bytes(b"LJ001-0001|caf\xe9|cafe\n")
    with pytest.raises(ValueError, match=r"metadata.csv:1: not UTF-8 \(byte 0xe9 at column 15\)"):
        LJSpeechCorpus(tmp_path)


def test_tts_with_a_traversal_id_is_refused_before_any_folder(tmp_path, capsys):
    """The issue's reproduction through the CLI: a corpus id with '../' stops the run with the line number."""
    corpus = tmp_path / "corpus"
    (corpus / "wavs").mkdir(parents=True)
    (corpus / "metadata.csv").write_text("../../../../tmp/x/U001|Hello there.|Hello there.\n")
    out = tmp_path / "DIR"
    out.mkdir()
    (out / "t.txt").write_text("thesis")
    assert CLI.main(["--task", "tts", "--data", str(corpus), "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert "metadata.csv:1" in err and "plain file name" in err and len(err.splitlines()) == 1, err
    assert snapshot(out) == {"t.txt": hashlib.sha256(b"thesis").hexdigest()}


# ------------------------------------------------------------------------------------------------------------
# --resume folders
# ------------------------------------------------------------------------------------------------------------
def resume_folder(tmp_path: Path) -> Path:
    """A run folder as a run writes it: marker, config.yaml, tune/ state and the manifest of their digests."""
    out = tmp_path / "RUN"
    (out / "tune").mkdir(parents=True)
    (out / MARKER).write_text("{}")
    settings = RunSettings(task="nasbench", preset="paper-300", seed=1, overrides=("n_seed=20",), budget=30,
                           options={"benchmark": "nb201", "data": None, "dataset": "cifar10", "method": "seminas"})
    write_yaml(out / "config.yaml", {"task": "nasbench", "settings": settings.search_dict()})
    (out / "tune" / "tuner.pkl").write_bytes(b"\x80\x04" + b"x" * 20_000)
    (out / "tune" / "experiment_state-1.json").write_text('{"trial_data": []}')
    files = {rel: [hashlib.sha256((out / rel).read_bytes()).hexdigest()]
             for rel in ("config.yaml", "tune/tuner.pkl", "tune/experiment_state-1.json")}
    (out / MANIFEST).write_text(json.dumps({"format": 1, "files": files}))
    return out


def truncate_tuner(out: Path) -> None:
    path = out / "tune" / "tuner.pkl"
    path.write_bytes(path.read_bytes()[:10_000])


def garbage_config(out: Path) -> None:
    (out / "config.yaml").write_text("\x00\x01 not: [yaml")


def crafted_pickle(out: Path) -> None:
    (out / "tune" / "tuner.pkl").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")


def no_manifest(out: Path) -> None:
    (out / MANIFEST).unlink()


def extra_state_file(out: Path) -> None:
    (out / "tune" / "searcher-state-2.pkl").write_bytes(b"PK\x03\x04 truncated")


RESUME_CASES = [
    ("truncated-tuner-pkl", truncate_tuner, ["tuner.pkl", "does not match", MANIFEST]),
    ("crafted-tuner-pkl", crafted_pickle, ["tuner.pkl", "does not match"]),
    ("garbage-config-yaml", garbage_config, ["config.yaml"]),
    ("no-manifest", no_manifest, [MANIFEST, "start a new run"]),
    ("unlisted-state-file", extra_state_file, ["searcher-state-2.pkl", "does not match"]),
]


@pytest.mark.parametrize("case", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_a_bad_resume_folder_is_refused_before_tune_reads_it(case, tmp_path, capsys):
    _, damage, words = case
    out = resume_folder(tmp_path)
    damage(out)
    before = snapshot(out)
    assert CLI.main(["--task", "nasbench", "--resume", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    assert snapshot(out) == before
    assert not (tmp_path / "pwned").exists() and not (REPO / "pwned").exists()


def test_cluster_file_that_turns_auth_off_is_rejected(tmp_path, capsys):
    text = (REPO / "cluster" / "local.yaml").read_text().replace("RAY_AUTH_MODE=token ray start --head",
                                                                 "RAY_AUTH_MODE=disabled ray start --head")
    assert "RAY_AUTH_MODE=disabled" in text
    (tmp_path / "cluster.yaml").write_text(text)
    assert cluster_main([str(tmp_path / "cluster.yaml")]) == 1
    assert "RAY_AUTH_MODE=disabled turns token authentication off" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------------------
# Point 10: a model that cannot synthesise is an error row, not a crash
# ------------------------------------------------------------------------------------------------------------
def test_a_zero_frame_synthesis_is_a_failed_sentence_not_a_crash(monkeypatch):
    import torch

    from seminas_ray.tasks.tts import evaluation
    from seminas_ray.tasks.tts.training import SynthesisResult

    def silent(model, arch, chars, max_frames, text_lens=None, seed=0):  # an untrained model stops at once
        b = chars.shape[0]
        return SynthesisResult(mels=torch.zeros(b, 0, 80), lengths=[0] * b, stop_steps=[0] * b, n_steps=[1] * b,
                               attn=[torch.full((1, int(n)), 1.0 / int(n)) for n in text_lens])

    monkeypatch.setattr(evaluation, "synthesize", silent)
    cfg = type("Cfg", (), {"r": 3})()
    spec = {"inputs": [[5, 6, 7, 1], [8, 9, 1]], "gt_frames": [30, 20]}
    opts = {"eval_batch_size": 2, "max_len_ratio": 2.0, "seed": 0, "separator_ids": [1], "mel_std": 1.0,
            "mel_mean": 0.0, "gl_iters": 2, "n_keep": 1}
    records, kept, wavs = evaluation._synthesize_set("best", "test", spec, None, cfg, opts)
    assert [r["frames"] for r in records] == [0, 0] and not any(r["stop_fired"] and r["frames"] for r in records)
    assert all(w.size > 0 for w in wavs) and kept[0]["mel"].shape == (80, 1)


def test_a_system_that_failed_is_an_error_row_in_the_report():
    from seminas_ray.tasks.tts import evaluation

    rows = [{"system": name, "key": "1 2 | 3 4", "error": "RuntimeError: no frames"}
            for name in (evaluation.BEST_NAME, evaluation.BASELINE_NAME)]
    final = {"systems": rows, "ground_truth": {"system": "ground truth", "word_accuracy": None, "wer": None},
             "final_steps": 2, "final_model": {"hidden": 8}, "gl_iters": 2, "n_test": 1, "n_hard": 1}
    report = {"preset": "smoke", "setting": "low-resource", "seed": 0, "final": final,
              "data": {"source": "synthetic", "train": 3, "valid": 1, "test": 1, "hard": 1, "notes": []},
              "search": {"n_evaluated": 4, "n_failed": 0, "n_rounds": 1, "search_seconds": 60.0,
                         "final_dfr_range": [0.1, 0.2], "supernet_rounds": [],
                         "best": {"key": "1 2 | 3 4", "describe": "x", "final_dfr": 0.2, "dfr": 0.2, "round": 1}}}
    text = evaluation.render_markdown(report)
    assert text.count("error: RuntimeError: no frames") == 2 and "not evaluated" in text


# ------------------------------------------------------------------------------------------------------------
# Point 7: the converted-tfrecord cache is keyed by content
# ------------------------------------------------------------------------------------------------------------
def test_a_corrupt_tfrecord_is_not_served_a_good_ones_cache(data_dir, tmp_path, monkeypatch):
    import os

    from seminas_ray.benchmarks.nb101_convert import load_or_convert
    from seminas_ray.benchmarks.nb101_convert import read_table_metadata
    from seminas_ray.benchmarks.tfrecord import TFRecordError

    monkeypatch.setenv("SEMINAS_CACHE_DIR", str(tmp_path / "cache"))
    good_bytes = (data_dir / "nb101" / "fixtures" / "carbon_3V9E.tfrecord").read_bytes()
    good, bad = tmp_path / "a" / "nasbench.tfrecord", tmp_path / "b" / "nasbench.tfrecord"
    good.parent.mkdir()
    bad.parent.mkdir()
    good.write_bytes(good_bytes)
    damaged = bytearray(good_bytes)
    damaged[len(damaged) // 2] ^= 0xFF  # same name, same size ...
    bad.write_bytes(bytes(damaged))
    stamp = good.stat().st_mtime_ns
    os.utime(bad, ns=(stamp, stamp))  # ... same mtime
    table = load_or_convert(good, progress=False)
    assert len(read_table_metadata(table)["source"]["sha256"]) == 64
    with pytest.raises(TFRecordError, match="nasbench.tfrecord"):
        load_or_convert(bad, progress=False)


@pytest.mark.parametrize("name", ["paper-300", "paper-2000", "supervised"])
def test_the_typed_schema_leaves_the_presets_unchanged(name):
    """The pydantic check only refuses bad types: every preset builds the very config the dataclasses give."""
    from seminas_ray.algorithm.config import PRESETS
    from seminas_ray.algorithm.config import SemiNASConfig
    from seminas_ray.algorithm.config import build_config
    from seminas_ray.controller.config import ControllerConfig

    preset = dict(PRESETS[name])
    controller = ControllerConfig(**preset.pop("controller", {}))
    direct = SemiNASConfig(**preset, controller=controller)
    assert build_config(name) == direct and build_config(name).to_dict() == direct.to_dict()
