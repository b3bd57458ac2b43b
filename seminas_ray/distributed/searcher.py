"""Ray Tune searchers over the ask/tell optimizers.

``AskTellSearcher`` adapts any ``AskTellOptimizer`` (SemiNAS, random search, regularized evolution) to Tune's
``Searcher`` API, in the style of ``ray/tune/search/``: a thin adapter over a library that knows nothing of Ray.

- The optimizer's heavy work (a SemiNAS controller round: minutes of training) never runs on Tune's event loop:
  it is submitted as a Ray task and ``suggest`` returns ``None`` until the round is ready.
- ``suggest`` returns ``Searcher.FINISHED`` once the query budget is spent or the optimizer is done.
- ``save``/``restore`` write the whole state (optimizer, controller weights, live trials, evaluation log) as a
  pickle-free npz file; a controller round in flight at save time is simply recomputed after restore (it is a
  deterministic function of the saved state), so a restored run ends exactly as an uninterrupted one.
- metric and mode are constructor arguments because Tune does not pass them when ``param_space`` is empty.
- ``param_space``: the searcher searches architectures only. Constant entries are passed to the trainable unchanged;
  a search-space entry (``tune.loguniform(...)``, ``tune.choice(...)``, ``tune.grid_search(...)``) or an entry named
  like the searcher's own keys (``arch``, ``key``, ``batch``, ``round``, ``pool``) is refused: for the former
  ``set_search_properties`` returns False and Tune raises its error ("unresolved parameters"), as with
  ``OptunaSearch``; the latter is a ``ValueError``.
- Warm starts: ``points_to_evaluate`` (architectures, as trial configs ``{"arch": ...}`` or bare ``space.to_config``
  dicts) are suggested before the optimizer's own proposals and count as queries; with ``evaluated_rewards`` (or
  later through ``add_evaluated_point``) they are known results instead: labelled data for the optimizer
  (``optimizer.observe``), never suggested and not counted against the budget.

Trial configs look like ``{"arch": <space.to_config(arch)>, "key": <canonical key>}``.
"""
from __future__ import annotations

import logging
import math
import time
import weakref
from typing import Any
from typing import Callable
from typing import Sequence

import ray
from ray.tune.search import Searcher
from ray.tune.search.sample import Domain
from ray.util import get_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from seminas_ray.algorithm.base import AskTellOptimizer
from seminas_ray.algorithm.base import run_work
from seminas_ray.algorithm.config import SemiNASConfig
from seminas_ray.algorithm.registry import make_method
from seminas_ray.utils.state_io import load_state
from seminas_ray.utils.state_io import save_state

logger = logging.getLogger(__name__)

ARCH_KEY = "arch"
BATCH_KEY = "batch"  # a batch trial's config: {"batch": [{"arch": ..., "key": ...}, ...]}; its result likewise
# result fields copied into the evaluation log besides the metric (tasks may pass their own)
DEFAULT_EXTRA_RESULT_KEYS: tuple[str, ...] = ("test_metric", "repeat", "in_benchmark", "eval_seconds")


@ray.remote
def _remote_run_work(work: Any) -> Any:
    return run_work(work)


class AskTellSearcher(Searcher):
    """A Tune ``Searcher`` driving an ask/tell optimizer.

    Args:
        optimizer: the ask/tell optimizer (owns the space and the RNG).
        metric: the reported metric to optimise (required: Tune does not pass it with an empty ``param_space``).
        mode: ``"max"`` or ``"min"``.
        budget: maximum number of distinct architectures to suggest (``None``: the optimizer's own budget, which
            may itself be ``None``: until the optimizer finishes).
        remote_work: run heavy optimizer work as a Ray task (``True``) or inline in ``suggest`` (``False``).
        work_num_cpus: CPUs requested by the remote work task.
        callbacks: progress hooks called as ``callback(searcher, "trial" | "round")``.
        work_placement_group: a placement group reserved for the heavy work (and the tasks it spawns). Tune
            reserves CPUs for running, staged and cached trial actors even while the searcher waits; on a small
            machine a round task in the shared pool could wait forever, so the CLI reserves its CPUs up front.
        include_pool: add ``"round"`` and ``"pool"`` (the keys of every architecture of the current round) to each
            trial config, for evaluators that must see the whole round first (a weight-sharing supernet is trained
            on the round's pool before any member is scored).
        work_placement_group_name: the same reservation by name, looked up when a round is submitted: a name
            survives Tune's pickling of the searcher and a resume, a placement group handle does not.
        extra_result_keys: result fields copied into the evaluation log besides the metric (default:
            ``DEFAULT_EXTRA_RESULT_KEYS``).
        run_id: a name under which :meth:`restored` finds this searcher again after ``Tuner.restore`` unpickled it.
        work_num_gpus: GPUs requested by the remote work task (its placement group bundle must hold them).
        work_device: the torch device of the heavy work (``optimizer.work_device``); ``None`` leaves the
            optimizer's (cuda when the work task sees a GPU, else cpu).
        points_to_evaluate: architectures to evaluate first (counted as queries), as Tune's searchers take them.
        evaluated_rewards: the metric values of ``points_to_evaluate``, when they are already known: then they are
            observed (labelled data, not queries) instead of evaluated.
        batch_size: at most this many architectures per trial, for evaluators that are cheap per architecture
            (table lookups: Tune's per-trial overhead would otherwise dominate). Only architectures that are
            already fixed (``optimizer.n_ready()``, e.g. the rest of a SemiNAS round) are batched, so the search
            asks exactly what it asks with one per trial. The trial then gets ``{"batch": [{"arch", "key"}, ...]}``
            and reports ``{"batch": [result per architecture, each with its "key"], <metric>: best}``.
    """

    # live searchers by run_id: Tune's restore unpickles its own copy, which the caller needs back
    _by_run_id: "weakref.WeakValueDictionary[str, AskTellSearcher]" = weakref.WeakValueDictionary()

    def __init__(
        self,
        optimizer: AskTellOptimizer,
        *,
        metric: str,
        mode: str = "max",
        budget: int | None = None,
        remote_work: bool = True,
        work_num_cpus: float = 1,
        callbacks: list[Callable[["AskTellSearcher", str], None]] | None = None,
        work_placement_group: Any = None,
        include_pool: bool = False,
        work_placement_group_name: str | None = None,
        extra_result_keys: Sequence[str] | None = None,
        run_id: str | None = None,
        batch_size: int = 1,
        work_num_gpus: float = 0,
        work_device: str | None = None,
        points_to_evaluate: Sequence[dict[str, Any]] | None = None,
        evaluated_rewards: Sequence[float | None] | None = None,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if not metric:
            raise ValueError("metric is required (Tune does not pass it to searchers when param_space is empty)")
        if budget is not None and budget < 1:
            raise ValueError(f"budget must be a positive integer, got {budget!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        super().__init__(metric=metric, mode=mode)
        self.optimizer = optimizer
        self.budget = optimizer.budget if budget is None else int(budget)
        self.remote_work = remote_work
        self.work_num_cpus = work_num_cpus
        self.batch_size = int(batch_size)
        self._live: dict[str, list[str]] = {}    # trial_id -> keys of its architectures
        self.evaluations: list[dict[str, Any]] = []
        self._work_ref: Any = None
        self._work_started: float | None = None
        self.best_value: float | None = None
        # progress hooks (printing, rounds.csv, dashboard metrics): called with (searcher, "trial" | "round")
        self.callbacks = list(callbacks or [])
        self.work_placement_group = work_placement_group
        self.work_placement_group_name = work_placement_group_name
        self.include_pool = include_pool
        self.extra_result_keys = tuple(DEFAULT_EXTRA_RESULT_KEYS if extra_result_keys is None else extra_result_keys)
        self.run_id = run_id
        self.work_num_gpus = 0.0
        self.configure_work(num_cpus=work_num_cpus, num_gpus=work_num_gpus, device=work_device)
        self._warm_start(points_to_evaluate, evaluated_rewards)
        self._register()

    def configure_work(self, *, num_cpus: float | None = None, num_gpus: float | None = None,
                       device: str | None = None) -> None:
        """Resources and device of the heavy work (set again by the runner for a resumed search: the machine is the
        new session's)."""
        if num_cpus is not None:
            self.work_num_cpus = num_cpus
        if num_gpus is not None:
            if num_gpus < 0:
                raise ValueError(f"work_num_gpus must be >= 0, got {num_gpus!r}")
            self.work_num_gpus = float(num_gpus)
        if device is not None:
            self.optimizer.work_device = device

    def _warm_start(self, points: Sequence[dict[str, Any]] | None, rewards: Sequence[float | None] | None) -> None:
        points = list(points or [])
        if rewards is not None and len(list(rewards)) != len(points):
            raise ValueError(f"evaluated_rewards has {len(list(rewards))} values for {len(points)} points_to_evaluate")
        archs = [self._arch_of(p) for p in points]
        if rewards is None:
            self.optimizer.add_first(archs)
        else:
            for arch, value in zip(archs, rewards):
                self._observe(arch, value, error=False)

    def _arch_of(self, parameters: dict[str, Any]) -> Any:
        """An architecture from a trial config ``{"arch": ...}`` or a bare ``space.to_config`` dict."""
        if not isinstance(parameters, dict):
            raise ValueError(f"an architecture config must be a dict, got {type(parameters).__name__}")
        config = parameters.get(ARCH_KEY, parameters)
        try:
            return self.optimizer.space.from_config(config)
        except Exception as exc:  # the space says what is wrong; the caller gets one clear error
            raise ValueError(f"not an architecture of {type(self.optimizer.space).__name__}: {parameters!r} "
                             f"({exc})") from None

    def _observe(self, arch: Any, value: float | None, *, error: bool) -> bool:
        score = None
        if not error and value is not None and not (isinstance(value, float) and math.isnan(value)):
            score = float(value) if self._mode != "min" else -float(value)
        try:
            self.optimizer.observe(arch, score)
        except KeyError as exc:
            logger.warning("known result ignored: %s", exc)
            return False
        return True

    @classmethod
    def restored(cls, run_id: str) -> "AskTellSearcher":
        """The searcher of run ``run_id`` in this process (after ``Tuner.restore``: the copy Tune unpickled)."""
        searcher = cls._by_run_id.get(run_id)
        if searcher is None:
            raise LookupError(f"no searcher with run_id {run_id!r} in this process (was the Tuner restored?)")
        return searcher

    def _register(self) -> None:
        if self.run_id is not None:
            AskTellSearcher._by_run_id[self.run_id] = self

    @property
    def done(self) -> bool:
        """True when the search is over: the budget is spent or the optimizer will propose nothing more."""
        return (self._budget_spent() or self.optimizer.finished) and not self._live

    # -- Tune API ---------------------------------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        # a param_space we cannot honour is refused (Tune then raises its error) rather than passed on unresolved
        clash = sorted(set(config or {}) & set(RESERVED_CONFIG_KEYS))
        if clash:  # Tune would accept the refusal of a constant silently, and the searcher's keys would win
            raise ValueError(f"param_space entries {clash} clash with the keys of AskTellSearcher's trial configs")
        problem = unsupported_param_space(config)
        if problem:
            logger.warning("AskTellSearcher refuses this param_space: %s", problem)
            return False
        # metric/mode from the constructor win; we accept Tune's only when none were given
        if metric and not self._metric:
            self._metric = metric
        if mode and not self._mode:
            self._mode = mode
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return False  # let Tune's ConcurrencyLimiter enforce it

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False, pruned: bool = False,
                            intermediate_values: list[float] | None = None) -> None:
        """A known architecture and its metric value: labelled data for the optimizer, not a query of the budget
        (``error``/``pruned``: a failed evaluation, which only keeps the key from being asked)."""
        self._observe(self._arch_of(parameters), value, error=error or pruned)

    def suggest(self, trial_id: str) -> dict | str | None:
        if self._budget_spent() or self.optimizer.finished:
            return Searcher.FINISHED
        self._poll_work()
        archs = self.optimizer.take_first(self._batch_size(self.optimizer.n_first)) if self.optimizer.n_first else []
        if not archs:
            archs = self.optimizer.ask(self._batch_size())
        if not archs:
            if self.optimizer.finished:
                return Searcher.FINISHED
            if self.optimizer.needs_work():
                self._start_work()
            return None
        space = self.optimizer.space
        items = [{ARCH_KEY: space.to_config(a), "key": space.key(a)} for a in archs]
        self._live[trial_id] = [item["key"] for item in items]
        config = dict(items[0]) if self.batch_size == 1 else {BATCH_KEY: items}
        if self.include_pool:
            config["round"] = int(self.optimizer.round)
            config["pool"] = list(self.optimizer.round_keys())
        return config

    def _batch_size(self, ready: int | None = None) -> int:
        """Architectures for the next trial: one, or for a batching evaluator as many as are already fixed
        (``ready``: that many; default the optimizer's ``n_ready``)."""
        if self.batch_size == 1:
            return 1
        n = max(1, min(self.batch_size, self.optimizer.n_ready() if ready is None else ready))
        return n if self.budget is None else max(1, min(n, self.budget - self.optimizer.n_asked))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        keys = self._live.pop(trial_id, None)
        if keys is None:
            logger.warning("on_trial_complete for unknown trial %s (ignored)", trial_id)
            return
        if isinstance(keys, str):  # a searcher state saved before batching
            keys = [keys]
        results = self._split_results(keys, None if error else result)
        for key, res in zip(keys, results):
            self._record(trial_id, key, res, error)
        self._notify("trial")
        if self.optimizer.needs_work():
            self._start_work()  # start the next round now rather than at the next suggest()

    def _split_results(self, keys: list[str], result: dict | None) -> list[dict | None]:
        """One result per architecture: a batch trial reports ``{BATCH_KEY: [result, ...]}`` in ``keys`` order."""
        if not result:
            return [None] * len(keys)
        if BATCH_KEY not in result:
            return [result] + [None] * (len(keys) - 1)
        parts = [r if isinstance(r, dict) else None for r in list(result[BATCH_KEY])[:len(keys)]]
        return parts + [None] * (len(keys) - len(parts))

    def _record(self, trial_id: str, key: str, result: dict | None, error: bool) -> None:
        """Log one evaluated architecture and tell the optimizer (a missing result counts as failed)."""
        value = None if not result else result.get(self._metric)
        score = None
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            score = float(value) if self._mode == "max" else -float(value)
        arch = self.optimizer.arch_for_key(key)
        record = {"query": len(self.evaluations) + 1, "trial_id": trial_id, "key": key, self._metric: value,
                  "error": bool(error or result is None), "round": self.optimizer.round,
                  "predicted": self.optimizer.predicted_score(arch), "time": time.time()}
        if result:
            record.update({k: v for k, v in result.items() if k in self.extra_result_keys})
        self.evaluations.append(record)
        self.optimizer.tell(arch, score)
        if score is not None and (self.best_value is None or score > self._signed(self.best_value)):
            self.best_value = float(value)

    def _signed(self, value: float) -> float:
        return value if self._mode == "max" else -value

    def _notify(self, event: str) -> None:
        for callback in self.callbacks:
            try:
                callback(self, event)
            except Exception:  # a broken progress hook must not kill the search
                logger.exception("searcher callback %r failed", callback)

    # -- heavy work off the event loop ------------------------------------------------------------------
    def _start_work(self) -> None:
        if self._work_ref is not None:
            return
        work = self.optimizer.make_work()
        self._work_started = time.perf_counter()
        if not self.remote_work:
            self._apply(run_work(work))
            return
        options: dict[str, Any] = {"name": "controller_round", "num_cpus": self.work_num_cpus, "max_retries": 2}
        if getattr(self, "work_num_gpus", 0):  # getattr: a searcher pickled before GPUs were an option
            options["num_gpus"] = self.work_num_gpus
        group = self.work_placement_group
        if group is None and self.work_placement_group_name is not None:
            group = get_placement_group(self.work_placement_group_name)
        if group is not None:
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                group, placement_group_capture_child_tasks=True)
        self._work_ref = _remote_run_work.options(**options).remote(work)

    def _poll_work(self) -> None:
        if self._work_ref is None:
            return
        ready, _ = ray.wait([self._work_ref], timeout=0)
        if ready:
            result = ray.get(self._work_ref)
            self._work_ref = None
            self._apply(result)

    def _apply(self, result: Any) -> None:
        self.optimizer.apply_work(result)
        if self._work_started is not None and self.optimizer.rounds_log:
            self.optimizer.rounds_log[-1]["wall_seconds"] = round(time.perf_counter() - self._work_started, 3)
        self._work_started = None
        self._notify("round")

    def wait_for_work(self, timeout: float | None = None) -> None:
        """Block until a pending remote round has finished and been applied (used by tests and the CLI)."""
        if self._work_ref is None:
            return
        ray.wait([self._work_ref], timeout=timeout)
        self._poll_work()

    # -- helpers ------------------------------------------------------------------------------------------
    def _budget_spent(self) -> bool:
        return self.budget is not None and self.optimizer.n_asked >= self.budget

    @property
    def n_queries(self) -> int:
        """Distinct architectures suggested so far (each is one benchmark query)."""
        return self.optimizer.n_asked

    # -- state ------------------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the searcher (tuner.pkl); object refs and placement groups belong to one Ray session
        state = self.__dict__.copy()
        state.update(_work_ref=None, work_placement_group=None, _work_started=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._register()  # Tuner.restore unpickles this copy: make it findable by run_id

    def get_state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "live": dict(self._live),
            "evaluations": list(self.evaluations),
            "metric": self._metric,
            "mode": self._mode,
            "budget": self.budget,
            "best_value": self.best_value,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self._live = dict(state["live"])
        self.evaluations = list(state["evaluations"])
        self._metric, self._mode, self.budget = state["metric"], state["mode"], state["budget"]
        self.best_value = state.get("best_value")
        self._work_ref = None  # a round in flight is recomputed (deterministically) on the next suggest()

    def save(self, checkpoint_path: str) -> None:
        save_state(checkpoint_path, self.get_state())

    def restore(self, checkpoint_path: str) -> None:
        self.set_state(load_state(checkpoint_path))


RESERVED_CONFIG_KEYS = (ARCH_KEY, "key", BATCH_KEY, "round", "pool")


def unsupported_param_space(config: Any, prefix: str = "") -> str | None:
    """Why ``config`` (a Tune ``param_space``) cannot go with this searcher, or ``None``: constants pass through to
    the trainable; a search-space entry (a ``Domain`` such as ``tune.loguniform``, or ``tune.grid_search``) would
    reach it unresolved."""
    if not isinstance(config, dict):
        return None
    for name, value in config.items():
        where = f"{prefix}{name}"
        if isinstance(value, Domain) or (isinstance(value, dict) and set(value) == {"grid_search"}):
            return (f"{where!r} is a search-space entry; AskTellSearcher searches architectures only (give constants "
                    f"in param_space, or tune hyper-parameters with another searcher)")
        problem = unsupported_param_space(value, f"{where}/")
        if problem:
            return problem
    return None


class SemiNASSearcher(AskTellSearcher):
    """The SemiNAS searcher: ``AskTellSearcher`` over a ``SemiNAS`` optimizer built from a space and a config.

    Example::

        searcher = SemiNASSearcher(space, config=build_config("paper-300"), metric="val_acc", mode="max", seed=0)
        tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1,
                                                                  max_concurrent_trials=2, reuse_actors=True))
    """

    def __init__(self, space: Any, *, config: SemiNASConfig | None = None, seed: int = 0, metric: str,
                 mode: str = "max", pseudo_labeler: Any = None, **kwargs: Any) -> None:
        optimizer = make_method("seminas", space, seed, config, pseudo_labeler=pseudo_labeler)
        super().__init__(optimizer, metric=metric, mode=mode, **kwargs)
