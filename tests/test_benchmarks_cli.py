"""``python -m seminas_ray.benchmarks info|verify`` on the real files and on broken small files (real subprocesses)."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    """Run the CLI with the interpreter running the tests (the project's venv python)."""
    return subprocess.run(
        [sys.executable, "-m", "seminas_ray.benchmarks", *map(str, args)],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


def last_json(proc: subprocess.CompletedProcess) -> dict:
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {proc.stderr}"
    return json.loads(lines[-1])


def test_info_on_the_20k_table(nb101_subset_path: Path) -> None:
    proc = run_cli("info", "--data", nb101_subset_path)
    assert proc.returncode == 0, proc.stderr
    summary = last_json(proc)
    assert summary["n"] == 20_001 and summary["n_repeats"] == 1 and summary["is_subset"] is True
    assert summary["best_key"] == "096f593e0f12d65f6220bf8565b764a9"
    assert summary["best_search"] == pytest.approx(0.94912, abs=1e-5) and summary["test_metric"] is None
    assert "val_acc_108" in proc.stdout and "best arch" in proc.stdout


def test_verify_on_the_20k_table(nb101_subset_path: Path) -> None:
    proc = run_cli("verify", "--data", nb101_subset_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = last_json(proc)
    assert (summary["n"], summary["mismatches"], summary["invalid"], summary["ok"]) == (20_001, 0, 0, True)


@pytest.mark.parametrize("dataset", ["cifar10", "imagenet"])
def test_info_and_verify_nb201(nb201_csv_path: Path, dataset: str) -> None:
    info = run_cli("info", "--data", nb201_csv_path, "--dataset", dataset)
    assert info.returncode == 0, info.stderr
    summary = last_json(info)
    assert summary["n"] == 15_625 and summary["search_metric"] == f"{dataset}-val" and summary["units"] == "percent"
    verify = run_cli("verify", "--data", nb201_csv_path, "--dataset", dataset, "--no-progress")
    assert verify.returncode == 0 and last_json(verify)["mismatches"] == 0


def test_info_and_verify_api_sample(data_dir: Path) -> None:
    path = data_dir / "nb101" / "nasbench_api_sample30.json"
    info = run_cli("info", "--data", path)
    assert info.returncode == 0 and last_json(info)["n_repeats"] == 3
    verify = run_cli("verify", "--data", path)
    assert verify.returncode == 0 and last_json(verify) | {"load_s": 0, "verify_s": 0} == {
        "name": "nasbench_api_sample30", "n": 30, "mismatches": 0, "invalid": 0, "nonfinite": 0, "ok": True,
        "load_s": 0, "verify_s": 0,
    }


def test_verify_counts_a_wrong_hash(tmp_path: Path, nb101_subset_path: Path) -> None:
    with np.load(nb101_subset_path) as npz:
        arrays = {k: npz[k][:50].copy() for k in npz.files}
    arrays["hash"][7] = b"0123456789abcdef0123456789abcdef"  # well-formed, but not this cell's hash
    np.savez(tmp_path / "wrong_hash.npz", **arrays)
    proc = run_cli("verify", "--data", tmp_path / "wrong_hash.npz")
    assert proc.returncode == 1
    summary = last_json(proc)
    assert (summary["n"], summary["mismatches"], summary["invalid"], summary["ok"]) == (50, 1, 0, False)
    assert "0123456789abcdef0123456789abcdef" in proc.stdout  # the offending row is shown


def test_verify_counts_a_non_canonical_nb201_string(tmp_path: Path, nb201_csv_path: Path) -> None:
    with open(nb201_csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))[:30]
    rows[3]["cellstr"] = rows[3]["cellstr"].replace("~0|", "~0 |", 1)  # not the canonical spelling
    with open(tmp_path / "bad.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    proc = run_cli("verify", "--data", tmp_path / "bad.csv")
    assert proc.returncode == 1
    summary = last_json(proc)
    assert (summary["n"], summary["mismatches"] + summary["invalid"]) == (30, 1)


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("garbage.npz", b"PK\x03\x04 not really a zip", "not a readable npz"),
        ("nocol.csv", b"arch,cellstr\n0,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n", "cifar10-val"),
        ("empty.json", b"{}", "non-empty"),
    ],
)
def test_bad_files_exit_2_with_one_line_error(tmp_path: Path, name: str, content: bytes, fragment: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    for command in ("info", "verify"):
        proc = run_cli(command, "--data", path)
        assert proc.returncode == 2
        err = proc.stderr.strip()
        assert err.startswith("error:") and len(err.splitlines()) == 1
        assert name in err and fragment in err
    missing = run_cli("info", "--data", tmp_path / "nothing_here.npz")
    assert missing.returncode == 2 and "nothing_here.npz" in missing.stderr
