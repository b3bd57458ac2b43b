"""The final stage: train chosen architectures from scratch as Ray Tune trials under ASHA, measure CPU latency.

Which architectures (``choose_candidates``): the top-K of the search by the final supernet score, a
MobileNetV2-style baseline (every layer k3e6; skips chosen greedily, most expensive layer first, until it fits the
budget) and K random architectures under the same budget (the best of them by validation top-1 is the "random"
baseline). Every one is the *final* network (the wider widths of ``net="final"``) at the run's geometry, and
every one is within the FLOPs budget.

Each Tune trial trains one network (SGD Nesterov, cosine per step, label smoothing, dropout, the spec's
augmentations) and reports after every epoch its validation top-1 (the held-out split: ASHA's metric and the
selection metric) and its test top-1/top-5 (reported, never used to choose). ASHA (``grace_epochs``, reduction 2)
stops the weak ones early. Latency: batch 1 on one CPU thread, median of ``latency_runs`` timed forward passes.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
import torch.nn.functional as F
from ray import tune
from ray.tune.logger import CSVLoggerCallback
from ray.tune.logger import JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler

from seminas_ray.distributed.runner import trial_name
from seminas_ray.spaces.mbconv import ALL_K3E6
from seminas_ray.spaces.mbconv import STAGE_STARTS
from seminas_ray.spaces.mbconv import MBConvArch
from seminas_ray.spaces.mbconv import MBConvSpace
from seminas_ray.tasks.imagenet.data import ImageData
from seminas_ray.tasks.imagenet.data import ImageSource
from seminas_ray.tasks.imagenet.geometry import ImageGeometry
from seminas_ray.tasks.imagenet.mbconv_net import build_network
from seminas_ray.tasks.imagenet.presets import ImageNetPreset
from seminas_ray.tasks.imagenet.supernet_backend import no_decay_groups
from seminas_ray.tasks.imagenet.supernet_backend import to_tensor
from seminas_ray.utils.progress import progress_bar

FINAL_TUNE_DIR = "final_tune"
K3E3, SKIP_TOKEN = 1, 7


# ------------------------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------------------------
def mobilenet_baseline(space: MBConvSpace) -> MBConvArch:
    """All k3e6 (MobileNetV2's block); while over budget, skip the most expensive skippable layer (then turn the
    most expensive stage start into k3e3). ``ValueError`` if even that cannot fit."""
    tokens = list(ALL_K3E6.tokens)
    while not space.within_budget(MBConvArch(tuple(tokens))):
        skippable = [p for p in range(len(tokens)) if p not in STAGE_STARTS and tokens[p] != SKIP_TOKEN]
        starts = [p for p in STAGE_STARTS if tokens[p] != K3E3]
        if skippable:
            pos = max(skippable, key=lambda p: (space.flops_table[p, tokens[p]], p))
            tokens[pos] = SKIP_TOKEN
        elif starts:
            pos = max(starts, key=lambda p: (space.flops_table[p, tokens[p]], p))
            tokens[pos] = K3E3
        else:
            raise ValueError(f"no MobileNetV2-style network fits the FLOPs budget {space.flops_budget:,}")
    return MBConvArch(tuple(tokens))


@dataclass(frozen=True)
class Candidate:
    """One network of the final stage."""

    key: str
    role: str      # "seminas", "mobilenetv2", "random"
    name: str


def choose_candidates(space: MBConvSpace, ranked_keys: list[str], top_k: int, seed: int) -> list[Candidate]:
    """Top-``top_k`` found (``ranked_keys`` best first), the MobileNetV2-style baseline, ``top_k`` random archs."""
    found = [Candidate(k, "seminas", f"SemiNAS #{i + 1}") for i, k in enumerate(ranked_keys[:top_k])]
    base = Candidate(space.key(mobilenet_baseline(space)), "mobilenetv2", "MobileNetV2-style (k3e6 + skips)")
    taken = {c.key for c in found} | {base.key}
    randoms: list[Candidate] = []
    rng = np.random.default_rng([seed, 31])
    while len(randoms) < len(found):
        for arch in space.sample(rng, len(found)):
            key = space.key(arch)
            if key not in taken and len(randoms) < len(found):
                taken.add(key)
                randoms.append(Candidate(key, "random", f"random #{len(randoms) + 1}"))
    return [*found, base, *randoms]


# ------------------------------------------------------------------------------------------------------------
# One network, trained from scratch (the Tune trial)
# ------------------------------------------------------------------------------------------------------------
def evaluate(model: torch.nn.Module, source: ImageSource, batch_size: int = 250) -> dict[str, float]:
    """Top-1 and top-5 accuracy on ``source`` (eval transform)."""
    model.eval()
    top1 = top5 = 0
    with torch.no_grad():
        for i in range(0, len(source), batch_size):
            idx = np.arange(i, min(len(source), i + batch_size))
            logits = model(to_tensor(source.load(idx, False), source.mean, source.std, "cpu"))
            y = torch.from_numpy(source.labels[idx])
            k = min(5, logits.shape[1])
            best = logits.topk(k, dim=1).indices
            top1 += int((best[:, 0] == y).sum())
            top5 += int((best == y[:, None]).any(1).sum())
    return {"top1": top1 / len(source), "top5": top5 / len(source)}


def _train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule: Any, data: ImageData,
                 hp: dict[str, Any], epoch: int, name: str) -> float:
    """One epoch over a fixed-size random subset of the training split; the mean training loss."""
    rng = np.random.default_rng([hp["seed"], epoch, 17])
    n = min(len(data.train), hp["epoch_images"])
    order = rng.permutation(len(data.train))[:n]
    steps = max(1, n // hp["batch_size"])
    bar = progress_bar(steps, f"{name} epoch {epoch + 1}/{hp['epochs']}", enabled=hp.get("progress", True))
    model.train()
    total = 0.0
    for s in range(steps):
        idx = order[s * hp["batch_size"]:(s + 1) * hp["batch_size"]]
        x = to_tensor(data.train.load(idx, True, rng), data.train.mean, data.train.std, "cpu")
        y = torch.from_numpy(data.train.labels[idx])
        loss = F.cross_entropy(model(x), y, label_smoothing=hp["label_smoothing"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.item()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return total / steps


def final_trainable(config: dict[str, Any], data: ImageData, geometry: dict[str, Any], hp: dict[str, Any],
                    names: dict[str, str]) -> None:
    """Train ``config["key"]`` from scratch; report validation and test accuracy after every epoch."""
    torch.set_num_threads(1)
    torch.manual_seed(hp["seed"])
    geo = ImageGeometry(**{k: geometry[k] for k in ("input_size", "stem_stride", "width_mult", "n_classes")})
    model = build_network(config["key"], geo.space(), dropout=hp["dropout"], stem_stride=geo.stem_stride)
    optimizer = torch.optim.SGD(no_decay_groups(model, hp["weight_decay"]), lr=hp["lr"], momentum=0.9,
                                nesterov=True)
    steps = hp["epochs"] * max(1, min(len(data.train), hp["epoch_images"]) // hp["batch_size"])
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps)
                                                                                         / steps)))
    for epoch in range(hp["epochs"]):
        loss = _train_epoch(model, optimizer, schedule, data, hp, epoch, names[config["key"]])
        valid, test = evaluate(model, data.valid), evaluate(model, data.test)
        tune.report({"valid_top1": valid["top1"], "test_top1": test["top1"], "test_top5": test["top5"],
                     "train_loss": loss, "epoch": epoch + 1})


# ------------------------------------------------------------------------------------------------------------
# The stage
# ------------------------------------------------------------------------------------------------------------
def latency_ms(key: str, geometry: ImageGeometry, runs: int) -> float:
    """Median batch-1 forward time on one CPU thread (after 3 warm-up passes), in milliseconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_network(key, geometry.space(), stem_stride=geometry.stem_stride).eval()
        x = torch.randn(1, 3, geometry.input_size, geometry.input_size)
        times = []
        with torch.no_grad():
            for i in range(3 + runs):
                t0 = time.perf_counter()
                model(x)
                if i >= 3:
                    times.append(1000.0 * (time.perf_counter() - t0))
        return float(statistics.median(times))
    finally:
        torch.set_num_threads(before)


def _hyper(preset: ImageNetPreset, seed: int, final_epochs: int) -> dict[str, Any]:
    return {"seed": seed, "epochs": final_epochs, "batch_size": preset.final_batch_size, "lr": preset.final_lr,
            "weight_decay": 4e-5, "label_smoothing": 0.1, "dropout": preset.final_dropout,
            "epoch_images": preset.final_train or 1 << 62}


def run_final_stage(out: Path, candidates: list[Candidate], data: ImageData, geometry: ImageGeometry,
                    preset: ImageNetPreset, *, seed: int, final_epochs: int) -> list[dict[str, Any]]:
    """Train every candidate under ASHA; one row per candidate (last reported epoch, and its history)."""
    free = float(ray.available_resources().get("CPU", 1.0))
    concurrency = max(1, min(preset.final_concurrency, len(candidates)))
    cpus = max(0.01, min(1.0, free / concurrency))  # logical CPUs; each trial runs one torch thread
    trainable = tune.with_resources(
        tune.with_parameters(final_trainable, data=data, geometry=geometry.to_dict(),
                             hp=_hyper(preset, seed, final_epochs), names={c.key: c.name for c in candidates}),
        {"cpu": cpus})
    scheduler = ASHAScheduler(time_attr="training_iteration", metric="valid_top1", mode="max", max_t=final_epochs,
                              grace_period=max(1, min(preset.grace_epochs, final_epochs)), reduction_factor=2)
    by_key = {c.key: c for c in candidates}
    tuner = tune.Tuner(
        trainable, param_space={"key": tune.grid_search([c.key for c in candidates])},
        tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=concurrency, reuse_actors=False,
                                    trial_name_creator=trial_name, trial_dirname_creator=trial_name),
        run_config=tune.RunConfig(name=FINAL_TUNE_DIR, storage_path=str(out), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=1),
                                  # each network's per-epoch history is read back from these files: ask for them
                                  # explicitly (TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1 would otherwise drop them)
                                  callbacks=[JsonLoggerCallback(), CSVLoggerCallback()]))
    print(f"final stage: {len(candidates)} networks x up to {final_epochs} epoch(s) under ASHA, {concurrency} at a "
          f"time", flush=True)
    grid = tuner.fit()
    rows = []
    for result in grid:
        if result.error is not None or not result.metrics:
            raise RuntimeError(f"final training of {result.config.get('key')} failed: {result.error}")
        history = result.metrics_dataframe
        cand = by_key[result.config["key"]]
        m = result.metrics
        rows.append({"system": cand.name, "role": cand.role, "key": cand.key, "epochs": int(m["epoch"]),
                     "valid_top1": m["valid_top1"], "test_top1": m["test_top1"], "test_top5": m["test_top5"],
                     "history_test_top1": [float(v) for v in history["test_top1"]],
                     "history_valid_top1": [float(v) for v in history["valid_top1"]]})
    order = {c.key: i for i, c in enumerate(candidates)}
    return sorted(rows, key=lambda r: order[r["key"]])


__all__ = ["Candidate", "FINAL_TUNE_DIR", "choose_candidates", "evaluate", "final_trainable", "latency_ms",
           "mobilenet_baseline", "run_final_stage"]
