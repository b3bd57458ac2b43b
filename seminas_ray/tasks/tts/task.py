"""The TTS task (``experiments/run.py --task tts``): SemiNAS over the 11^12 TTS layer space with a weight-sharing
supernet on Ray actors, then a final comparison of the best architecture with the Transformer-TTS baseline.

Two backbones share the space (``backbones.py``, ``--backbone``): the duration-based ``fastspeech`` (the embedded
corpus's default; reward: validation loss, lower is better) and the paper's autoregressive ``transformer-tts``
(reward: diagonal focus rate; the ``paper`` preset and ``--data`` LJSpeech).

Pipeline:

1. **Data** (``data.py``): ``--data`` (an LJSpeech-1.1 folder) or the embedded eSpeak NG corpus (synthesised once,
   cached), split into the paper's low-resource setting (train / valid / test) or the robustness setting (train on the
   corpus, validate on the hard sentences); log-mels computed once (cached). Prepared before the results folder is
   created, so a bad corpus leaves nothing behind.
2. **Search** (through the one runner, ``distributed/runner.py``): each Tune trial is one architecture and asks the
   named ``supernet-coordinator`` actor for its score (``trial.py``): the first trial of a round trains the
   data-parallel supernet replicas (``supernet-0``, ``supernet-1``, ...) of the generic supernet layer, driven by the
   TTS backend (``supernet_backend.py``), on that round's pool; then the pool is scored, sharded across the replicas;
   the other trials read the cached result.
3. **Selection**: after the last round every evaluated architecture is re-scored on the final supernet weights (the
   rewards told to SemiNAS come from differently trained supernets, one per round, as in the paper); the best by
   this final score is the search result.
4. **Final evaluation** (``evaluation.py``): the best architecture and the Transformer-TTS baseline are trained
   from scratch with the same budget, synthesise the test and hard sentences, and are compared on intelligibility
   and robustness against the ground truth; ``report.md`` says what the budget can and cannot show.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import Any
from typing import Iterator

import ray
import yaml
from ray import tune
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from seminas_ray.algorithm import make_method
from seminas_ray.algorithm.config import build_config
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
from seminas_ray.reporting import best_so_far
from seminas_ray.reporting import flatten_row
from seminas_ray.reporting import plot_search_curve
from seminas_ray.reporting import write_search_plots
from seminas_ray.reporting import round_or_none
from seminas_ray.reporting import write_csv
from seminas_ray.spaces.tts import TTSSpace
from seminas_ray.tasks.base import Task
from seminas_ray.tasks.tts import phonemes as tts_phonemes
from seminas_ray.tasks.tts import text as tts_text
from seminas_ray.tasks.tts.backbones import BACKBONES
from seminas_ray.tasks.tts.backbones import Backbone
from seminas_ray.tasks.tts.backbones import get_backbone
from seminas_ray.tasks.tts.data import SETTINGS
from seminas_ray.tasks.tts.data import TTSData
from seminas_ray.tasks.tts.data import check_data_path
from seminas_ray.tasks.tts.data import prepare_data
from seminas_ray.tasks.tts.evaluation import final_evaluation
from seminas_ray.tasks.tts.evaluation import summary
from seminas_ray.tasks.tts.evaluation import write_report
from seminas_ray.tasks.tts.model import TTSModelConfig
from seminas_ray.tasks.tts.model import preset as model_preset
from seminas_ray.tasks.tts.packing import pack_items
from seminas_ray.tasks.tts.presets import DEFAULT_PRESET
from seminas_ray.tasks.tts.presets import PAPER_ROBUSTNESS_EPOCHS_PER_ARCH
from seminas_ray.tasks.tts.presets import PRESETS
from seminas_ray.tasks.tts.presets import TTSPreset
from seminas_ray.tasks.tts.presets import get_preset
from seminas_ray.tasks.tts.supernet_backend import TTSSupernetBackend
from seminas_ray.tasks.tts.text import separator_ids
from seminas_ray.tasks.tts.trial import COORDINATOR
from seminas_ray.tasks.tts.trial import result_keys
from seminas_ray.tasks.tts.trial import tts_trainable
from seminas_ray.utils.batching import batch_plan

TRIAL_CPUS = 0.01    # a trial only waits on the coordinator


# ------------------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------------------
def seminas_config(preset: TTSPreset, *, config_file: str | None = None, overrides: list[str] | None = None,
                   budget: int | None = None, exact_schedule: bool = False) -> Any:
    """The SemiNAS config: the paper's TTS settings scaled by the preset, then --config, --set and --budget."""
    return build_config(None, config_file, overrides, base=preset.seminas_dict(), budget=budget,
                        schedule="exact" if exact_schedule else None)


def model_config(name: str, overrides: dict[str, Any], cli: list[str] | None = None) -> Any:
    """A ``TTSModelConfig`` preset with the vocabulary set (characters or phonemes, by its backbone) and overrides
    applied (``--model-set key=value``)."""
    changes = dict(overrides)
    for text in cli or []:
        if "=" not in text:
            raise ValueError(f"--model-set {text!r} is not of the form key=value")
        key, raw = text.split("=", 1)
        changes[key.strip()] = yaml.safe_load(raw)
    unknown = sorted(set(changes) - set(TTSModelConfig().to_dict()))
    if unknown:
        raise ValueError(f"unknown TTS model setting(s) {unknown}; known: {sorted(TTSModelConfig().to_dict())}")
    base = model_preset(name, **changes)
    vocab = tts_phonemes.vocab_size if base.backbone == "fastspeech" else tts_text.vocab_size
    return dataclasses.replace(base, vocab_size=vocab)


# ------------------------------------------------------------------------------------------------------------
# Progress printing
# ------------------------------------------------------------------------------------------------------------
class RoundPrinter:
    """Searcher callback: one line per controller round, and rounds.csv kept current."""

    def __init__(self, out_dir: Path, space: Any, metric: str = "dfr") -> None:
        self.out_dir, self.space, self.metric = out_dir, space, metric

    def __call__(self, searcher: Any, event: str) -> None:
        opt = searcher.optimizer
        if event == "trial" and searcher.evaluations:
            e = searcher.evaluations[-1]
            value = e.get(self.metric)
            print(f"  [{e['query']:>3}/{searcher.budget}] round {e['round']} {self.metric}="
                  f"{'failed' if value is None else f'{value:.4f}'}  {e['key']}", flush=True)
            return
        if event != "round":
            return
        log = opt.rounds_log
        last = log[-1] if log else {}
        best = searcher.best_value
        print(f"[controller round {opt.round}] queries {opt.n_told}/{searcher.budget}, best {self.metric} "
              f"{'-' if best is None else f'{best:.4f}'}, controller {last.get('controller_seconds')}s "
              f"(pseudo-labels/s {last.get('pseudo_labels_per_s', '-')}, tau(train) "
              f"{round_or_none(last.get('train_kendall_tau'), 3)}), {last.get('n_proposed', 0)} new architectures",
              flush=True)
        write_csv(self.out_dir / "rounds.csv", [flatten_row(r) for r in log])


# ------------------------------------------------------------------------------------------------------------
# The task
# ------------------------------------------------------------------------------------------------------------
class TTSTask(Task):
    """``--task tts``: SemiNAS for Transformer TTS on a weight-sharing supernet."""

    name = "tts"
    presets = tuple(PRESETS)
    default_preset = DEFAULT_PRESET
    description = "SemiNAS for TTS (weight-sharing supernet on Ray actors, then final training)"

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--data", default=None,
                           help="an LJSpeech-1.1 folder (metadata.csv + wavs/); default: the embedded eSpeak NG "
                                "corpus, synthesised on first use and cached")
        group.add_argument("--backbone", choices=tuple(BACKBONES), default=None,
                           help="model family over the 11-op layer space: fastspeech (duration-based, phoneme input; "
                                "the embedded corpus's default) or transformer-tts (the paper's autoregressive one; "
                                "the paper preset's default, and the one --data LJSpeech needs)")
        group.add_argument("--setting", choices=SETTINGS, default="low-resource",
                           help="the paper's data setting (default low-resource)")
        group.add_argument("--supernet-actors", type=int, default=None,
                           help="supernet replicas (default: one per GPU, else 2 CPU replicas)")
        group.add_argument("--actor-threads", type=int, default=None, help="torch threads per CPU replica (default 1)")
        group.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                           help="override a supernet model setting, e.g. --model-set guided_attn_weight=20")
        group.add_argument("--final-steps", type=int, default=None,
                           help="training steps of each final model (default: the preset's)")
        group.add_argument("--no-final", action="store_true", help="search only: skip the final training and evaluation")

    def prepare(self, settings: RunSettings) -> "TTSJob":
        t_start = time.perf_counter()
        preset = resolve_preset(settings.preset, settings.option("final_steps"), settings.option("setting"))
        check_data_path(settings.option("data"))
        cfg = seminas_config(preset, config_file=settings.config, overrides=list(settings.overrides),
                             budget=settings.budget, exact_schedule=settings.exact_paper_schedule)
        backbone = settings.option("backbone") or preset.backbone
        if settings.option("backbone") is None and settings.option("data") is not None and backbone == "fastspeech":
            # the duration-based backbone needs eSpeak's alignment, which only the embedded corpus has
            backbone = "transformer-tts"
            print("--data: using --backbone transformer-tts (fastspeech needs the embedded corpus's phoneme "
                  "durations)", flush=True)
        search_name, final_name = preset.model_names(backbone)
        search_cfg = model_config(search_name, preset.search_overrides, list(settings.option("model_set")))
        final_cfg = model_config(final_name, preset.final_overrides)
        if search_cfg.backbone != backbone:
            raise ValueError(f"--model-set backbone={search_cfg.backbone} contradicts --backbone {backbone}")
        data = prepare_data(settings.option("data"), settings.option("setting"), preset, backbone=backbone)
        return TTSJob(settings, preset, cfg, search_cfg, final_cfg, data, t_start)


def resolve_preset(name: str, final_steps: int | None, setting: str) -> TTSPreset:
    """The preset with ``--final-steps`` and the robustness setting's epochs per architecture applied."""
    preset = get_preset(name)
    if final_steps is not None:
        if final_steps < 1:
            raise ValueError(f"--final-steps must be >= 1, got {final_steps}")
        preset = preset.with_overrides(final_steps=int(final_steps))
    if setting == "robustness" and preset.epochs_per_arch is not None:
        preset = preset.with_overrides(epochs_per_arch=PAPER_ROBUSTNESS_EPOCHS_PER_ARCH)
    return preset


class TTSJob(SearchJob):
    """One prepared TTS run: its evaluator is the supernet coordinator and its replicas."""

    task = "tts"
    log_to_driver = True  # the supernet replicas' progress bars and round lines

    def __init__(self, settings: RunSettings, preset: TTSPreset, cfg: Any, search_cfg: TTSModelConfig,
                 final_cfg: TTSModelConfig, data: TTSData, t_start: float) -> None:
        self.settings, self.preset, self.cfg = settings, preset, cfg
        self.search_cfg, self.final_cfg, self.data, self.t_start = search_cfg, final_cfg, data, t_start
        self.backbone: Backbone = get_backbone(search_cfg.backbone)
        self.space = TTSSpace(hidden=256)
        self.final_scores: dict[str, dict[str, float]] = {}
        self.supernet_rounds: list[dict[str, Any]] = []
        self.rescore_seconds = 0.0
        self._coordinator: Any = None

    def describe(self) -> dict[str, Any]:
        return {"preset": dataclasses.asdict(self.preset), "backbone": self.backbone.name,
                "seminas": self.cfg.to_dict(),
                "search_model": self.search_cfg.to_dict(), "final_model": self.final_cfg.to_dict(),
                "data": self.data.info()}

    def headline(self) -> str:
        return (f"tts {self.data.setting}: {len(self.data.train)} training / {len(self.data.valid)} validation "
                f"utterances ({self.data.source}), preset {self.preset.name}, backbone {self.backbone.name} "
                f"(reward {self.backbone.reward}), {self.cfg.total_queries} architectures to score, "
                f"seed {self.settings.seed}")

    def _schedule(self, n_actors: int) -> RoundSchedule:
        preset = self.preset
        steps_per_arch = preset.steps_per_arch
        if preset.epochs_per_arch is not None:
            n_batches = len(batch_plan([len(item[1]) for item in self.data.train], preset.batch_size, preset.max_frames,
                                       n_actors))
            steps_per_arch = max(1, math.ceil(preset.epochs_per_arch * n_batches))
        return RoundSchedule(steps_per_arch=steps_per_arch, min_steps=preset.min_round_steps,
                             max_steps=preset.max_round_steps, first_round_steps=preset.first_round_steps,
                             log_every=25)

    @contextlib.contextmanager
    def evaluator(self, session: SearchSession) -> Iterator[SearchPlan]:
        settings, preset = self.settings, self.preset
        # the controller round keeps its reserved bundle; the replicas share the rest beside the trials
        trial_reserve = TRIAL_CPUS * (max(1, settings.concurrency) + 2)
        placement = plan_placement(settings.option("supernet_actors") or preset.supernet_actors,
                                   reserved_cpus=0.0 if session.has_gpu else session.work_cpus + trial_reserve,
                                   threads=settings.option("actor_threads"))
        schedule = self._schedule(placement.n_actors)
        backend = TTSSupernetBackend(self.search_cfg.to_dict(), pack_items(self.data.train),
                                     pack_items(self.data.valid), batch_size=preset.batch_size,
                                     max_frames=preset.max_frames, score_mode=preset.score_mode,
                                     separator_ids=separator_ids())
        # on the driver's node, so its checkpoint (for --resume) lands in the results folder
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        coordinator = SupernetCoordinator.options(name=COORDINATOR, scheduling_strategy=here).remote(
            backend, schedule, seed=settings.seed, placement=placement,
            checkpoint_dir=str(session.out / "supernet"), progress=True)
        self._coordinator = coordinator
        try:
            info = ray.get(coordinator.info.remote())
            p = info["placement"]
            print(f"supernet: {p['n_actors']} replica(s) {', '.join(info['actors'])} on {p['device']} "
                  f"({p['backend']}, {p['threads']} thread(s) each, {info['replicas'][0]['parameters']:,} "
                  f"parameters), {schedule.steps_per_arch} steps x pool size per round, global batch "
                  f"{preset.batch_size or str(preset.max_frames) + ' frames'}", flush=True)
            labeler = None if session.has_gpu else RayPseudoLabeler(num_cpus=min(1.0, session.work_cpus))
            yield SearchPlan(
                make_optimizer=lambda: make_method("seminas", self.space, settings.seed, self.cfg,
                                                   pseudo_labeler=labeler),
                trainable=tune.with_parameters(tts_trainable, coordinator=COORDINATOR, metric=self.backbone.reward,
                                               backbone=self.backbone.name),
                metric=self.backbone.reward, mode=self.backbone.mode, trial_cpus=TRIAL_CPUS, include_pool=True,
                extra_result_keys=result_keys(self.backbone.name),
                callbacks=[RoundPrinter(session.out, self.space, self.backbone.reward),
                           SearchMetrics(session.out.name)], max_failures=1)
        finally:
            self._coordinator = None
            with contextlib.suppress(Exception):  # a coordinator that is already gone cannot shut down politely
                ray.get(coordinator.shutdown.remote(), timeout=60)
            ray.kill(coordinator)

    def after_search(self, outcome: SearchOutcome) -> None:
        """Re-score every evaluated architecture on the final supernet weights (one scale for all)."""
        keys = [e["key"] for e in outcome.searcher.evaluations if e.get(self.backbone.reward) is not None]
        if not keys:
            raise RuntimeError("every supernet evaluation failed: see the trial errors under "
                               f"{self.settings.out}/tune")
        t0 = time.perf_counter()
        self.final_scores = ray.get(self._coordinator.rescore.remote(keys))
        self.rescore_seconds = time.perf_counter() - t0
        self.supernet_rounds = ray.get(self._coordinator.rounds.remote())

    def write_results(self, session: SearchSession, outcome: SearchOutcome) -> dict[str, Any]:
        out, seed = session.out, self.settings.seed
        search = write_search_results(out, outcome.searcher, self.space, self.final_scores, self.supernet_rounds,
                                      search_seconds=outcome.wall_seconds, rescore_seconds=self.rescore_seconds,
                                      seed=seed, backbone=self.backbone)
        report: dict[str, Any] = {"task": "tts", "preset": self.preset.name, "backbone": self.backbone.name,
                                  "setting": self.data.setting, "seed": seed, "data": self.data.info()}
        if not self.settings.option("no_final"):
            final = final_evaluation(out, self.data, self.preset, self.final_cfg, best_key=search["best"]["key"],
                                     seed=seed)
            report.update(summary(final))  # the fixed-shape head: systems, ground truth, vocoder ceiling, counts
            report["final"] = final
        report["search"] = search
        report["wall_seconds"] = round(time.perf_counter() - self.t_start, 1)
        write_report(out, report)
        print(f"done in {report['wall_seconds'] / 60:.1f} min: best architecture {search['best']['key']} "
              f"({search['best']['describe']}); results in {out} (report.md)", flush=True)
        return report


def write_search_results(out: Path, searcher: Any, space: Any, final_scores: dict[str, dict[str, float]],
                         supernet_rounds: list[dict[str, Any]], *, search_seconds: float, rescore_seconds: float,
                         seed: int, backbone: Backbone | None = None) -> dict[str, Any]:
    """evaluations.csv, rounds.csv and search_curve.png; returns the search summary for the report.

    The reward column is named after the backbone's reward (``dfr`` or ``valid_loss``), its re-score on the final
    supernet weights ``final_<reward>``; the best architecture is the best final re-score in the reward's direction.
    """
    backbone = backbone or get_backbone("transformer-tts")
    metric, sign = backbone.reward, (1.0 if backbone.mode == "max" else -1.0)
    extra = [k for k in result_keys(backbone.name) if k not in ("supernet_round", "supernet_steps", "eval_seconds")]
    evaluations = list(searcher.evaluations)
    running = best_so_far([e.get(metric) for e in evaluations], mode=backbone.mode)
    final_key = "dfr" if metric == "dfr" else metric
    rows = []
    for e, best in zip(evaluations, running):
        final = final_scores.get(e["key"], {})
        row = {"query": e["query"], "round": e["round"], "key": e["key"], "arch": space.describe(e["key"]),
               metric: e.get(metric), **{k: e.get(k) for k in extra}, f"final_{metric}": final.get(final_key)}
        if backbone.name == "transformer-tts":
            row["final_valid_loss"] = final.get("loss")
        row.update({"predicted": e.get("predicted"), "best_so_far": best,
                    "params_layers_256": space.cost(e["key"])["params_layers"],
                    "supernet_steps": e.get("supernet_steps"), "trial_id": e["trial_id"], "time": e["time"]})
        rows.append(row)
    frame = write_csv(out / "evaluations.csv", rows)
    log = [flatten_row(r) for r in searcher.optimizer.rounds_log]
    by_round = {int(r["round"]): r for r in supernet_rounds}
    merged = []
    for r in sorted(by_round):  # one row per supernet round, with the controller round that produced its pool
        row = {k if k == "round" or k.startswith("supernet_") else f"supernet_{k}": v for k, v in by_round[r].items()}
        controller = next((c for c in log if int(c.get("round", -1)) == r), {})
        row.update({f"controller_{k}": v for k, v in controller.items() if k != "round"})
        merged.append(row)
    rounds = write_csv(out / "rounds.csv", merged, columns=None if merged else ["round"])
    write_search_plots(out, frame, rounds, value=metric, label=backbone.reward_label,
                       title=f"SemiNAS on the TTS space ({backbone.name}, seed {seed})")
    final_col = f"final_{metric}"
    scored = [r for r in rows if r[final_col] is not None]
    best = max(scored, key=lambda r: (sign * r[final_col], sign * (r[metric] if r[metric] is not None else -sign * 1e9)))
    best_reward = max((r for r in rows if r[metric] is not None), key=lambda r: sign * r[metric])
    plot_search_curve(out / "search_curve.png",
                      {f"SemiNAS (supernet {metric})": (list(range(1, len(running) + 1)), running)},
                      ylabel=f"best {metric} so far (reward)", title=f"SemiNAS on the TTS space (seed {seed})")
    summary = {
        "reward": metric, "mode": backbone.mode,
        "n_evaluated": len(rows), "n_failed": sum(r[metric] is None for r in rows),
        "n_rounds": len(merged), "search_seconds": round(search_seconds, 1),
        "rescore_seconds": round(rescore_seconds, 1),
        "best": {"key": best["key"], "describe": best["arch"], f"final_{metric}": best[final_col],
                 metric: best[metric], "round": best["round"]},
        "best_by_reward": {"key": best_reward["key"], metric: best_reward[metric], "round": best_reward["round"]},
        "supernet_rounds": supernet_rounds,
        f"final_{metric}_range": [min(r[final_col] for r in scored), max(r[final_col] for r in scored)],
    }
    print(f"search done in {search_seconds / 60:.1f} min: {len(rows)} architectures; best on the final supernet "
          f"weights: {best['key']} ({metric} {best[final_col]:.4f}; reward in round {best['round']}: "
          f"{best[metric]:.4f})", flush=True)
    return summary


__all__ = ["TTSJob", "TTSTask", "model_config", "resolve_preset", "seminas_config", "write_search_results"]
