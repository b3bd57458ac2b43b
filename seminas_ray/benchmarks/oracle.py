"""The counting oracle: answers architecture queries from a benchmark table and counts every one.

Accounting rules (the original SemiNAS code hid queries in its seed filter and deduplicated by raw token
sequence, so isomorphic or unpruned duplicates were paid twice; these rules fix both):

- Every answered query is counted in ``n_queries``, including ones an algorithm then throws away (the paper's
  >= 0.90 seed filter), cached re-queries and queries outside a subset table.
- Queries are deduplicated by the space's canonical ``key`` (the NB101 isomorphism hash of the pruned cell, the
  NB201 cell string): a key already answered returns the cached :class:`Evaluation` (``cached=True``) and costs
  no budget. The budget counts distinct keys answered from the table (``n_evaluated``).
- A valid architecture that a SUBSET table does not contain is answered with ``in_benchmark=False`` and
  ``search_value=None``: never an error and never a made-up score. It is counted in ``n_not_in_benchmark`` and
  consumes no budget, because it returned no information: the gap is in our data, not a training run the search
  paid for (on the complete benchmark the same query would have had an answer). Searches on a subset table should
  propose members only (``Table.restricted_space()``); the counter makes any leak visible in the report.
- An invalid architecture raises ``InvalidArchitecture`` and is not a query (as in the NB101 API, whose ``query``
  rejects out-of-domain specs before touching its budget); such attempts are counted in ``n_invalid``.
- A NEW key that would exceed the budget raises ``BudgetExhausted`` and is not answered (``n_refused``).
- On tables with several training repeats each key is answered with ONE repeat, chosen by
  :func:`repeat_index` from a hash of (seed, key): deterministic given (seed, key) and independent of query
  order, so evaluations in Tune worker processes (:func:`evaluate`) agree with direct queries.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import replace
from typing import Any

from seminas_ray.benchmarks.tables import Table
from seminas_ray.spaces.base import InvalidArchitecture

STATE_VERSION = 1


class BudgetExhausted(RuntimeError):
    """A query for a new architecture would exceed the oracle's budget."""


@dataclass(frozen=True)
class Evaluation:
    """The answer to one query.

    ``search_value`` is the search metric of the chosen repeat (``None`` outside the benchmark); ``test_value``
    is the mean test metric over repeats (``None`` where the table has none); ``repeat`` is the repeat used;
    ``query_index`` is the 1-based position of this query among all answered queries of its oracle (0 for a
    stateless :func:`evaluate`).
    """

    key: str
    search_value: float | None
    test_value: float | None
    repeat: int | None
    cached: bool
    in_benchmark: bool
    query_index: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        return cls(
            key=str(data["key"]),
            search_value=None if data.get("search_value") is None else float(data["search_value"]),
            test_value=None if data.get("test_value") is None else float(data["test_value"]),
            repeat=None if data.get("repeat") is None else int(data["repeat"]),
            cached=bool(data.get("cached", False)),
            in_benchmark=bool(data.get("in_benchmark", True)),
            query_index=int(data.get("query_index", 0)),
        )


def repeat_index(seed: int, key: str, repeats: list[int] | int) -> int:
    """The repeat answered for ``key`` under ``seed``: a stable hash of both, so it is order-independent.

    ``repeats`` is the candidate repeat list (or a count ``R`` meaning ``0..R-1``).
    """
    candidates = list(range(repeats)) if isinstance(repeats, int) else list(repeats)
    if not candidates:
        raise ValueError(f"no repeat to choose from for {key!r}")
    if len(candidates) == 1:
        return candidates[0]
    digest = hashlib.blake2b(f"{int(seed)}\x1f{key}".encode(), digest_size=8).digest()
    return candidates[int.from_bytes(digest, "little") % len(candidates)]


def evaluate(table: Table, key: str, seed: int, *, query_index: int = 0) -> Evaluation:
    """Stateless lookup with the oracle's repeat rule (for Tune trainables in worker processes).

    ``key`` is a canonical key of ``table.space``. Counting and budget are the driver-side :class:`Oracle`'s job.
    """
    if key not in table:
        return Evaluation(key, None, None, None, cached=False, in_benchmark=False, query_index=query_index)
    repeats = table.valid_repeats(key)
    if not repeats:  # a row without any finite value answers like a missing one, never with NaN
        return Evaluation(key, None, None, None, cached=False, in_benchmark=False, query_index=query_index)
    rep = repeat_index(seed, key, repeats)
    return Evaluation(
        key=key,
        search_value=table.search_value(key, rep),
        test_value=table.test_value_mean(key),
        repeat=rep,
        cached=False,
        in_benchmark=True,
        query_index=query_index,
    )


class Oracle:
    """A budgeted, counting query interface to one table (see the module docstring for the rules).

    Args:
        table: the benchmark table.
        budget: maximum number of distinct in-benchmark keys to answer, or ``None`` for no limit.
        seed: selects the training repeat answered per key (see :func:`repeat_index`).
    """

    def __init__(self, table: Table, *, budget: int | None = None, seed: int = 0) -> None:
        if budget is not None and int(budget) < 0:
            raise ValueError(f"budget must be >= 0 or None, got {budget}")
        self.table = table
        self.budget = None if budget is None else int(budget)
        self.seed = int(seed)
        self._reset()

    def _reset(self) -> None:
        self._cache: dict[str, Evaluation] = {}
        self._log: list[dict[str, Any]] = []
        self._best: Evaluation | None = None
        self.n_queries = 0
        self.n_evaluated = 0
        self.n_cached = 0
        self.n_not_in_benchmark = 0
        self.n_invalid = 0
        self.n_refused = 0

    # -- querying -------------------------------------------------------------------------------------------
    @property
    def remaining(self) -> int | None:
        """Budget left for new keys (``None`` when unlimited)."""
        return None if self.budget is None else max(0, self.budget - self.n_evaluated)

    def key_of(self, arch: Any) -> str:
        """Canonical key of ``arch`` in the table's (complete) space; ``InvalidArchitecture`` when invalid."""
        space = self.table.space
        try:
            valid = space.is_valid(arch)
        except (InvalidArchitecture, TypeError, ValueError):
            valid = False
        if not valid:
            self.n_invalid += 1
            raise InvalidArchitecture(f"not a valid {space.name} architecture: {arch!r}")
        return space.key(arch)

    def query(self, arch: Any) -> Evaluation:
        """Answer one architecture; counts it, dedupes by key, enforces the budget."""
        return self.query_key(self.key_of(arch))

    def query_key(self, key: str) -> Evaluation:
        """Answer an already-canonical key (e.g. one computed in a worker); same accounting as :meth:`query`."""
        known = self._cache.get(key)
        if known is not None:
            self.n_queries += 1
            self.n_cached += 1
            result = replace(known, cached=True, query_index=self.n_queries)
            self._append_log(result)
            return result
        in_table = key in self.table
        if in_table and self.budget is not None and self.n_evaluated >= self.budget:
            self.n_refused += 1
            raise BudgetExhausted(
                f"budget of {self.budget} evaluations is spent ({self.n_queries} queries answered); "
                f"{key!r} was not evaluated"
            )
        self.n_queries += 1
        result = evaluate(self.table, key, self.seed, query_index=self.n_queries)
        if result.in_benchmark:
            self.n_evaluated += 1
            if self._best is None or result.search_value > self._best.search_value:  # type: ignore[operator]
                self._best = result
        else:
            self.n_not_in_benchmark += 1
        self._cache[key] = result
        self._append_log(result)
        return result

    def _append_log(self, result: Evaluation) -> None:
        entry = result.to_dict()
        entry["n_evaluated"] = self.n_evaluated
        self._log.append(entry)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` has been answered already (re-querying it would be free)."""
        return isinstance(key, str) and key in self._cache

    # -- results --------------------------------------------------------------------------------------------
    @property
    def log(self) -> list[dict[str, Any]]:
        """Every answered query in order: the :class:`Evaluation` fields plus ``n_evaluated`` after it."""
        return [dict(e) for e in self._log]

    def evaluations(self) -> list[Evaluation]:
        """The distinct keys answered, in first-query order (cached repeats left out)."""
        return list(self._cache.values())

    def best_so_far(self) -> Evaluation | None:
        """The in-benchmark evaluation with the highest search value (earliest on ties), or ``None``."""
        return self._best

    def report(self) -> dict[str, Any]:
        """A JSON-able summary: counts, the best found by the search metric, its rank and regrets."""
        table = self.table
        table_key, table_search, table_test = table.best()
        out: dict[str, Any] = {
            "table": table.name,
            "n_table": len(table),
            "units": table.units,
            "search_metric": table.search_metric,
            "test_metric": table.test_metric,
            "seed": self.seed,
            "budget": self.budget,
            "remaining": self.remaining,
            "n_queries": self.n_queries,
            "n_evaluated": self.n_evaluated,
            "n_cached": self.n_cached,
            "n_not_in_benchmark": self.n_not_in_benchmark,
            "n_invalid": self.n_invalid,
            "n_refused": self.n_refused,
            "table_best_key": table_key,
            "table_best_search": table_search,
            "table_best_test": table_test,
        }
        if table.test_metric is not None:
            test_key, _, test_value = table.best(by="test")
            out["table_best_test_key"] = test_key
            out["table_best_test_value"] = test_value
        best = self._best
        if best is None:
            out.update(best_key=None, best_search_value=None, best_test_value=None, rank=None, rank_text=None)
            return out
        rank = table.rank(best.key)
        mean_search = table.search_value_mean(best.key)
        out.update(
            best_key=best.key,
            best_query_index=best.query_index,
            best_search_value=best.search_value,  # the repeat the search saw
            best_search_mean=mean_search,
            best_test_value=best.test_value,
            best_arch=table.space.describe(table.arch(best.key)),
            rank=rank,
            top_percent=100.0 * rank / len(table),
            rank_text=f"rank {rank:,} of {len(table):,}, top {_percent(100.0 * rank / len(table))}%",
            regret_search=table.regret(mean_search, "search"),
            regret_test=None
            if best.test_value is None or table.test_metric is None
            else table.regret(best.test_value, "test"),
        )
        return out

    # -- resume ---------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (the query log is enough to rebuild cache, counters and best)."""
        return {
            "version": STATE_VERSION,
            "table": self.table.name,
            "n_table": len(self.table),
            "budget": self.budget,
            "seed": self.seed,
            "log": self.log,
            "n_invalid": self.n_invalid,
            "n_refused": self.n_refused,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; refuses a state recorded on another table or seed."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"oracle state version {state.get('version')!r} is not {STATE_VERSION}")
        if state.get("table") != self.table.name or state.get("n_table") != len(self.table):
            raise ValueError(
                f"oracle state is for table {state.get('table')!r} ({state.get('n_table')} rows), "
                f"not {self.table.name!r} ({len(self.table)} rows)"
            )
        if int(state.get("seed", -1)) != self.seed:
            raise ValueError(f"oracle state was recorded with seed {state.get('seed')}, this oracle has {self.seed}")
        self._reset()
        self.budget = None if state.get("budget") is None else int(state["budget"])
        for entry in state.get("log", []):
            ev = Evaluation.from_dict(entry)
            self.n_queries += 1
            if ev.cached:
                self.n_cached += 1
            else:
                self._cache[ev.key] = ev
                if ev.in_benchmark:
                    self.n_evaluated += 1
                    if self._best is None or ev.search_value > self._best.search_value:  # type: ignore[operator]
                        self._best = ev
                else:
                    self.n_not_in_benchmark += 1
            self._append_log(ev)
        self.n_invalid = int(state.get("n_invalid", 0))
        self.n_refused = int(state.get("n_refused", 0))


def _percent(value: float) -> str:
    """0.06 -> "0.06"; small shares keep two significant digits (0.005, 0.00024)."""
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"
