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
import shutil
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
from ray.util import remove_placement_group
from ray.util.placement_group import placement_group

from seminas_ray.algorithm.base import AskTellOptimizer
from seminas_ray.distributed.searcher import AskTellSearcher
from seminas_ray.reporting import write_yaml

WORK_GROUP_NAME = "seminas-controller"
TUNE_DIR = "tune"
CONFIG_FILE = "config.yaml"


class SearchInterrupted(KeyboardInterrupt):
    """The search stopped before its budget was spent (Ctrl-C); Tune saved its state, so it can be resumed."""


# ------------------------------------------------------------------------------------------------------------
# Settings: parsed once, frozen, saved in config.yaml and read back (never mutated) on --resume
# ------------------------------------------------------------------------------------------------------------
# options that describe the machine a session runs on, not the search: a resumed run takes them from its new
# command line instead of config.yaml
SESSION_FIELDS = ("out", "resume", "overwrite", "address", "num_cpus", "dashboard")


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

    def __post_init__(self) -> None:
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


@dataclass
class SearchSession:
    """What a job sees of the running search: where it writes, whether it resumes, the cluster."""

    settings: RunSettings
    out: Path
    resources: dict[str, float]
    work_cpus: float
    work_group_name: str = WORK_GROUP_NAME

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
def prepare_out_dir(out: Path, *, overwrite: bool) -> None:
    """Create ``out``; refuse a folder that already holds files unless ``overwrite`` (then it is replaced)."""
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} already holds files (a previous run?): use --resume {out} to continue "
                                  f"it, --overwrite to replace it, or another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


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
    if not ray.is_initialized():
        ray.init(address=settings.address, num_cpus=settings.num_cpus if settings.address is None else None,
                 include_dashboard=settings.dashboard, configure_logging=False, log_to_driver=log_to_driver)
    resources = dict(ray.cluster_resources())
    total = float(resources.get("CPU", 1.0))
    cpus = work_cpus if work_cpus is not None else (1.0 if total >= 2 else 0.5 * total)
    group = placement_group([{"CPU": cpus}], name=WORK_GROUP_NAME)
    try:
        ray.get(group.ready(), timeout=120)
        yield resources, cpus
    finally:
        remove_placement_group(group)


def lookup_trial_cpus(total_cpus: float, concurrency: int, wanted: float, reserved: float) -> float:
    """CPUs per cheap trial: ``concurrency`` running plus as many staged trials fit beside ``reserved`` CPUs."""
    return max(0.001, min(wanted, (total_cpus - reserved) / (2 * max(1, concurrency))))


# ------------------------------------------------------------------------------------------------------------
# The search
# ------------------------------------------------------------------------------------------------------------
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
        return tuner, AskTellSearcher.restored(run_id)
    searcher = AskTellSearcher(plan.make_optimizer(), metric=plan.metric, mode=plan.mode,
                               work_num_cpus=session.work_cpus, callbacks=list(plan.callbacks),
                               work_placement_group_name=session.work_group_name, include_pool=plan.include_pool,
                               extra_result_keys=plan.extra_result_keys, run_id=run_id)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1,
                                    max_concurrent_trials=max(1, settings.concurrency), reuse_actors=True),
        run_config=tune.RunConfig(name=TUNE_DIR, storage_path=str(session.out), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=plan.max_failures)),
    )
    return tuner, searcher


def tune_search(plan: SearchPlan, session: SearchSession) -> SearchOutcome:
    """Run (or continue) the Tune search of ``plan``; :class:`SearchInterrupted` when it stopped early."""
    tuner, searcher = _tuner(plan, session)
    t0 = time.perf_counter()
    grid = tuner.fit()
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
    if not settings.resume:
        prepare_out_dir(out, overwrite=settings.overwrite)
        write_yaml(out / CONFIG_FILE, {"task": job.task, "settings": settings.search_dict(), **job.describe()})
    print(job.headline(), flush=True)
    with ray_session(settings, log_to_driver=job.log_to_driver) as (resources, work_cpus):
        session = SearchSession(settings=settings, out=out, resources=resources, work_cpus=work_cpus)
        with job.evaluator(session) as plan:
            outcome = tune_search(plan, session)
            job.after_search(outcome)
        return job.write_results(session, outcome)


__all__ = ["RunSettings", "SearchInterrupted", "SearchJob", "SearchOutcome", "SearchPlan", "SearchSession",
           "load_saved_settings", "lookup_trial_cpus", "prepare_out_dir", "ray_session", "resolve_settings",
           "run_search", "tune_search"]
