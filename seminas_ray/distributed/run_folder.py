"""The results folder of a run: what marks it as ours, the manifest of its state files, replacing and discarding it.

Why this exists:

- ``--resume`` hands the folder to ``Tuner.restore``, which unpickles Tune's own state (``tune/tuner.pkl``,
  ``experiment_state-*.json``, ``search_gen_state-*.json``): a crafted file would run code, and a truncated one made
  Tune hang. So every state file's SHA-256 is recorded in ``state_manifest.json`` when it is written, and a resume
  first checks the folder against it (:func:`verify_run_folder`). The manifest proves the files are the ones this
  run wrote (truncation, corruption, swapped files); it is no defence against someone who can rewrite the whole
  folder, which is why ``--resume`` must only be given folders you created.
- ``--overwrite`` must never delete a folder that is not a run of ours, nor delete the old run before the new one has
  got going: the old folder is moved aside and removed only once the new run has something worth keeping
  (:func:`create_run_folder`, :func:`close_new_run_folder`).
- A run that fails before its first evaluation leaves nothing behind.

Tune writes its state into a staging folder and copies it into ``tune/`` in the background. The manifest is updated
from the staging copy at the moment Tune saves (``Callback.get_state`` is called at the end of every save, before the
copy starts), and it keeps the last few digests of each file, so a run killed while a copy is under way still
resumes from the previous, complete state.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from ray import tune

from seminas_ray.utils.state_io import atomic_write_bytes
from seminas_ray.utils.state_io import load_state
from seminas_ray.utils.state_io import sha256_file
from seminas_ray.utils.state_io import verify_state_file

MARKER = ".seminas_run"
MANIFEST = "state_manifest.json"
SESSIONS = "sessions.json"
CONFIG_FILE = "config.yaml"
TUNE_DIR = "tune"
SUPERNET_STATE = "supernet/supernet_state.npz"
KEEP_DIGESTS = 4                      # digests kept per file: the copy in tune/ may lag behind the newest save
_STATE_SUFFIXES = (".pkl", ".json")   # what Tune reads back on restore (top level of tune/)
_OUR_NPZ_STATES = ("searcher-state-",)  # our searcher's state: an npz file despite Tune's .pkl name


# ------------------------------------------------------------------------------------------------------------
# Is it ours?
# ------------------------------------------------------------------------------------------------------------
def is_run_folder(path: Path) -> bool:
    """A results folder of this project: our marker file, or (older runs) ``config.yaml`` of a task + ``tune/``."""
    if (path / MARKER).is_file():
        return True
    config = path / CONFIG_FILE
    if not config.is_file() or not (path / TUNE_DIR).is_dir():
        return False
    try:
        head = config.read_text(errors="replace")[:200_000]
    except OSError:
        return False
    return any(line.startswith("task:") for line in head.splitlines()) and "\nsettings:" in f"\n{head}"


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def create_run_folder(out: Path, *, overwrite: bool) -> Path | None:
    """Create ``out`` for a new run; returns the old run folder moved aside by ``overwrite`` (or ``None``).

    Refuses a folder that holds files unless ``overwrite``, and with ``overwrite`` anything that is not a results
    folder of this project. Nothing is deleted here: :func:`close_new_run_folder` decides at the end.
    """
    aside = None
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a folder: choose another --out")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} already holds files (a previous run?): use --resume {out} to continue "
                                  f"it, --overwrite to replace it, or another --out")
        if not is_run_folder(out):
            raise FileExistsError(f"--overwrite {out}: not a results folder of this project (no {MARKER}, or no "
                                  f"{CONFIG_FILE} + {TUNE_DIR}/), so it is not deleted: choose another --out")
        aside = out.with_name(f"{out.name}.old-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6:06d}")
        out.rename(aside)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / MARKER, {"project": "seminas_ray", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return aside


def saved_evaluations(out: Path) -> int:
    """Evaluations in the newest saved searcher state of ``out`` (0 when there is none or it cannot be read)."""
    states = sorted((out / TUNE_DIR).glob("searcher-state-*.pkl"))
    if not states:
        return 0
    try:
        return len(load_state(states[-1]).get("evaluations", []))
    except (ValueError, OSError, AttributeError):
        return 0


def close_new_run_folder(out: Path, aside: Path | None, *, keep: bool) -> None:
    """End of a new run's first session: keep it (and drop the replaced run) or discard it (and put that back)."""
    if keep:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        return
    shutil.rmtree(out, ignore_errors=True)
    if aside is not None and aside.exists():
        aside.rename(out)


# ------------------------------------------------------------------------------------------------------------
# The manifest
# ------------------------------------------------------------------------------------------------------------
def read_manifest(out: Path) -> dict[str, list[str]]:
    """Relative path -> accepted SHA-256 digests (newest first); ``ValueError`` naming the file when unreadable."""
    path = out / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"--resume {out}: no {MANIFEST}, so its state files cannot be checked (a folder "
                                f"from an older version, or not written by this project): start a new run") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--resume {out}: {path} is unreadable ({exc}): start a new run with another --out") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, list) for v in files.values()):
        raise ValueError(f"--resume {out}: {path} is not a state manifest: start a new run with another --out")
    return {str(k): [str(d) for d in v] for k, v in files.items()}


def record_digests(out: Path, digests: dict[str, str]) -> None:
    """Add ``digests`` (relative path -> SHA-256) to the manifest, keeping the last :data:`KEEP_DIGESTS` of each."""
    path = out / MANIFEST
    try:
        files = read_manifest(out) if path.exists() else {}
    except ValueError:
        files = {}
    changed = False
    for name, digest in digests.items():
        known = files.get(name, [])
        if known[:1] != [digest]:
            files[name] = ([digest] + [d for d in known if d != digest])[:KEEP_DIGESTS]
            changed = True
    if changed or not path.exists():
        _write_json(path, {"format": 1, "files": files})


def state_files(out: Path) -> list[Path]:
    """The files a resume reads back: Tune's state at the top of ``tune/`` and ``config.yaml``."""
    tune_dir = out / TUNE_DIR
    found = [p for p in sorted(tune_dir.iterdir()) if p.is_file() and not p.name.startswith(".")
             and p.suffix in _STATE_SUFFIXES] if tune_dir.is_dir() else []
    return [out / CONFIG_FILE, *found]


def verify_run_folder(out: Path) -> None:
    """Before a resume: every state file must be one this run wrote (its digest in the manifest), and our npz
    states must read back whole. One ``ValueError`` naming the bad file and what to do otherwise."""
    accepted = read_manifest(out)
    for path in state_files(out):
        rel = path.relative_to(out).as_posix()
        if not path.is_file():
            raise FileNotFoundError(f"--resume {out}: {path} is missing: not a complete run folder")
        if sha256_file(path) not in accepted.get(rel, []):
            raise ValueError(f"--resume {out}: {path} does not match {MANIFEST} (truncated, corrupted or not "
                             f"written by this run), so it is not loaded: start a new run with another --out")
    for path in [*(out / TUNE_DIR).glob("searcher-state-*.pkl"), out / SUPERNET_STATE]:
        if path.is_file():
            try:
                verify_state_file(path)
            except ValueError as exc:
                raise ValueError(f"--resume {out}: {exc}: start a new run with another --out") from None


def record_state_files(out: Path) -> None:
    """Digest the state files as they are in ``tune/`` now (after ``fit()`` returned: Tune's final save is copied).

    Why beside the callback: a resumed run that is already finished takes no step, so the callback never learns
    where Tune stages its files, yet Tune still writes a new session's state on the way out.
    """
    record_digests(out, {p.relative_to(out).as_posix(): sha256_file(p) for p in state_files(out)[1:]})


def start_manifest(out: Path) -> None:
    """A new run's manifest, with its ``config.yaml``."""
    record_digests(out, {CONFIG_FILE: sha256_file(out / CONFIG_FILE)})


class StateManifest(tune.Callback):
    """Records the digests of Tune's state files each time Tune saves them (see the module docstring).

    ``get_state`` is the hook: Tune calls it on every callback at the end of each save of the experiment state,
    after the experiment, searcher and search-generator files are written to the staging folder and before they are
    copied into ``tune/``. It returns ``None``, so Tune writes no callback state of its own.
    """

    def __init__(self) -> None:
        self._trials: list[Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # pickled into tuner.pkl: nothing of this session's

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._trials = None

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._trials = trials  # Tune's own list: the trials it adds later in the step appear in it

    def get_state(self) -> dict | None:
        if self._trials:
            storage = self._trials[0].storage
            self.record(Path(storage.experiment_driver_staging_path), Path(storage.experiment_fs_path))
        return None

    @staticmethod
    def record(staging: Path, experiment: Path) -> None:
        """Digest the staged state files (as ``tune/<name>``) and ``tune/tuner.pkl`` into the run's manifest."""
        out = experiment.parent
        digests = {}
        if staging.is_dir():
            for path in staging.iterdir():
                if path.is_file() and not path.name.startswith(".") and path.suffix in _STATE_SUFFIXES:
                    digests[f"{TUNE_DIR}/{path.name}"] = sha256_file(path)
        tuner = experiment / "tuner.pkl"
        if tuner.is_file():
            digests[f"{TUNE_DIR}/tuner.pkl"] = sha256_file(tuner)
        if digests and (out / MARKER).is_file():
            record_digests(out, digests)


# ------------------------------------------------------------------------------------------------------------
# Sessions
# ------------------------------------------------------------------------------------------------------------
def record_session(out: Path, started: float, seconds: float) -> list[dict[str, Any]]:
    """Append this session (start time, seconds) to ``sessions.json``; returns every session of the run."""
    path = out / SESSIONS
    try:
        sessions = json.loads(path.read_text()) if path.is_file() else []
    except (OSError, json.JSONDecodeError):
        sessions = []
    if not isinstance(sessions, list):
        sessions = []
    sessions.append({"started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                     "seconds": round(seconds, 2)})
    _write_json(path, sessions)
    return sessions


__all__ = ["MANIFEST", "MARKER", "SESSIONS", "StateManifest", "close_new_run_folder", "create_run_folder",
           "is_run_folder", "read_manifest", "record_digests", "record_session", "record_state_files",
           "saved_evaluations",
           "start_manifest", "state_files", "verify_run_folder"]
