"""Issue #15, the results folder: --overwrite replaces only our runs and only once the new run has something to
keep; a run that fails before its first evaluation leaves nothing; the state manifest catches truncated, crafted
or unlisted state files; report.json keeps every session's wall time. No Ray here (the runner's Ray part is
replaced by a stub), so these run in seconds; tests/test_resume_safety.py runs the real thing."""
from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any
from typing import Iterator

import numpy as np
import pytest

from seminas_ray.distributed import runner
from seminas_ray.distributed.run_folder import MANIFEST
from seminas_ray.distributed.run_folder import MARKER
from seminas_ray.distributed.run_folder import StateManifest
from seminas_ray.distributed.run_folder import close_new_run_folder
from seminas_ray.distributed.run_folder import create_run_folder
from seminas_ray.distributed.run_folder import is_run_folder
from seminas_ray.distributed.run_folder import record_digests
from seminas_ray.distributed.run_folder import record_session
from seminas_ray.distributed.run_folder import saved_evaluations
from seminas_ray.distributed.run_folder import verify_run_folder
from seminas_ray.distributed.runner import RunSettings
from seminas_ray.distributed.runner import SearchJob
from seminas_ray.distributed.runner import add_sessions
from seminas_ray.utils.state_io import save_state


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------------------
# What counts as ours; --overwrite
# ------------------------------------------------------------------------------------------------------------
def test_only_our_run_folders_are_recognised(tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "t.txt").write_text("thesis")
    assert not is_run_folder(thesis)
    (thesis / "config.yaml").write_text("title: my thesis\n")
    (thesis / "tune").mkdir()
    assert not is_run_folder(thesis)  # a config.yaml that is not ours
    old = tmp_path / "old-run"
    (old / "tune").mkdir(parents=True)
    (old / "config.yaml").write_text("task: nasbench\nsettings:\n  seed: 0\n")
    assert is_run_folder(old)  # written before the marker existed
    new = tmp_path / "new-run"
    new.mkdir()
    (new / MARKER).write_text("{}")
    assert is_run_folder(new)


def test_overwrite_moves_the_old_run_aside_until_the_new_one_is_kept(tmp_path):
    out = tmp_path / "DIR"
    (out / "tune").mkdir(parents=True)
    (out / MARKER).write_text("{}")
    (out / "report.json").write_text("old")
    aside = create_run_folder(out, overwrite=True)
    assert aside is not None and (aside / "report.json").read_text() == "old"
    assert (out / MARKER).is_file() and not (out / "report.json").exists()
    close_new_run_folder(out, aside, keep=True)
    assert not aside.exists() and out.is_dir()


def test_a_new_run_that_keeps_nothing_puts_the_old_run_back(tmp_path):
    out = tmp_path / "DIR"
    (out / "tune").mkdir(parents=True)
    (out / MARKER).write_text("{}")
    (out / "report.json").write_text("old")
    aside = create_run_folder(out, overwrite=True)
    (out / "config.yaml").write_text("new")
    close_new_run_folder(out, aside, keep=False)
    assert (out / "report.json").read_text() == "old" and not (out / "config.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR"]


def test_overwrite_refuses_other_folders_and_files(tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "t.txt").write_text("thesis")
    with pytest.raises(FileExistsError, match="not a results folder of this project"):
        create_run_folder(thesis, overwrite=True)
    with pytest.raises(FileExistsError, match="already holds files"):
        create_run_folder(thesis, overwrite=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        create_run_folder(tmp_path / "file", overwrite=True)
    assert (thesis / "t.txt").read_text() == "thesis"


# ------------------------------------------------------------------------------------------------------------
# The manifest
# ------------------------------------------------------------------------------------------------------------
def run_folder(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    (out / "tune").mkdir(parents=True)
    (out / MARKER).write_text("{}")
    (out / "config.yaml").write_text("task: nasbench\nsettings: {}\n")
    (out / "tune" / "tuner.pkl").write_bytes(b"\x80\x04tuner" * 1000)
    save_state(out / "tune" / "searcher-state-a.pkl", {"evaluations": [{"key": "k"}] * 3, "w": np.ones(100)})
    record_digests(out, {p.relative_to(out).as_posix(): digest(p)
                         for p in [out / "config.yaml", out / "tune" / "tuner.pkl",
                                   out / "tune" / "searcher-state-a.pkl"]})
    return out


def test_a_folder_as_written_verifies(tmp_path):
    verify_run_folder(run_folder(tmp_path))


def test_the_manifest_keeps_recent_digests_so_a_lagging_copy_still_verifies(tmp_path):
    out = run_folder(tmp_path)
    state = out / "tune" / "searcher-state-a.pkl"
    previous = state.read_bytes()
    save_state(state, {"evaluations": [{"key": "k"}] * 4})  # Tune saved a newer state: recorded ...
    record_digests(out, {"tune/searcher-state-a.pkl": digest(state)})
    state.write_bytes(previous)  # ... but the run was killed before the copy reached tune/
    verify_run_folder(out)


@pytest.mark.parametrize("damage, message", [
    (lambda out: (out / "tune" / "tuner.pkl").write_bytes(b"\x80\x04tuner" * 10), "tuner.pkl does not match"),
    (lambda out: (out / "tune" / "tuner.pkl").write_bytes(b"cos\nsystem\n(S'id'\ntR."), "tuner.pkl does not match"),
    (lambda out: (out / "tune" / "callback-states-x.pkl").write_bytes(b"x"), "callback-states-x.pkl does not match"),
    (lambda out: (out / "config.yaml").write_text("task: nasbench\nsettings: {seed: 3}\n"), "config.yaml does not"),
    (lambda out: (out / MANIFEST).write_text("{not json"), "is unreadable"),
    (lambda out: (out / MANIFEST).unlink(), "no state_manifest.json"),
])
def test_damaged_or_foreign_state_is_refused_naming_the_file(tmp_path, damage, message):
    out = run_folder(tmp_path)
    damage(out)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        verify_run_folder(out)


def test_a_truncated_npz_state_is_refused_even_when_listed(tmp_path):
    out = run_folder(tmp_path)
    (out / "supernet").mkdir()
    path = out / "supernet" / "supernet_state.npz"
    save_state(path, {"w": np.arange(1000.0)})
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ValueError, match="supernet_state.npz is not a valid state file"):
        verify_run_folder(out)


def test_the_callback_digests_the_staged_files_under_tune(tmp_path):
    out = run_folder(tmp_path)
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "experiment_state-b.json").write_text('{"trial_data": []}')
    (staging / ".tmp-ignored.json").write_text("half")
    StateManifest.record(staging, out / "tune")
    (out / "tune" / "experiment_state-b.json").write_text('{"trial_data": []}')  # the copy arrives
    verify_run_folder(out)
    manifest = json.loads((out / MANIFEST).read_text())["files"]
    assert "tune/experiment_state-b.json" in manifest and "tune/.tmp-ignored.json" not in manifest
    assert StateManifest().__getstate__() == {}  # nothing of a session is pickled into tuner.pkl


def test_saved_evaluations_reads_the_newest_searcher_state(tmp_path):
    out = run_folder(tmp_path)
    assert saved_evaluations(out) == 3
    assert saved_evaluations(tmp_path / "nowhere") == 0


# ------------------------------------------------------------------------------------------------------------
# run_search's folder life cycle (Ray replaced by a stub)
# ------------------------------------------------------------------------------------------------------------
class FailingJob(SearchJob):
    """A job whose evaluator fails: before any evaluation, or after Tune saved ``evaluations`` of them."""

    task = "nasbench"

    def __init__(self, evaluations: int = 0) -> None:
        self.evaluations = evaluations

    def describe(self) -> dict[str, Any]:
        return {}

    @contextlib.contextmanager
    def evaluator(self, session):
        if self.evaluations:
            save_state(session.out / "tune" / "searcher-state-x.pkl", {"evaluations": [{}] * self.evaluations})
        raise RuntimeError("the supernet actors could not start")
        yield  # pragma: no cover

    def write_results(self, session, outcome):  # pragma: no cover
        return {}


@pytest.fixture
def no_ray(monkeypatch):
    @contextlib.contextmanager
    def fake_session(settings, **_: Any) -> Iterator[tuple[dict[str, float], float]]:
        yield {"CPU": 2.0}, 1.0

    monkeypatch.setattr(runner, "ray_session", fake_session)


def test_a_run_that_fails_before_its_first_evaluation_leaves_nothing(tmp_path, no_ray):
    out = tmp_path / "DIR"
    with pytest.raises(RuntimeError, match="could not start"):
        runner.run_search(FailingJob(), RunSettings(task="nasbench", preset="paper-300", out=out))
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_overwrite_that_fails_early_gives_the_old_run_back(tmp_path, no_ray):
    out = tmp_path / "DIR"
    (out / "tune").mkdir(parents=True)
    (out / MARKER).write_text("{}")
    (out / "report.json").write_text("the old run")
    with pytest.raises(RuntimeError):
        runner.run_search(FailingJob(), RunSettings(task="nasbench", preset="paper-300", out=out, overwrite=True))
    assert (out / "report.json").read_text() == "the old run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR"]


def test_a_later_failure_leaves_a_resumable_folder(tmp_path, no_ray):
    out = tmp_path / "DIR"
    with pytest.raises(RuntimeError):
        runner.run_search(FailingJob(evaluations=5), RunSettings(task="nasbench", preset="paper-300", out=out))
    assert (out / "config.yaml").is_file() and (out / MARKER).is_file() and (out / MANIFEST).is_file()
    assert len(json.loads((out / "sessions.json").read_text())) == 1
    assert runner.load_saved_settings(out, "nasbench")["preset"] == "paper-300"


def test_sessions_add_up_across_resumes(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"wall_seconds": 5.0}))
    record_session(out, 1_700_000_000.0, 30.0)
    report = add_sessions(out, {"wall_seconds": 12.5}, record_session(out, 1_700_000_100.0, 12.5))
    assert report["wall_seconds"] == 42.5 and [s["seconds"] for s in report["sessions"]] == [30.0, 12.5]
    assert json.loads((out / "report.json").read_text())["wall_seconds"] == 42.5
