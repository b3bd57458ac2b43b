"""The ask/tell interface shared by SemiNAS and its baselines (no Ray, no Tune).

An optimizer proposes architectures with ``ask`` and learns their scores with ``tell``. Scores are "higher is
better" (the Tune adapter negates for ``mode="min"``). ``tell(arch, None)`` records a failed evaluation. Every
optimizer deduplicates by the space's ``key`` and never asks for the same key twice, so a budget of ``Q`` asks is
``Q`` distinct queries.

``ask`` may return fewer architectures than requested, or none: SemiNAS returns ``[]`` at a round boundary until
every architecture of the round has been told and the controller has produced the next round. Whether that
controller work runs inline (``needs_work`` + ``do_work``) or elsewhere (``make_work`` / ``apply_work``, which the
Ray searcher runs as a remote task) is the caller's choice; both give identical results.

Every caller sees the same surface, whatever the optimizer: ``budget`` (the optimizer is the one owner of the query
budget: ``ask`` never goes past it and ``finished`` is true once it is spent), ``round`` and ``rounds_log`` (0 and
``[]`` for optimizers without rounds), ``predicted_score`` (``None`` without a predictor) and ``arch_for_key``.

Warm starts (Tune's ``points_to_evaluate`` and ``evaluated_rewards``), both unused by default:

- ``add_first(archs)`` + ``take_first(n)``: architectures the caller wants evaluated before the optimizer's own
  proposals. ``take_first`` asks them (they are queries of the budget, told like any other).
- ``observe(arch, score)``: labelled data the optimizer did not ask for (a known architecture and its score). It is
  not a query: it does not count against the budget, and its key is never asked. By default it is only recorded;
  SemiNAS adds it to its labelled set.
"""
from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from typing import Any
from typing import Generic

from seminas_ray.spaces.base import Arch
from seminas_ray.spaces.base import SearchSpace


class AskTellOptimizer(ABC, Generic[Arch]):
    """Base class: bookkeeping of asked/told keys; subclasses decide what to propose."""

    name: str = "optimizer"
    # where heavy work (a controller round) trains: None = the process's default (cuda when visible, else cpu).
    # Set by the caller that places the work (the Ray searcher: --controller-device); not part of the state.
    work_device: str | None = None

    def __init__(self, space: SearchSpace[Arch], seed: int = 0, budget: int | None = None) -> None:
        self.space = space
        self.seed = int(seed)
        self._budget = check_budget(budget)
        # round-based optimizers (SemiNAS) count rounds here: 0 = the seed round, k = the k-th generated round;
        # optimizers without rounds (random, evolution) stay at 0 and keep an empty log
        self.round: int = 0
        self.rounds_log: list[dict[str, Any]] = []  # one dict of statistics per completed round of heavy work
        self._asked: dict[str, Arch] = {}          # key -> arch, in ask order (dicts keep insertion order)
        self._told: dict[str, float | None] = {}   # key -> score (None = failed)
        self._first: list[Arch] = []               # add_first: to ask before the optimizer's own proposals
        self._observed: dict[str, tuple[Arch, float | None]] = {}  # observe: key -> (arch, score), not queries

    # -- public interface --------------------------------------------------------------------------------
    @abstractmethod
    def ask(self, n: int = 1) -> list[Arch]:
        """Up to ``n`` new architectures to evaluate (possibly fewer, possibly none)."""

    def tell(self, arch: Arch, score: float | None) -> None:
        """Record the score of an architecture this optimizer asked for."""
        key = self.space.key(arch)
        if key not in self._asked:
            raise KeyError(f"tell() for an architecture that was never asked: {key}")
        if key in self._told:
            raise KeyError(f"tell() twice for the same architecture: {key}")
        self._told[key] = None if score is None else float(score)
        self._on_tell(key, arch, self._told[key])

    def add_first(self, archs: list[Arch]) -> None:
        """Queue ``archs`` to be asked (by :meth:`take_first`) before the optimizer's own proposals."""
        self._first.extend(archs)

    def take_first(self, n: int = 1) -> list[Arch]:
        """Up to ``n`` of the queued :meth:`add_first` architectures, now asked (counted as queries; a key already
        asked or observed, or one past the budget, is dropped)."""
        out: list[Arch] = []
        room = self._room(n)
        while self._first and len(out) < room:
            arch = self._first.pop(0)
            if self._register(arch):
                out.append(arch)
                self._on_given(self.space.key(arch), arch)
        if self._room(1) == 0:
            self._first.clear()
        return out

    @property
    def n_first(self) -> int:
        """Queued :meth:`add_first` architectures not asked yet."""
        return len(self._first)

    def observe(self, arch: Arch, score: float | None) -> None:
        """Labelled data this optimizer did not ask for: not a query of the budget; the key is never asked."""
        key = self.space.key(arch)
        if key in self._asked or key in self._observed:
            raise KeyError(f"observe() for an architecture already asked or observed: {key}")
        self._observed[key] = (arch, None if score is None else float(score))
        self._on_observe(key, arch, self._observed[key][1])

    @property
    def n_observed(self) -> int:
        return len(self._observed)

    @property
    def budget(self) -> int | None:
        """Queries this optimizer will ask for at most (``None``: unbounded); read-only, fixed at construction."""
        return self._budget

    @property
    def finished(self) -> bool:
        """True when the optimizer will never propose anything again (by default: once the budget is spent)."""
        return self.budget is not None and self.n_asked >= self.budget

    def n_ready(self) -> int:
        """How many of the next asks are already fixed: no result still to come can change them.

        An evaluator that is cheap per architecture (a table lookup) may take that many in one trial without
        changing the search. The default, 0, means every ask may depend on the results still pending.
        """
        return 0

    def predicted_score(self, arch: Arch) -> float | None:
        """The optimizer's own prediction for ``arch`` when it proposed it (``None``: it has no predictor)."""
        return None

    def arch_for_key(self, key: str) -> Arch:
        """The architecture this optimizer asked for under ``key`` (``KeyError`` if it never did)."""
        try:
            return self._asked[key]
        except KeyError:
            raise KeyError(f"no architecture with key {key!r} was asked") from None

    def needs_work(self) -> bool:
        """True when ``ask`` is blocked on heavy work (controller training) that ``do_work`` would perform."""
        return False

    def do_work(self) -> None:
        """Perform the pending heavy work inline."""
        if self.needs_work():
            self.apply_work(run_work(self.make_work()))

    def make_work(self) -> Any:
        """A self-contained, picklable description of the pending heavy work (see ``run_work``)."""
        raise NotImplementedError(f"{type(self).__name__} has no heavy work")

    def apply_work(self, result: Any) -> None:
        """Install the result of ``run_work(make_work())``."""
        raise NotImplementedError(f"{type(self).__name__} has no heavy work")

    @property
    def n_asked(self) -> int:
        return len(self._asked)

    @property
    def n_told(self) -> int:
        return len(self._told)

    def round_keys(self) -> list[str]:
        """Keys of the architectures proposed together with the latest ones (one round of a round-based optimizer;
        for asynchronous optimizers, everything asked so far)."""
        return list(self._asked)

    def pending_keys(self) -> list[str]:
        """Keys asked but not yet told."""
        return [k for k in self._asked if k not in self._told]

    # -- state ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (numpy arrays allowed at any depth; see ``seminas_ray.utils.state_io``)."""
        state = {
            "name": self.name,
            "seed": self.seed,
            "budget": self.budget,
            "asked": [self.space.to_config(a) for a in self._asked.values()],
            "told": [[k, v] for k, v in self._told.items()],
        }
        if self._first:  # warm starts: only when used, so the state of a plain run is unchanged
            state["first"] = [self.space.to_config(a) for a in self._first]
        if self._observed:
            state["observed"] = [[self.space.to_config(a), v] for a, v in self._observed.values()]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"state is for optimizer {state.get('name')!r}, not {self.name!r}")
        self.seed = int(state["seed"])
        self._budget = check_budget(state.get("budget", self._budget))
        self._asked = {}
        for cfg in state["asked"]:
            arch = self.space.from_config(cfg)
            self._asked[self.space.key(arch)] = arch
        self._told = {k: (None if v is None else float(v)) for k, v in state["told"]}
        self._first = [self.space.from_config(c) for c in state.get("first", [])]
        self._observed = {}
        for cfg, v in state.get("observed", []):
            arch = self.space.from_config(cfg)
            self._observed[self.space.key(arch)] = (arch, None if v is None else float(v))

    # -- helpers for subclasses -------------------------------------------------------------------------
    def _on_tell(self, key: str, arch: Arch, score: float | None) -> None:
        """Hook for subclasses."""

    def _on_given(self, key: str, arch: Arch) -> None:
        """Hook for subclasses: ``take_first`` just asked ``arch`` (an architecture the optimizer did not propose)."""

    def _on_observe(self, key: str, arch: Arch, score: float | None) -> None:
        """Hook for subclasses: labelled data from :meth:`observe`."""

    def _register(self, arch: Arch) -> bool:
        """Mark ``arch`` as asked; False when its key was asked or observed before (so the caller must not propose
        it)."""
        key = self.space.key(arch)
        if key in self._asked or key in self._observed:
            return False
        self._asked[key] = arch
        return True

    def _is_new(self, key: str) -> bool:
        return key not in self._asked and key not in self._observed

    def _room(self, n: int) -> int:
        """How many of ``n`` requested architectures the budget still allows."""
        return n if self.budget is None else max(0, min(n, self.budget - self.n_asked))


def check_budget(budget: int | None) -> int | None:
    """``budget`` as an int (``None`` = unbounded); a clear error for anything below one query."""
    if budget is None:
        return None
    if isinstance(budget, bool) or int(budget) != budget or budget < 1:
        raise ValueError(f"budget must be a positive integer or None, got {budget!r}")
    return int(budget)


def run_work(work: Any) -> Any:
    """Execute a work item produced by ``AskTellOptimizer.make_work`` (a callable with no arguments)."""
    return work()
