"""The one search runner: every task's search goes through :func:`run_search`.

It owns what used to be re-wired by hand in each task: the results folder (checked before anything is written,
``config.yaml`` with the frozen settings, ``--resume``), ``ray.init``, the placement group reserved for controller
rounds, Tune's ``Tuner`` (create, or ``Tuner.restore``), Ctrl-C (:class:`SearchInterrupted`, which the CLI turns into
exit 130 and a resume command) and the final report. It knows no task: a task hands it a :class:`SearchJob`.

Why a reserved placement group: Tune keeps placement groups for running, staged and cached trial actors even while
the searcher waits for a controller round; reserving the round's CPUs before Tune starts keeps it from waiting
forever on a small machine.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from abc import ABC
from abc import abstractmethod
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from typing import Callable
from typing import Iterator
from typing import Mapping
from typing import Sequence

import ray
import yaml
from ray import tune
from ray.exceptions import GetTimeoutError
from ray.util import remove_placement_group
from ray.util.placement_group import placement_group

from seminas_ray.algorithm.base import AskTellOptimizer
from seminas_ray.distributed.run_folder import StateManifest
from seminas_ray.distributed.run_folder import close_new_run_folder
from seminas_ray.distributed.run_folder import create_run_folder
from seminas_ray.distributed.run_folder import record_session
from seminas_ray.distributed.run_folder import record_state_files
from seminas_ray.distributed.run_folder import saved_evaluations
from seminas_ray.distributed.run_folder import start_manifest
from seminas_ray.distributed.run_folder import verify_run_folder
from seminas_ray.distributed.search_views import close_views
from seminas_ray.distributed.search_views import search_views
from seminas_ray.distributed.searcher import AskTellSearcher
from seminas_ray.reporting import write_json
from seminas_ray.reporting import write_yaml
from seminas_ray.settings import LOOPBACK_ENV

WORK_GROUP_NAME = "seminas-controller"
LOCALHOST = "127.0.0.1"
TUNE_DIR = "tune"
CONFIG_FILE = "config.yaml"


class SearchInterrupted(KeyboardInterrupt):
    """The search stopped before its budget was spent (Ctrl-C); Tune saved its state, so it can be resumed."""


# ------------------------------------------------------------------------------------------------------------
# Settings: parsed once, frozen, saved in config.yaml and read back (never mutated) on --resume
# ------------------------------------------------------------------------------------------------------------
# options that describe the machine a session runs on, not the search: a resumed run takes them from its new
# command line instead of config.yaml
SESSION_FIELDS = ("out", "resume", "overwrite", "address", "num_cpus", "dashboard", "controller_device")
# where the controller round trains: "auto" = "cuda" when the cluster has a GPU
CONTROLLER_DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class RunSettings:
    """Everything one run is defined by. ``options`` holds the task's own options (read-only)."""

    task: str
    preset: str
    seed: int = 0
    config: str | None = None                 # YAML file of SemiNAS settings
    overrides: tuple[str, ...] = ()           # --set key=value, in order
    budget: int | None = None
    exact_paper_schedule: bool = False
    concurrency: int = 4
    trial_cpus: float = 0.25
    options: Mapping[str, Any] = field(default_factory=dict)
    # session
    out: Path | None = None
    resume: bool = False
    overwrite: bool = False
    address: str | None = None
    num_cpus: int | None = None
    dashboard: bool = False
    controller_device: str = "cpu"            # one of CONTROLLER_DEVICES

    def __post_init__(self) -> None:
        if self.controller_device not in CONTROLLER_DEVICES:
            raise ValueError(f"--controller-device must be one of {', '.join(CONTROLLER_DEVICES)}, "
                             f"got {self.controller_device!r}")
        object.__setattr__(self, "overrides", tuple(self.overrides))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        if self.out is not None:
            object.__setattr__(self, "out", Path(self.out))

    def option(self, name: str) -> Any:
        """A task option (``KeyError`` for an option the task never declared: a bug, not user input)."""
        return self.options[name]

    def search_dict(self) -> dict[str, Any]:
        """What defines the search (saved in config.yaml; the session fields are left out)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in SESSION_FIELDS}
        out["overrides"] = list(self.overrides)
        out["options"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.options.items()}
        return out

    def resumed(self, saved: Mapping[str, Any]) -> "RunSettings":
        """The saved search settings of a run folder, with this session's fields."""
        known = {f.name for f in dataclasses.fields(self)} - set(SESSION_FIELDS)
        unknown = sorted(set(saved) - known)
        if unknown:
            raise ValueError(f"--resume {self.out}: {CONFIG_FILE} has unknown settings {unknown}")
        data = {k: v for k, v in saved.items()}
        data["options"] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in dict(saved["options"]).items()}
        session = {k: getattr(self, k) for k in SESSION_FIELDS}
        return RunSettings(**data, **session)


# ------------------------------------------------------------------------------------------------------------
# What a task hands the runner
# ------------------------------------------------------------------------------------------------------------
@dataclass
class SearchPlan:
    """How to search: the optimizer (built for a new run only), the Tune trainable, and how trials report."""

    make_optimizer: Callable[[], AskTellOptimizer]
    trainable: Callable[..., Any]               # a Tune function trainable (``tune.with_parameters`` applied)
    metric: str
    mode: str = "max"
    trial_cpus: float | None = None             # None: sized for cheap lookups beside the reserved CPUs
    include_pool: bool = False                  # trial configs carry the round's pool (supernet evaluators)
    extra_result_keys: tuple[str, ...] = ()     # result fields copied into the evaluation log
    callbacks: Sequence[Callable[[AskTellSearcher, str], None]] = ()
    max_failures: int = 2
    batch_size: int = 1                         # >1: cheap evaluators take a round's fixed architectures per trial


@dataclass
class SearchSession:
    """What a job sees of the running search: where it writes, whether it resumes, the cluster."""

    settings: RunSettings
    out: Path
    resources: dict[str, float]
    work_cpus: float
    work_group_name: str = WORK_GROUP_NAME
    work_gpus: float = 0.0                      # GPUs of the controller round (its reserved bundle holds them)

    @property
    def controller_device(self) -> str:
        """Where the controller round trains: ``"cuda"`` when it was given a GPU, else ``"cpu"``."""
        return "cuda" if self.work_gpus > 0 else "cpu"

    @property
    def round_cpus(self) -> float:
        """CPUs of the controller round task itself: one (its threads, hence its numbers, do not depend on the
        cluster); the rest of the reserved group is for its pseudo-labelling tasks."""
        return min(1.0, self.work_cpus)

    @property
    def resume(self) -> bool:
        return self.settings.resume

    @property
    def has_gpu(self) -> bool:
        return self.resources.get("GPU", 0.0) >= 1


@dataclass
class SearchOutcome:
    """The finished search: the searcher (evaluation log, optimizer), Tune's results, and the wall time."""

    searcher: AskTellSearcher
    result_grid: Any
    wall_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)   # what a job's ``after_search`` added


class SearchJob(ABC):
    """A task's prepared run: its input is validated in the task's ``prepare`` before the job exists."""

    task: str
    log_to_driver: bool = False     # show the Ray workers' output (e.g. supernet progress) in this terminal
    outcome: "SearchOutcome | None" = None   # set by run_search once the search is over (Tune's ResultGrid, ...)

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Resolved configuration saved in ``config.yaml`` beside the settings (JSON/YAML-able)."""

    def headline(self) -> str:
        """One line printed when the search starts."""
        return f"{self.task} search"

    @contextlib.contextmanager
    def evaluator(self, session: SearchSession) -> Iterator[SearchPlan]:
        """Start what the trials need (e.g. supernet actors), yield the plan, stop it again."""
        yield self.plan(session)

    def plan(self, session: SearchSession) -> SearchPlan:
        """The plan, for jobs that need nothing running beside the trials."""
        raise NotImplementedError(f"{type(self).__name__} must define plan() or evaluator()")

    def after_search(self, outcome: SearchOutcome) -> None:
        """Runs inside :meth:`evaluator` once the budget is spent (e.g. re-score on the final supernet weights)."""

    @abstractmethod
    def write_results(self, session: SearchSession, outcome: SearchOutcome) -> dict[str, Any]:
        """Write the results folder (evaluations.csv, rounds.csv, report.md/json, plots); returns the report."""


# ------------------------------------------------------------------------------------------------------------
# The results folder
# ------------------------------------------------------------------------------------------------------------
def prepare_out_dir(out: Path, *, overwrite: bool) -> Path | None:
    """Create ``out`` for a new run; refuse a folder that holds files unless ``overwrite``, and with ``overwrite``
    anything that is not a results folder of ours. The replaced run is moved aside (returned), not deleted: the
    runner deletes it once the new run has something to keep, or puts it back (:func:`close_new_run_folder`)."""
    return create_run_folder(out, overwrite=overwrite)


def load_saved_settings(out: Path, task: str) -> dict[str, Any]:
    """The search settings saved in ``out/config.yaml`` by a run of ``task`` (for ``--resume``)."""
    path = out / CONFIG_FILE
    if not path.is_file() or not (out / TUNE_DIR).is_dir():
        raise FileNotFoundError(f"--resume {out}: not a run folder (no {CONFIG_FILE} and {TUNE_DIR}/ inside)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"--resume {out}: {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or data.get("task") != task or not isinstance(data.get("settings"), dict):
        raise ValueError(f"--resume {out}: {path} is not the configuration of a {task} run")
    return data["settings"]


def resolve_settings(settings: RunSettings) -> RunSettings:
    """For ``--resume``: the run folder's saved settings (the parsed ones are not touched)."""
    if not settings.resume:
        return settings
    if settings.out is None:
        raise ValueError("--resume needs a run folder")
    return settings.resumed(load_saved_settings(settings.out.resolve(), settings.task))


# ------------------------------------------------------------------------------------------------------------
# Ray
# ------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def ray_session(settings: RunSettings, *, log_to_driver: bool = False,
                work_cpus: float | None = None) -> Iterator[tuple[dict[str, float], float]]:
    """``ray.init`` (unless already connected) and the controller's reserved CPUs; yields (resources, work CPUs).

    The placement group is removed on the way out, whatever happens.
    """
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if settings.num_cpus is not None and settings.num_cpus < 1:
        raise ValueError(f"--num-cpus must be at least 1, got {settings.num_cpus}")
    if not ray.is_initialized():
        local = settings.address is None
        ray.init(address=settings.address, num_cpus=settings.num_cpus if local else None,
                 include_dashboard=settings.dashboard, dashboard_host=LOCALHOST, configure_logging=False,
                 log_to_driver=log_to_driver)
        if local:
            warn_if_exposed()
    resources = dict(ray.cluster_resources())
    total = float(resources.get("CPU", 1.0))
    cpus = work_cpus if work_cpus is not None else reserved_work_cpus(total)
    gpus = controller_gpus(settings.controller_device, resources)
    group = placement_group([work_bundle(cpus, gpus)], name=WORK_GROUP_NAME)
    try:
        try:
            ray.get(group.ready(), timeout=120)
        except GetTimeoutError:
            what = f"{cpus:g} CPU" + (f" and {gpus:g} GPU" if gpus else "")
            raise ValueError(f"Ray could not reserve {what} for the controller in 120 s (the cluster has "
                             f"{total:g} CPUs, other jobs may hold them): give --num-cpus 2 or more") from None
        yield resources, cpus
    finally:
        with contextlib.suppress(Exception):  # run_search may have released it already
            remove_placement_group(group)


def release_work_group() -> None:
    """Give the controller's reserved CPUs back once the search is over, so the results stage (e.g. the ImageNet
    task's final training) can use the whole cluster; a no-op when there is none."""
    with contextlib.suppress(Exception):
        remove_placement_group(ray.util.get_placement_group(WORK_GROUP_NAME))


def reserved_work_cpus(total_cpus: float) -> float:
    """CPUs reserved for controller rounds and their pseudo-labelling tasks: one on a small machine (the round runs
    on it and labels its pool in-process), a quarter of a larger cluster (at most 8), so shard tasks run in parallel
    beside the one-CPU round task."""
    if total_cpus < 2:
        return 0.5 * total_cpus
    return float(min(8, max(1, int(total_cpus // 4))))


def controller_gpus(device: str, resources: Mapping[str, float]) -> float:
    """GPUs the controller round asks for: 1 for ``cuda`` (refused on a cluster without one), 0 for ``cpu``, and for
    ``auto`` 1 when the cluster has a GPU. The round holds it for its whole run (pseudo-labelling tasks inside its
    placement group then ask for CPUs only, see ``choose_task_options``)."""
    if device not in CONTROLLER_DEVICES:
        raise ValueError(f"--controller-device must be one of {', '.join(CONTROLLER_DEVICES)}, got {device!r}")
    has_gpu = float(resources.get("GPU", 0.0)) >= 1
    if device == "cuda" and not has_gpu:
        raise ValueError("--controller-device cuda: the Ray cluster has no GPU (use cpu or auto)")
    return 1.0 if device == "cuda" or (device == "auto" and has_gpu) else 0.0


def work_bundle(cpus: float, gpus: float) -> dict[str, float]:
    """The placement-group bundle reserved for the controller round (and the tasks it spawns)."""
    return {"CPU": cpus, "GPU": gpus} if gpus else {"CPU": cpus}


def warn_if_exposed() -> None:
    """One line on stderr when the local Ray instance is not bound to the loopback interface.

    Why: Ray's services bind to the node's address, which is loopback only when ``LOOPBACK_ENV=0`` was set before
    ``ray`` was imported (``import seminas_ray`` does it); a program that imported ray earlier gets a Ray instance
    reachable from the network.
    """
    address = ray.util.get_node_ip_address()
    if address not in (LOCALHOST, "::1"):
        print(f"warning: the local Ray instance listens on {address}, not only on {LOCALHOST}: set "
              f"{LOOPBACK_ENV}=0 before importing ray to keep it off the network", file=sys.stderr, flush=True)


def lookup_trial_cpus(total_cpus: float, concurrency: int, wanted: float, reserved: float) -> float:
    """CPUs per cheap trial: ``concurrency`` running plus as many staged trials fit beside ``reserved`` CPUs."""
    return max(0.001, min(wanted, (total_cpus - reserved) / (2 * max(1, concurrency))))


# ------------------------------------------------------------------------------------------------------------
# The search
# ------------------------------------------------------------------------------------------------------------
def trial_name(trial: Any) -> str:
    """Short trial names and folders: the default repeats the (long) architecture config."""
    return f"trial_{trial.trial_id}"


def _tuner(plan: SearchPlan, session: SearchSession) -> tuple[tune.Tuner, AskTellSearcher]:
    settings = session.settings
    cpus = plan.trial_cpus
    if cpus is None:
        cpus = lookup_trial_cpus(session.resources.get("CPU", 1.0), settings.concurrency, settings.trial_cpus,
                                 reserved=session.work_cpus)
    trainable = tune.with_resources(plan.trainable, {"cpu": cpus})
    run_id = str(session.out)
    if settings.resume:
        tuner = tune.Tuner.restore(str(session.out / TUNE_DIR), trainable=trainable, resume_unfinished=True,
                                   resume_errored=True)
        restored = AskTellSearcher.restored(run_id)
        # the machine is this session's: its reserved CPUs/GPU and device, not the interrupted session's
        restored.configure_work(num_cpus=session.round_cpus, num_gpus=session.work_gpus,
                                device=session.controller_device)
        return tuner, restored
    searcher = AskTellSearcher(plan.make_optimizer(), metric=plan.metric, mode=plan.mode,
                               work_num_cpus=session.round_cpus, work_num_gpus=session.work_gpus,
                               work_device=session.controller_device,
                               callbacks=[*plan.callbacks, *search_views(session.out, plan.metric)],
                               work_placement_group_name=session.work_group_name, include_pool=plan.include_pool,
                               extra_result_keys=plan.extra_result_keys, run_id=run_id, batch_size=plan.batch_size)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1,
                                    max_concurrent_trials=max(1, settings.concurrency), reuse_actors=True,
                                    trial_name_creator=trial_name, trial_dirname_creator=trial_name),
        run_config=tune.RunConfig(name=TUNE_DIR, storage_path=str(session.out), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=plan.max_failures),
                                  callbacks=[StateManifest()]),  # digests of the state files (resume checks them)
    )
    return tuner, searcher


def tune_search(plan: SearchPlan, session: SearchSession) -> SearchOutcome:
    """Run (or continue) the Tune search of ``plan``; :class:`SearchInterrupted` when it stopped early."""
    tuner, searcher = _tuner(plan, session)
    t0 = time.perf_counter()
    try:
        grid = tuner.fit()
    finally:
        close_views(searcher.callbacks)  # the query bar and the TensorBoard file
    wall = time.perf_counter() - t0
    if not searcher.done:
        # Tune returns from fit() on Ctrl-C after saving its state: the search is not over
        raise SearchInterrupted(f"stopped after {searcher.n_queries} of {searcher.budget} queries")
    return SearchOutcome(searcher=searcher, result_grid=grid, wall_seconds=wall)


def run_search(job: SearchJob, settings: RunSettings) -> dict[str, Any]:
    """The whole run of a prepared job: results folder, Ray, Tune, report. Returns the report."""
    if settings.out is None:
        raise ValueError("no results folder given (--out)")
    out = settings.out.resolve()
    started, t0 = time.time(), time.perf_counter()
    aside = None
    if settings.resume:
        verify_run_folder(out)  # before anything of Tune's is unpickled (state_manifest.json, docs/safety.md)
    else:
        aside = prepare_out_dir(out, overwrite=settings.overwrite)
    finished = False
    try:
        if not settings.resume:
            write_yaml(out / CONFIG_FILE, {"task": job.task, "settings": settings.search_dict(), **job.describe()})
            start_manifest(out)
        print(job.headline(), flush=True)
        with ray_session(settings, log_to_driver=job.log_to_driver) as (resources, work_cpus):
            session = SearchSession(settings=settings, out=out, resources=resources, work_cpus=work_cpus,
                                    work_gpus=controller_gpus(settings.controller_device, resources))
            with job.evaluator(session) as plan:
                # fit() returns (done, or Ctrl-C) only after Tune's final save is copied into tune/: record the
                # files as they are now (if it raised, the digests the callback took at each save stand)
                try:
                    outcome = tune_search(plan, session)
                except SearchInterrupted:
                    record_state_files(out)
                    raise
                record_state_files(out)
                job.outcome = outcome
                job.after_search(outcome)
            release_work_group()
            report = job.write_results(session, outcome)
        finished = True
    finally:
        # a new run that stopped before its first evaluation leaves nothing (and the run it replaced comes back);
        # otherwise the folder stays, resumable, with this session's wall time
        keep = settings.resume or finished or saved_evaluations(out) > 0
        if not settings.resume:
            close_new_run_folder(out, aside, keep=keep)
        if keep:
            sessions = record_session(out, started, time.perf_counter() - t0)
    return add_sessions(out, report, sessions)


def add_sessions(out: Path, report: dict[str, Any], sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """``report.json`` with every session of the run and the total wall time (a resume adds a session)."""
    report = dict(report, sessions=sessions, wall_seconds=round(sum(s["seconds"] for s in sessions), 2))
    if (out / "report.json").is_file():
        write_json(out / "report.json", report)
    return report


__all__ = [
    "CONTROLLER_DEVICES", "RunSettings", "SearchInterrupted", "SearchJob", "SearchOutcome", "SearchPlan",
    "SearchSession", "add_sessions", "controller_gpus", "load_saved_settings", "lookup_trial_cpus",
    "prepare_out_dir", "ray_session", "release_work_group", "resolve_settings", "run_search", "tune_search",
    "work_bundle",
]
