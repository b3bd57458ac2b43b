"""The Tune trainable of the TTS task: one trial = the supernet score of one architecture.

Kept apart from ``task.py`` so trial processes import no torch and no TTS stack: a trial only asks the named
``supernet-coordinator`` actor for its score (the coordinator trains on the round's pool on the first call).
"""
from __future__ import annotations

import time
from typing import Any

import ray
from ray import tune

METRIC = "dfr"  # the transformer-tts reward; the fastspeech backbone's is "valid_loss" (backbones.py)
COORDINATOR = "supernet-coordinator"
#: per backbone, the score keys reported beside the reward (the coordinator's score dict names them the same,
#: except transformer-tts's validation ``loss``, reported as ``valid_loss``)
SCORE_KEYS = {"transformer-tts": ("fr", "valid_loss"), "fastspeech": ("valid_mel", "valid_post", "valid_duration")}
ROUND_KEYS = ("supernet_round", "supernet_steps", "eval_seconds")
RESULT_KEYS = SCORE_KEYS["transformer-tts"] + ROUND_KEYS


def result_keys(backbone: str) -> tuple[str, ...]:
    """The keys a trial of ``backbone`` reports besides its reward."""
    return SCORE_KEYS[backbone] + ROUND_KEYS


def tts_trainable(config: dict[str, Any], coordinator: str = COORDINATOR, metric: str = METRIC,
                  backbone: str = "transformer-tts") -> None:
    """Score one architecture of the round's pool on the shared weights and report it."""
    t0 = time.perf_counter()
    actor = ray.get_actor(coordinator)
    result = ray.get(actor.score.remote(int(config["round"]), list(config["pool"]), config["key"]))
    report: dict[str, Any] = {metric: float(result[metric])}
    for key in SCORE_KEYS[backbone]:
        source = "loss" if (backbone, key) == ("transformer-tts", "valid_loss") else key
        report[key] = float(result.get(source, float("nan")))
    report.update(supernet_round=int(result.get("round", config["round"])),
                  supernet_steps=int(result.get("train_steps", 0)), eval_seconds=time.perf_counter() - t0)
    tune.report(report)
