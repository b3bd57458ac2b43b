"""The ImageNet task (``experiments/run.py --task imagenet``): SemiNAS on the 21-layer ``mbconv`` space under a
FLOPs budget, with a weight-sharing MBConv supernet on the generic supernet actors, then a final stage that trains
the found architectures and two baselines from scratch.

Pipeline:

1. **Data** (``data.py``): ``--data`` (an ImageFolder tree ``train/<class>/*`` + ``val/<class>/*``) or the
   embedded Fashion-MNIST; a fixed validation split held out of the training images. Checked before the results
   folder is created, so bad input leaves nothing behind.
2. **Space and budget** (``geometry.py``): the final network's ``mbconv`` space at the run's geometry, with the
   budget (600M at 224x224 by default) scaled to it. Seeds, the unlabelled pool and generated candidates all
   respect it (``MBConvSpace.sample`` and ``feasible``).
3. **Search** (the one runner): each Tune trial is one architecture and asks the named coordinator for its
   supernet score (``trial.py``); the first trial of a round trains the supernet replicas on the round's pool
   (single path, one uniformly drawn architecture per step), then the pool is scored on the fixed validation split.
4. **Selection**: every evaluated architecture is re-scored on the final supernet weights; the top-K go on.
5. **Final stage** (``final.py``): top-K, a MobileNetV2-style baseline and K random architectures under the budget,
   trained as Tune trials under ASHA; top-1/top-5 on the test split, FLOPs, params, CPU latency; Kendall taus.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any
from typing import Iterator

import numpy as np
import ray
from ray import tune
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from seminas_ray.algorithm import make_method
from seminas_ray.algorithm.config import build_config
from seminas_ray.controller.trainer import predict_with_weights
from seminas_ray.distributed.metrics import SearchMetrics
from seminas_ray.distributed.pseudo_label import RayPseudoLabeler
from seminas_ray.distributed.runner import RunSettings
from seminas_ray.distributed.runner import SearchJob
from seminas_ray.distributed.runner import SearchOutcome
from seminas_ray.distributed.runner import SearchPlan
from seminas_ray.distributed.runner import SearchSession
from seminas_ray.distributed.supernet_actor import RoundSchedule
from seminas_ray.distributed.supernet_actor import SupernetCoordinator
from seminas_ray.distributed.supernet_actor import plan_placement
from seminas_ray.reporting import flatten_row
from seminas_ray.reporting import round_or_none
from seminas_ray.reporting import write_csv
from seminas_ray.spaces.mbconv import PAPER_FLOPS_BUDGET
from seminas_ray.spaces.mbconv import MBConvSpace
from seminas_ray.tasks.base import Task
from seminas_ray.tasks.imagenet.data import ImageData
from seminas_ray.tasks.imagenet.data import load_fashion_mnist
from seminas_ray.tasks.imagenet.data import load_image_folder
from seminas_ray.tasks.imagenet.final import Candidate
from seminas_ray.tasks.imagenet.final import choose_candidates
from seminas_ray.tasks.imagenet.final import latency_ms
from seminas_ray.tasks.imagenet.final import run_final_stage
from seminas_ray.tasks.imagenet.geometry import SEARCH_NET
from seminas_ray.tasks.imagenet.geometry import ImageGeometry
from seminas_ray.tasks.imagenet.geometry import constrained_space
from seminas_ray.tasks.imagenet.presets import DEFAULT_PRESET
from seminas_ray.tasks.imagenet.presets import PRESETS
from seminas_ray.tasks.imagenet.presets import ImageNetPreset
from seminas_ray.tasks.imagenet.presets import get_preset
from seminas_ray.tasks.imagenet.report import plot_accuracy_vs_flops
from seminas_ray.tasks.imagenet.report import ranking_evidence
from seminas_ray.tasks.imagenet.report import write_report
from seminas_ray.tasks.imagenet.report import write_search_results
from seminas_ray.tasks.imagenet.supernet_backend import ImageSupernetBackend
from seminas_ray.tasks.imagenet.trial import COORDINATOR
from seminas_ray.tasks.imagenet.trial import METRIC
from seminas_ray.tasks.imagenet.trial import RESULT_KEYS
from seminas_ray.tasks.imagenet.trial import imagenet_trainable

TRIAL_CPUS = 0.01    # a search trial only waits on the coordinator
CAVEAT = ("The search scores architectures on a supernet trained for a few hundred steps, and the final stage trains "
          "each network for a handful of epochs on a subset: differences of a point or two between systems are "
          "within the noise of such short runs (one seed). The Kendall taus use few architectures. The paper's "
          "claim (23.5% top-1 error at 600M FLOPs on ImageNet) needs the paper preset on GPUs.")


class ImageNetTask(Task):
    """``--task imagenet``: SemiNAS on the MBConv space under a FLOPs budget (weight-sharing supernet)."""

    name = "imagenet"
    presets = tuple(PRESETS)
    default_preset = DEFAULT_PRESET
    description = "SemiNAS on the MBConv (ProxylessNAS) space under a FLOPs budget, weight-sharing supernet"

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--data", default=None,
                           help="an ImageFolder tree (train/<class>/*.JPEG and val/<class>/*); default: the embedded "
                                "Fashion-MNIST (Debian's dataset-fashion-mnist)")
        group.add_argument("--flops-budget", type=float, default=PAPER_FLOPS_BUDGET / 1e6,
                           help="max multiply-adds in millions at 224x224 (default 600, the paper's), scaled to the "
                                "run's resolution and width")
        group.add_argument("--valid-size", type=int, default=None,
                           help="training images held out for supernet scoring (default: the preset's; authors 5000)")
        group.add_argument("--input-size", type=int, default=None, help="--data images are cropped to this size")
        group.add_argument("--width-mult", type=float, default=None, help="width multiplier (default: the preset's)")
        group.add_argument("--supernet-actors", type=int, default=None,
                           help="supernet replicas (default: one per GPU, else 2 CPU replicas)")
        group.add_argument("--actor-threads", type=int, default=None, help="torch threads per CPU replica (default 1)")
        group.add_argument("--final-epochs", type=int, default=None, help="epochs of each final network")
        group.add_argument("--final-top-k", type=int, default=None,
                           help="found architectures trained from scratch (and as many random ones)")
        group.add_argument("--no-final", action="store_true", help="search only: skip the final stage")

    def prepare(self, settings: RunSettings) -> "ImageNetJob":
        t_start = time.perf_counter()
        preset = resolve_preset(settings)
        budget_224 = float(settings.option("flops_budget")) * 1e6
        if budget_224 <= 0:
            raise ValueError(f"--flops-budget must be positive, got {settings.option('flops_budget')}")
        cfg = build_config(None, settings.config, list(settings.overrides), base=preset.seminas_dict(),
                           budget=settings.budget, schedule="exact" if settings.exact_paper_schedule else None)
        data = load_data(settings.option("data"), preset, settings.option("input_size"), settings.seed)
        geometry = ImageGeometry(data.input_size, data.stem_stride, preset.width_mult, data.n_classes)
        space = constrained_space(geometry, budget_224)
        return ImageNetJob(settings, preset, cfg, data, geometry, space, budget_224, t_start)


def resolve_preset(settings: RunSettings) -> ImageNetPreset:
    """The preset with the command line's changes applied (each checked)."""
    preset = get_preset(settings.preset)
    changes: dict[str, Any] = {}
    for option, field_name, low in (("valid_size", "n_valid", 1), ("final_epochs", "final_epochs", 1),
                                    ("final_top_k", "final_top_k", 1)):
        value = settings.option(option)
        if value is not None:
            if value < low:
                raise ValueError(f"--{option.replace('_', '-')} must be >= {low}, got {value}")
            changes[field_name] = int(value)
    width = settings.option("width_mult")
    if width is not None:
        if width <= 0:
            raise ValueError(f"--width-mult must be positive, got {width}")
        changes["width_mult"] = float(width)
    return preset.with_overrides(**changes)


def load_data(path: str | None, preset: ImageNetPreset, input_size: int | None, seed: int) -> ImageData:
    """``--data`` (an ImageFolder tree) or the embedded Fashion-MNIST, split as the preset says."""
    if path is None:
        return load_fashion_mnist(preset.n_valid, preset.n_train, preset.n_test, seed)
    root = Path(path).expanduser()
    if not root.exists():
        raise ValueError(f"--data {root}: no such folder")
    size = int(input_size or preset.folder_input_size)
    if size < 8:
        raise ValueError(f"--input-size must be at least 8, got {size}")
    return load_image_folder(root, preset.n_valid, preset.n_train, preset.n_test, size, seed)


def feasible_fraction(space: MBConvSpace, seed: int, n: int = 20_000) -> float:
    """Share of the unconstrained space within the budget (uniform sample)."""
    free = MBConvSpace(net=space.net, width_mult=space.width_mult, resolution=space.resolution,
                       n_classes=space.n_classes)
    flops = free.cost_many(free.sample_tokens(np.random.default_rng([seed, 41]), n))["flops"]
    return float(np.mean(flops <= space.flops_budget))


class RoundPrinter:
    """Searcher callback: one line per trial and per controller round, and rounds.csv kept current."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir

    def __call__(self, searcher: Any, event: str) -> None:
        opt = searcher.optimizer
        if event == "trial" and searcher.evaluations:
            e = searcher.evaluations[-1]
            value = e.get(METRIC)
            print(f"  [{e['query']:>3}/{searcher.budget}] round {e['round']} top1="
                  f"{'failed' if value is None else f'{value:.4f}'}  {e['key']}", flush=True)
        elif event == "round":
            last = opt.rounds_log[-1] if opt.rounds_log else {}
            best = searcher.best_value
            print(f"[controller round {opt.round}] queries {opt.n_told}/{searcher.budget}, best top1 "
                  f"{'-' if best is None else f'{best:.4f}'}, controller {last.get('controller_seconds')}s, tau(train) "
                  f"{round_or_none(last.get('train_kendall_tau'), 3)}, {last.get('n_proposed', 0)} new", flush=True)
            write_csv(self.out_dir / "rounds.csv", [flatten_row(r) for r in opt.rounds_log])


class ImageNetJob(SearchJob):
    """One prepared ImageNet-task run: its evaluator is the supernet coordinator and its replicas."""

    task = "imagenet"
    log_to_driver = True  # the supernet replicas' and final trials' progress bars

    def __init__(self, settings: RunSettings, preset: ImageNetPreset, cfg: Any, data: ImageData,
                 geometry: ImageGeometry, space: MBConvSpace, budget_224: float, t_start: float) -> None:
        self.settings, self.preset, self.cfg, self.data = settings, preset, cfg, data
        self.geometry, self.space, self.budget_224, self.t_start = geometry, space, budget_224, t_start
        self.final_scores: dict[str, dict[str, float]] = {}
        self.supernet_rounds: list[dict[str, Any]] = []
        self.candidates: list[Candidate] = []
        self.predictions: dict[str, float] = {}
        self._coordinator: Any = None

    def describe(self) -> dict[str, Any]:
        return {"preset": dataclasses.asdict(self.preset), "seminas": self.cfg.to_dict(), "data": self.data.info(),
                "geometry": self.geometry.to_dict(), "space": self.space.settings(),
                "flops_budget_224": self.budget_224}

    def headline(self) -> str:
        d = self.data
        return (f"imagenet: {len(d.train)} training / {len(d.valid)} validation / {len(d.test)} test images "
                f"({d.source}), {d.input_size}x{d.input_size}, budget {self.space.flops_budget / 1e6:.2f}M "
                f"multiply-adds ({self.budget_224 / 1e6:g}M at 224), preset {self.preset.name}, "
                f"{self.cfg.total_queries} architectures to score, seed {self.settings.seed}")

    def _schedule(self) -> RoundSchedule:
        p = self.preset
        return RoundSchedule(steps_per_arch=p.steps_per_arch, min_steps=p.min_round_steps, max_steps=p.max_round_steps,
                             first_round_steps=p.first_round_steps or None, log_every=25)

    def _backend(self, schedule: RoundSchedule) -> ImageSupernetBackend:
        """The supernet over the search widths, with a cosine learning rate over the whole search."""
        cfg, p = self.cfg, self.preset
        total = schedule.steps(0, cfg.n_seed) + sum(schedule.steps(r, cfg.n_per_round)
                                                    for r in range(1, cfg.n_rounds + 1))
        return ImageSupernetBackend(self.data.train, self.data.valid, self.geometry.space(SEARCH_NET),
                                    stem_stride=self.geometry.stem_stride, batch_size=p.batch_size, lr=p.lr,
                                    total_steps=total, calib_batches=p.calib_batches, order_seed=self.settings.seed)

    @contextlib.contextmanager
    def evaluator(self, session: SearchSession) -> Iterator[SearchPlan]:
        settings = self.settings
        trial_reserve = TRIAL_CPUS * (max(1, settings.concurrency) + 2)
        placement = plan_placement(settings.option("supernet_actors") or self.preset.supernet_actors,
                                   reserved_cpus=0.0 if session.has_gpu else session.work_cpus + trial_reserve,
                                   threads=settings.option("actor_threads"))
        schedule = self._schedule()
        # on the driver's node, so its checkpoint (for --resume) lands in the results folder
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        coordinator = SupernetCoordinator.options(name=COORDINATOR, scheduling_strategy=here).remote(
            self._backend(schedule), schedule, seed=settings.seed, placement=placement,
            checkpoint_dir=str(session.out / "supernet"), progress=True)
        self._coordinator = coordinator
        try:
            info = ray.get(coordinator.info.remote())
            p = info["placement"]
            print(f"supernet: {p['n_actors']} replica(s) on {p['device']} ({p['backend']}, {p['threads']} thread(s) "
                  f"each, {info['replicas'][0]['parameters']:,} parameters), global batch {self.preset.batch_size}",
                  flush=True)
            labeler = None if session.has_gpu else RayPseudoLabeler(num_cpus=min(1.0, session.work_cpus))
            yield SearchPlan(
                make_optimizer=lambda: make_method("seminas", self.space, settings.seed, self.cfg,
                                                   pseudo_labeler=labeler),
                trainable=tune.with_parameters(imagenet_trainable, coordinator=COORDINATOR), metric=METRIC,
                mode="max", trial_cpus=TRIAL_CPUS, include_pool=True, extra_result_keys=RESULT_KEYS,
                callbacks=[RoundPrinter(session.out), SearchMetrics(session.out.name)], max_failures=1)
        finally:
            self._coordinator = None
            with contextlib.suppress(Exception):  # a coordinator that is already gone cannot shut down politely
                ray.get(coordinator.shutdown.remote(), timeout=60)
            ray.kill(coordinator)

    def after_search(self, outcome: SearchOutcome) -> None:
        """Re-score every evaluated architecture on the final supernet weights, pick the final stage's candidates
        (top-K by that score, the baselines) and score those too, on the supernet and by the predictor."""
        keys = [e["key"] for e in outcome.searcher.evaluations if e.get(METRIC) is not None]
        if not keys:
            raise RuntimeError(f"every supernet evaluation failed: see the trial errors under {self.settings.out}/tune")
        t0 = time.perf_counter()
        self.final_scores = ray.get(self._coordinator.rescore.remote(keys))
        ranked = sorted(self.final_scores, key=lambda k: -self.final_scores[k]["top1"])
        self.candidates = choose_candidates(self.space, ranked, self.preset.final_top_k, self.settings.seed)
        extra = [c.key for c in self.candidates if c.key not in self.final_scores]
        if extra:
            self.final_scores.update(ray.get(self._coordinator.rescore.remote(extra)))
        outcome.extra["rescore_seconds"] = round(time.perf_counter() - t0, 1)
        self.supernet_rounds = ray.get(self._coordinator.rounds.remote())
        state = outcome.searcher.optimizer.state_dict().get("controller_state")
        if state is not None:
            cand = [c.key for c in self.candidates]
            preds = predict_with_weights(self.space, self.cfg.controller, state["weights"],
                                         self.space.encode_many([self.space.coerce(k) for k in cand]))
            self.predictions = {k: float(v) for k, v in zip(cand, preds)}

    def write_results(self, session: SearchSession, outcome: SearchOutcome) -> dict[str, Any]:
        out, seed = session.out, self.settings.seed
        rows = write_search_results(out, outcome.searcher, self.space, self.final_scores, self.supernet_rounds,
                                    seed=seed)
        report: dict[str, Any] = {"task": "imagenet", "preset": self.preset.name, "seed": seed,
                                  "data": self.data.info(), "geometry": self.geometry.to_dict(),
                                  "search": self._search_summary(rows, outcome), "caveat": CAVEAT}
        within = all(r["within_budget"] for r in rows)
        if not self.settings.option("no_final"):
            report["final"] = self._final_stage(out)
            within = within and all(r["flops"] <= self.space.flops_budget for r in report["final"]["systems"])
        report["budget"] = {"at_224": self.budget_224, "run": self.space.flops_budget, "all_within": within,
                            "feasible_fraction": feasible_fraction(self.space, seed)}
        report["wall_seconds"] = round(time.perf_counter() - self.t_start, 1)
        write_report(out, report)
        print(f"done in {report['wall_seconds'] / 60:.1f} min: best architecture {report['search']['best']['key']}; "
              f"results in {out} (report.md)", flush=True)
        return report

    def _search_summary(self, rows: list[dict[str, Any]], outcome: SearchOutcome) -> dict[str, Any]:
        scored = [r for r in rows if r["final_top1"] is not None]
        best = max(scored, key=lambda r: (r["final_top1"], r[METRIC] or 0.0))
        summary = {"n_evaluated": len(rows), "n_failed": sum(r[METRIC] is None for r in rows),
                   "n_rounds": len(self.supernet_rounds), "search_seconds": round(outcome.wall_seconds, 1),
                   "rescore_seconds": outcome.extra.get("rescore_seconds"),
                   "best": {"key": best["key"], "describe": best["arch"], "final_top1": best["final_top1"],
                            "top1": best[METRIC], "round": best["round"], "flops": best["flops"],
                            "params": best["params"]},
                   "supernet_rounds": self.supernet_rounds}
        print(f"search done in {outcome.wall_seconds / 60:.1f} min: {len(rows)} architectures; best on the final "
              f"supernet weights: {best['key']} (top-1 {best['final_top1']:.4f}, {best['flops'] / 1e6:.2f}M FLOPs)",
              flush=True)
        return summary

    def _final_stage(self, out: Path) -> dict[str, Any]:
        """Train the candidates (ASHA), add costs, latency and scores; the picks and the ranking evidence."""
        epochs = self.preset.final_epochs
        rows = run_final_stage(out, self.candidates, self.data, self.geometry, self.preset, seed=self.settings.seed,
                               final_epochs=epochs)
        for r in rows:
            r.update(self.space.cost(r["key"]), describe=self.space.describe(r["key"]),
                     latency_ms=latency_ms(r["key"], self.geometry, self.preset.latency_runs),
                     supernet_top1=self.final_scores.get(r["key"], {}).get("top1"),
                     predictor=self.predictions.get(r["key"]))
        write_csv(out / "final.csv", [{k: v for k, v in r.items() if not k.startswith("history_")} for r in rows])
        plot_accuracy_vs_flops(out / "plots" / "accuracy_vs_flops.png", rows, self.space.flops_budget)
        (out / "accuracy_vs_flops.png").write_bytes((out / "plots" / "accuracy_vs_flops.png").read_bytes())
        picks = {}
        for role, label in (("seminas", "SemiNAS (best of the top-K found)"),
                            ("mobilenetv2", "MobileNetV2-style baseline"),
                            ("random", "random (best of as many under the budget)")):
            group = [r for r in rows if r["role"] == role]
            pick = max(group, key=lambda r: (r["epochs"], r["valid_top1"]))
            picks[label] = {k: pick[k] for k in ("key", "system", "test_top1", "test_top5", "valid_top1", "flops",
                                                 "params", "latency_ms", "epochs")}
        ranking = ranking_evidence(rows)
        print(f"final stage: " + "; ".join(f"{k}: test top-1 {v['test_top1']:.4f}" for k, v in picks.items())
              + f"; Kendall tau supernet {ranking['supernet_kendall_tau']}, predictor "
              f"{ranking['predictor_kendall_tau']}", flush=True)
        return {"epochs": epochs, "systems": rows, "picks": picks, "ranking": ranking}


__all__ = ["ImageNetJob", "ImageNetTask", "feasible_fraction", "load_data", "resolve_preset"]
