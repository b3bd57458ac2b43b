"""Issue #15 end to end (subprocess runs of experiments/run.py, about a minute): a local run listens on loopback
only, with Ray's token authentication left on; its folder carries a state manifest that a resume checks; resuming
adds a session to report.json; a truncated state file is refused at once, naming the file."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray  # noqa: F401  (puts Ray's bundled psutil on sys.path)

import psutil  # noqa: E402

from seminas_ray.distributed.run_folder import MANIFEST
from seminas_ray.distributed.run_folder import verify_run_folder

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "experiments" / "run.py")]
TINY = ["--task", "nasbench", "--benchmark", "nb201", "--dataset", "cifar10", "--preset", "paper-300",
        "--set", "n_seed=30", "--set", "n_unlabelled=300", "--set", "n_per_round=10", "--set", "n_rounds=1",
        "--set", "pretrain_epochs=10", "--set", "train_epochs=5", "--num-cpus", "2"]


def env() -> dict[str, str]:
    out = dict(os.environ, PYTHONUNBUFFERED="1")
    out.pop("RAY_AUTH_MODE", None)  # Ray's default: token authentication on
    return out


def listeners(root: psutil.Process) -> set[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket of ``root`` and its descendants."""
    found = set()
    for proc in [root, *root.children(recursive=True)]:
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((proc.name(), conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory):
    """One tiny search; while it runs, the listening sockets of every process it started."""
    out = tmp_path_factory.mktemp("safety") / "run"
    proc = subprocess.Popen([*RUN, *TINY, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env(), cwd=REPO)
    seen: set[tuple[str, str, int]] = set()
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            seen |= listeners(root)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.5)
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, output[-3000:]
    return out, seen, output


def test_a_local_run_listens_on_loopback_only(finished_run):
    _, seen, _ = finished_run
    names = {name for name, _, _ in seen}
    assert any("gcs_server" in n for n in names) and any("raylet" in n for n in names), seen  # we saw Ray's
    exposed = sorted(s for s in seen if not is_loopback(s[1]))
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_token_auth_stays_on(finished_run):
    _, _, output = finished_run
    assert "Token authentication is enabled" in output


def test_the_run_folder_verifies_and_report_has_the_session(finished_run):
    out, _, _ = finished_run
    verify_run_folder(out)
    manifest = json.loads((out / MANIFEST).read_text())["files"]
    assert "tune/tuner.pkl" in manifest and any(k.startswith("tune/experiment_state-") for k in manifest)
    report = json.loads((out / "report.json").read_text())
    assert len(report["sessions"]) == 1 and report["wall_seconds"] == report["sessions"][0]["seconds"]


def test_resume_adds_a_session_and_a_truncated_state_is_refused(finished_run):
    out, _, _ = finished_run
    first = json.loads((out / "report.json").read_text())
    proc = subprocess.run([*RUN, "--task", "nasbench", "--resume", str(out), "--num-cpus", "2"],
                          capture_output=True, text=True, timeout=600, env=env(), cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert len(report["sessions"]) == 2 and report["sessions"][0] == first["sessions"][0]
    assert report["wall_seconds"] == pytest.approx(sum(s["seconds"] for s in report["sessions"]), abs=0.02)
    assert report["n_queries"] == first["n_queries"]
    verify_run_folder(out)  # the resumed session's state was recorded too

    state = sorted((out / "tune").glob("searcher-state-*.pkl"))[-1]
    state.write_bytes(state.read_bytes()[:10_000])
    started = time.perf_counter()
    proc = subprocess.run([*RUN, "--task", "nasbench", "--resume", str(out), "--num-cpus", "2"],
                          capture_output=True, text=True, timeout=300, env=env(), cwd=REPO)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert state.name in proc.stderr and "does not match" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert time.perf_counter() - started < 120  # not minutes inside Tune's controller
