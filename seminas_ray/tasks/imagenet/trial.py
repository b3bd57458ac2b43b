"""The Tune trainable of the ImageNet task's search: one trial = the supernet score of one architecture.

Kept apart from ``task.py`` so trial processes import no torch: a trial only asks the named coordinator actor for
its score (the coordinator trains the supernet on the round's pool on the first call of a round).
"""
from __future__ import annotations

import time
from typing import Any

import ray
from ray import tune

METRIC = "top1"
COORDINATOR = "imagenet-supernet-coordinator"
RESULT_KEYS = ("valid_loss", "supernet_round", "supernet_steps", "eval_seconds")


def imagenet_trainable(config: dict[str, Any], coordinator: str = COORDINATOR) -> None:
    """Score one architecture of the round's pool on the shared weights (validation top-1) and report it."""
    t0 = time.perf_counter()
    actor = ray.get_actor(coordinator)
    result = ray.get(actor.score.remote(int(config["round"]), list(config["pool"]), config["key"]))
    tune.report({METRIC: float(result[METRIC]), "valid_loss": float(result.get("loss", float("nan"))),
                 "supernet_round": int(result.get("round", config["round"])),
                 "supernet_steps": int(result.get("train_steps", 0)),
                 "eval_seconds": time.perf_counter() - t0})


__all__ = ["COORDINATOR", "METRIC", "RESULT_KEYS", "imagenet_trainable"]
