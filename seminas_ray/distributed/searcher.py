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
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if not metric:
            raise ValueError("metric is required (Tune does not pass it to searchers when param_space is empty)")
        if budget is not None and budget < 1:
            raise ValueError(f"budget must be a positive integer, got {budget!r}")
        super().__init__(metric=metric, mode=mode)
        self.optimizer = optimizer
        self.budget = optimizer.budget if budget is None else int(budget)
        self.remote_work = remote_work
        self.work_num_cpus = work_num_cpus
        self._live: dict[str, str] = {}          # trial_id -> key
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
        self._register()

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
        return self._budget_spent() or self.optimizer.finished

    # -- Tune API ---------------------------------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        # metric/mode from the constructor win; we accept Tune's only when none were given
        if metric and not self._metric:
            self._metric = metric
        if mode and not self._mode:
            self._mode = mode
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return False  # let Tune's ConcurrencyLimiter enforce it

    def suggest(self, trial_id: str) -> dict | str | None:
        if self._budget_spent() or self.optimizer.finished:
            return Searcher.FINISHED
        self._poll_work()
        archs = self.optimizer.ask(1)
        if not archs:
            if self.optimizer.finished:
                return Searcher.FINISHED
            if self.optimizer.needs_work():
                self._start_work()
            return None
        arch = archs[0]
        space = self.optimizer.space
        key = space.key(arch)
        self._live[trial_id] = key
        config = {ARCH_KEY: space.to_config(arch), "key": key}
        if self.include_pool:
            config["round"] = int(self.optimizer.round)
            config["pool"] = list(self.optimizer.round_keys())
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        key = self._live.pop(trial_id, None)
        if key is None:
            logger.warning("on_trial_complete for unknown trial %s (ignored)", trial_id)
            return
        value = None if (error or not result) else result.get(self._metric)
        score = None
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            score = float(value) if self._mode == "max" else -float(value)
        arch = self.optimizer.arch_for_key(key)
        record = {"query": len(self.evaluations) + 1, "trial_id": trial_id, "key": key, self._metric: value,
                  "error": bool(error), "round": self.optimizer.round,
                  "predicted": self.optimizer.predicted_score(arch), "time": time.time()}
        if result:
            record.update({k: v for k, v in result.items() if k in self.extra_result_keys})
        self.evaluations.append(record)
        self.optimizer.tell(arch, score)
        if score is not None and (self.best_value is None or score > self._signed(self.best_value)):
            self.best_value = float(value)
        self._notify("trial")
        if self.optimizer.needs_work():
            self._start_work()  # start the next round now rather than at the next suggest()

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
