"""The direct ask/tell loop against a tabular benchmark: no Ray, no Tune.

Benchmarks and tests run optimizers this way (a table lookup per query, controller rounds inline); the Tune path
evaluates in worker processes and rebuilds the same counting oracle afterwards with :func:`replay`.
"""
from __future__ import annotations

from typing import Any
from typing import Callable

from seminas_ray.algorithm.base import AskTellOptimizer
from seminas_ray.benchmarks.oracle import Oracle
from seminas_ray.benchmarks.tables import Table
from seminas_ray.spaces.base import SearchSpace


def search_space(table: Table) -> SearchSpace:
    """The space to search ``table`` in: a subset table only within its members, so every proposal is answered."""
    return table.restricted_space() if table.is_subset else table.space


def ask_tell_loop(optimizer: AskTellOptimizer, evaluate: Callable[[Any], float | None], *, batch: int = 1,
                  limit: int | None = None) -> int:
    """Ask ``batch`` architectures at a time, tell each ``evaluate(arch)``, run controller rounds inline, until the
    optimizer is finished, stalls, or ``limit`` architectures were evaluated. Returns how many were evaluated."""
    done = 0
    while (limit is None or done < limit) and not optimizer.finished:
        archs = optimizer.ask(batch if limit is None else min(batch, limit - done))
        if not archs:
            if optimizer.needs_work():
                optimizer.do_work()
                continue
            break
        for arch in archs:
            optimizer.tell(arch, evaluate(arch))
            done += 1
    return done


def run_direct(table: Table, optimizer: AskTellOptimizer, budget: int | None = None, seed: int = 0,
               batch: int = 1) -> Oracle:
    """Run ``optimizer`` against ``table`` inline; returns the counting oracle (log, counts, report).

    ``budget`` defaults to the optimizer's own; ``seed`` picks the oracle's repeat per architecture; ``batch``
    architectures are asked at a time (1 = the sequential loop every golden log was made with).
    """
    budget = optimizer.budget if budget is None else int(budget)
    if budget is None:
        raise ValueError(f"{type(optimizer).__name__} has no budget: pass budget= to run_direct")
    oracle = Oracle(table, budget=budget, seed=seed)
    ask_tell_loop(optimizer, lambda arch: oracle.query(arch).search_value, batch=batch, limit=budget)
    return oracle


def replay(table: Table, keys: list[str], budget: int | None, seed: int) -> Oracle:
    """Rebuild the counting oracle from an evaluation log (the Tune path evaluates in worker processes)."""
    oracle = Oracle(table, budget=budget, seed=seed)
    for key in keys:
        oracle.query_key(key)
    return oracle
