"""The Python API: run a search without argparse, and read a results folder back.

Example::

    import seminas_ray

    evaluations = seminas_ray.search(task="nasbench", preset="paper-300", budget=100, benchmark="nb201",
                                     dataset="cifar10", out="runs/nb201-demo", num_cpus=2)
    run = seminas_ray.load_run("runs/nb201-demo")
    run.report["best"], run.rounds

:func:`search` goes through the same runner as ``python experiments/run.py`` / ``seminas-ray`` (same validation,
same results folder, same report); keyword arguments are the CLI's options with ``_`` for ``-``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Sequence

import pandas as pd
import yaml

from seminas_ray.cli import check_session_options
from seminas_ray.cli import default_runs_dir
from seminas_ray.distributed.runner import CONFIG_FILE
from seminas_ray.distributed.runner import RunSettings
from seminas_ray.distributed.runner import resolve_settings
from seminas_ray.distributed.runner import run_search
from seminas_ray.tasks import get_task

# RunSettings fields that search() takes as keyword arguments beside the task's own options
_SETTING_KEYWORDS = tuple(f.name for f in dataclasses.fields(RunSettings)
                          if f.name not in ("task", "preset", "seed", "budget", "overrides", "options", "out"))


def task_option_defaults(task: str) -> dict[str, Any]:
    """The task's own options (``--benchmark``, ``--data``, ...) with their command-line defaults."""
    probe = argparse.ArgumentParser(add_help=False)
    get_task(task).add_arguments(probe.add_argument_group())
    return vars(probe.parse_args([]))


def search(task: str = "nasbench", preset: str | None = None, budget: int | None = None, seed: int = 0,
           out: str | Path | None = None, overrides: Sequence[str] = (), **options: Any) -> pd.DataFrame:
    """Run one search and return its evaluations (``evaluations.csv``: one row per query, in query order).

    The same as ``run(...).evaluations`` (:func:`run` also hands back Tune's ``ResultGrid``).

    Args:
        task: a registered task (``nasbench``, ``tts``, ``imagenet``).
        preset: the task's preset (default: the task's default).
        budget: total queries (default: the preset's).
        seed: the search seed.
        out: the results folder (default ``runs/<task>-<time>`` in the current directory).
        overrides: ``key=value`` settings, as ``--set`` takes them (e.g. ``("n_seed=30", "controller.lr=0.002")``).
        **options: the task's own options (e.g. ``benchmark="nb201", dataset="cifar10", method="random"``) and the
            run's (``config``, ``exact_paper_schedule``, ``concurrency``, ``trial_cpus``, ``resume``,
            ``overwrite``, ``address``, ``num_cpus``, ``dashboard``, ``controller_device``).

    The returned DataFrame's ``attrs`` hold the ``report`` (``report.json``) and the results folder (``out``);
    :func:`load_run` reads everything back later. Errors in the input raise ``ValueError`` (or
    ``FileNotFoundError``) before anything is written.
    """
    return run(task, preset, budget, seed, out, overrides, **options).evaluations


def run(task: str = "nasbench", preset: str | None = None, budget: int | None = None, seed: int = 0,
        out: str | Path | None = None, overrides: Sequence[str] = (), **options: Any) -> "RunResult":
    """Run one search (arguments as :func:`search`) and return its results folder read back, with Tune's
    ``ResultGrid`` of the search in ``result_grid`` (one ``Result`` per Tune trial: a trial may hold several
    table lookups; the project's own evaluation log, one row per query, is ``evaluations``)."""
    spec = get_task(task)
    task_options = task_option_defaults(task)
    run_options = {k: options.pop(k) for k in list(options) if k in _SETTING_KEYWORDS}
    unknown = sorted(set(options) - set(task_options))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for the {task} task; its options are "
                         f"{sorted(task_options)}, the run's {sorted(_SETTING_KEYWORDS)}")
    task_options.update(options)
    folder = Path(out) if out is not None else default_runs_dir() / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"
    settings = RunSettings(task=task, preset=preset or spec.default_preset, seed=int(seed), budget=budget,
                           overrides=tuple(overrides), options=task_options, out=folder, **run_options)
    settings = resolve_settings(check_session_options(settings))
    job = spec.prepare(settings)
    run_search(job, settings)
    result = load_run(folder)
    result.evaluations.attrs.update(report=result.report, out=str(folder.resolve()))
    result.result_grid = job.outcome.result_grid if job.outcome is not None else None
    return result


@dataclass
class RunResult:
    """A results folder read back: the report, the evaluations and rounds, and the settings it ran with."""

    path: Path
    report: dict[str, Any]
    evaluations: pd.DataFrame
    rounds: pd.DataFrame
    settings: dict[str, Any]                         # config.yaml's "settings" (what defines the search)
    config: dict[str, Any] = field(default_factory=dict)  # the whole config.yaml (settings + the task's resolved one)
    # Tune's ResultGrid of the search, from run() only: load_run does not rebuild it (that would unpickle Tune's
    # state, see docs/safety.md)
    result_grid: Any = None


def load_run(path: str | Path) -> RunResult:
    """Read the results folder ``path`` (a finished run: ``report.json`` and ``evaluations.csv``)."""
    folder = Path(path)
    report_file, evaluations_file = folder / "report.json", folder / "evaluations.csv"
    for required in (report_file, evaluations_file):
        if not required.is_file():
            raise FileNotFoundError(f"{folder} is not a finished results folder (no {required.name})")
    config = yaml.safe_load((folder / CONFIG_FILE).read_text()) if (folder / CONFIG_FILE).is_file() else {}
    rounds_file = folder / "rounds.csv"
    try:
        rounds = pd.read_csv(rounds_file) if rounds_file.is_file() else pd.DataFrame()
    except pd.errors.EmptyDataError:
        rounds = pd.DataFrame()
    return RunResult(path=folder, report=json.loads(report_file.read_text()),
                     evaluations=pd.read_csv(evaluations_file), rounds=rounds,
                     settings=dict((config or {}).get("settings") or {}), config=dict(config or {}))


__all__ = ["RunResult", "load_run", "run", "search", "task_option_defaults"]
