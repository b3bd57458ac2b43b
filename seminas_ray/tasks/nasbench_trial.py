"""The Tune trainable of the NAS-Bench task: one trial = one table lookup.

Kept apart from ``nasbench.py`` so trial actors import only numpy-level code (no torch): each actor then costs
~150 MB instead of ~850 MB.
"""
from __future__ import annotations

import time
from typing import Any

from seminas_ray.benchmarks.oracle import evaluate

METRIC = "search_value"


def nasbench_trainable(config: dict[str, Any], table: Any = None, seed: int = 0) -> None:
    """Look up ``config["arch"]`` (the repeat is a deterministic function of seed and key) and report it."""
    from ray import tune

    t0 = time.perf_counter()
    space = table.space
    key = space.key(space.from_config(config["arch"]))
    result = evaluate(table, key, seed)
    tune.report({METRIC: result.search_value, "test_metric": result.test_value, "repeat": result.repeat,
                 "in_benchmark": result.in_benchmark, "eval_seconds": time.perf_counter() - t0})
