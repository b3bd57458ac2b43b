"""The Tune trainable of the NAS-Bench task: one trial = a batch of table lookups.

A lookup takes microseconds and a Tune trial about a tenth of a second, so the searcher hands each trial the
architectures that are already fixed (the rest of a round) and the trial reports one result per architecture
(``{"batch": [...]}``); the evaluation log still has one row per architecture.

Kept apart from ``nasbench.py`` so trial actors import only numpy-level code (no torch): each actor then costs
~150 MB instead of ~850 MB (an import-linter contract checks it).
"""
from __future__ import annotations

import time
from typing import Any

from ray import tune

from seminas_ray.benchmarks.oracle import evaluate

METRIC = "search_value"
BATCH_KEY = "batch"   # the searcher's batch trial format (seminas_ray.distributed.searcher.BATCH_KEY)


def lookup(table: Any, arch_config: dict[str, Any], seed: int) -> dict[str, Any]:
    """One architecture's table entry (the repeat is a deterministic function of seed and key)."""
    t0 = time.perf_counter()
    space = table.space
    key = space.key(space.from_config(arch_config))
    result = evaluate(table, key, seed)
    return {"key": key, METRIC: result.search_value, "test_metric": result.test_value, "repeat": result.repeat,
            "in_benchmark": result.in_benchmark, "eval_seconds": time.perf_counter() - t0}


def nasbench_trainable(config: dict[str, Any], table: Any = None, seed: int = 0) -> None:
    """Look up ``config["arch"]``, or every architecture of ``config["batch"]``, and report the values."""
    if BATCH_KEY not in config:
        tune.report(lookup(table, config["arch"], seed))
        return
    results = [lookup(table, item["arch"], seed) for item in config[BATCH_KEY]]
    values = [r[METRIC] for r in results if r[METRIC] is not None]
    tune.report({BATCH_KEY: results, METRIC: max(values) if values else None, "n_archs": len(results)})
