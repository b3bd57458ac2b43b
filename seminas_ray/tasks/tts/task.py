"""The TTS task (``experiments/run.py --task tts``): SemiNAS over the 11^12 Transformer-TTS layer space with a
weight-sharing supernet on Ray actors, scored by the diagonal focus rate, then a final comparison of the best
architecture with the Transformer-TTS baseline.

Pipeline:

1. **Data**: ``--data`` (an LJSpeech-1.1 folder) or the embedded eSpeak NG corpus (synthesised once, cached), split
   into the paper's low-resource setting (train / valid / test) or the robustness setting (train on the corpus,
   validate on the hard sentences); log-mels computed once (cached).
2. **Search**: a Tune run whose searcher is SemiNAS (``AskTellSearcher(..., include_pool=True)``). Each trial is one
   architecture and asks the named ``supernet-coordinator`` actor for its score: the first trial of a round trains
   the data-parallel supernet replicas (``supernet-0``, ``supernet-1``, ...) on that round's pool, then the pool is
   scored, sharded across the replicas; the other trials read the cached result. The controller rounds run as Ray
   tasks inside a reserved placement group, so the supernet replicas, the controller and the trials can never wait
   on each other for CPUs.
3. **Selection**: after the last round every evaluated architecture is re-scored on the final supernet weights (the
   rewards told to SemiNAS come from differently trained supernets, one per round, as in the paper); the best by
   this final score is the search result.
4. **Final evaluation** (``evaluation.py``): the best architecture and the Transformer-TTS baseline are trained
   from scratch with the same budget, synthesise the test and hard sentences, and are compared on intelligibility
   and robustness against the ground truth; ``report.md`` says what the budget can and cannot show.

This module is imported by every Tune trial process (the trainable lives here), so it imports nothing heavy at
module level: torch, Ray Tune and the data code are imported inside the functions that need them.
"""
from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from seminas_ray.tasks.run_folder import load_run_settings
from seminas_ray.tasks.run_folder import prepare_out_dir
from seminas_ray.tasks.tts.presets import DEFAULT_PRESET
from seminas_ray.tasks.tts.presets import PAPER_ROBUSTNESS_EPOCHS_PER_ARCH
from seminas_ray.tasks.tts.presets import PRESETS
from seminas_ray.tasks.tts.presets import TTSPreset
from seminas_ray.tasks.tts.presets import get_preset

METRIC = "dfr"
SETTINGS = ("low-resource", "robustness")
COORDINATOR = "supernet-coordinator"
DATA_SPLIT_SEED = 0  # the data split is fixed, so runs with different --seed compare on the same sentences
TRIAL_CPUS = 0.01    # a trial only waits on the coordinator


# ------------------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """TTS options (the common ones live in ``experiments/run.py``; ``--preset`` takes the names below)."""
    g = parser.add_argument_group(f"tts (presets: {', '.join(PRESETS)}; default {DEFAULT_PRESET})")
    g.add_argument("--data", default=None,
                   help="an LJSpeech-1.1 folder (metadata.csv + wavs/); default: the embedded eSpeak NG corpus, "
                        "synthesised on first use and cached")
    g.add_argument("--setting", choices=SETTINGS, default="low-resource",
                   help="the paper's data setting (default low-resource)")
    g.add_argument("--supernet-actors", type=int, default=None,
                   help="supernet replicas (default: one per GPU, else 2 CPU replicas)")
    g.add_argument("--actor-threads", type=int, default=None, help="torch threads per CPU replica (default 1)")
    g.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a supernet model setting, e.g. --model-set guided_attn_weight=20")
    g.add_argument("--final-steps", type=int, default=None,
                   help="training steps of each final model (default: the preset's)")
    g.add_argument("--no-final", action="store_true", help="search only: skip the final training and evaluation")


DEFAULT_PRESET_NAME = DEFAULT_PRESET  # read by experiments/run.py when --preset is not given


# ------------------------------------------------------------------------------------------------------------
# The Tune trainable (light: imported in every trial process)
# ------------------------------------------------------------------------------------------------------------
def tts_trainable(config: dict[str, Any], coordinator: str = COORDINATOR) -> None:
    """Score one architecture: ask the supernet coordinator (which trains on the round's pool on first call)."""
    import ray
    from ray import tune

    t0 = time.perf_counter()
    actor = ray.get_actor(coordinator)
    result = ray.get(actor.score.remote(int(config["round"]), list(config["pool"]), config["key"]))
    tune.report({METRIC: float(result["dfr"]), "fr": float(result.get("fr", float("nan"))),
                 "valid_loss": float(result.get("loss", float("nan"))),
                 "supernet_round": int(result.get("round", config["round"])),
                 "supernet_steps": int(result.get("train_steps", 0)),
                 "eval_seconds": time.perf_counter() - t0})


# ------------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------------
@dataclass
class TTSData:
    """The prepared data of one run: (chars, normalised mel [frames, 80]) items and what the evaluation needs."""

    source: str                      # "espeak-ng (embedded)" or the --data folder
    setting: str
    corpus_root: Path
    mel_mean: float
    mel_std: float
    train: list[Any]
    valid: list[Any]
    valid_ids: list[str]
    test_utts: list[Any]             # ljspeech.Utterance of the test split (GT wavs)
    test: list[Any]
    hard: list[Any]                  # ljspeech.HardSentence
    hard_utts: list[Any]             # eSpeak reference recordings of the hard sentences
    hard_items: list[Any]
    notes: list[str] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {"source": self.source, "setting": self.setting, "corpus": str(self.corpus_root),
                "train": len(self.train), "valid": len(self.valid), "test": len(self.test),
                "hard": len(self.hard), "mel_mean": round(self.mel_mean, 4), "mel_std": round(self.mel_std, 4),
                "notes": self.notes}


def check_data_path(data: str | None) -> None:
    """Fail early, with one clear line, when ``--data`` is not an LJSpeech-layout folder."""
    if data is None:
        return
    path = Path(data).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"--data {data}: no such folder (expected LJSpeech-1.1 with metadata.csv and wavs/)")
    if not (path / "metadata.csv").is_file():
        raise FileNotFoundError(f"--data {data}: no metadata.csv inside (expected the LJSpeech-1.1 layout)")


def prepare_data(data: str | None, setting: str, preset: TTSPreset, *, progress: bool = True) -> TTSData:
    """Corpus, split and log-mels (all cached) for ``setting``; see the module docstring."""
    from seminas_ray.tasks.tts import text as tts_text
    from seminas_ray.tasks.tts.audio import load_mels
    from seminas_ray.tasks.tts.audio import precompute_mels
    from seminas_ray.tasks.tts.corpus import build_corpus
    from seminas_ray.tasks.tts.corpus import build_hard_corpus
    from seminas_ray.tasks.tts.corpus import load_hard_sentences
    from seminas_ray.tasks.tts.ljspeech import LJSpeechCorpus
    from seminas_ray.tasks.tts.ljspeech import low_resource_split

    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose one of {SETTINGS}")
    notes: list[str] = []
    if data is not None:
        check_data_path(data)
        corpus = LJSpeechCorpus(Path(data).expanduser())
        source = str(Path(data).expanduser().resolve())
        notes.append("hard-sentence reference audio is eSpeak NG (a different voice from the corpus): the length "
                     "ratio and ASR criteria compare against it")
    else:
        print(f"corpus: the embedded eSpeak NG corpus, {preset.corpus_size} utterances (built once, then cached)",
              flush=True)
        corpus = build_corpus(preset.corpus_size, seed=0, progress=progress)
        source = "espeak-ng (embedded)"
    hard = load_hard_sentences()
    hard_corpus = build_hard_corpus(seed=0, hard=hard, progress=progress)
    store = load_mels(precompute_mels(corpus, progress=progress))
    hard_store = load_mels(precompute_mels(hard_corpus, progress=progress))
    mean, std = store.mean, store.std

    def items(utts: Any, mels: Any) -> list[Any]:
        return [(tts_text.encode(u.normalized), ((mels[u.id] - mean) / std).T.astype("float32")) for u in utts]

    split = low_resource_split(corpus, seed=DATA_SPLIT_SEED)
    hard_utts = [hard_corpus.by_id(h.id) for h in hard]
    hard_items = items(hard_utts, hard_store)
    if setting == "low-resource":
        train_utts, valid_items = list(split.train), items(split.valid, store)
        valid_ids = split.valid.ids
    else:
        # the paper trains on all of LJSpeech; we hold out the same test utterances so intelligibility is measured
        # on unseen text, and validate on the hard sentences (the paper's processed_robust100)
        test_ids = set(split.test.ids)
        train_utts = [u for u in corpus if u.id not in test_ids]
        valid_items, valid_ids = hard_items, [h.id for h in hard]
        notes.append("robustness setting: trained on the corpus minus the test split, validated on the hard sentences")
    if preset.n_valid_score is not None:
        valid_items, valid_ids = valid_items[: preset.n_valid_score], valid_ids[: preset.n_valid_score]
    return TTSData(source=source, setting=setting, corpus_root=corpus.root, mel_mean=mean, mel_std=std,
                   train=items(train_utts, store), valid=valid_items, valid_ids=list(valid_ids),
                   test_utts=list(split.test), test=items(split.test, store), hard=hard, hard_utts=hard_utts,
                   hard_items=hard_items, notes=notes)


# ------------------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------------------
def seminas_config(preset: TTSPreset, *, config_file: str | None = None, overrides: list[str] | None = None,
                   budget: int | None = None, exact_schedule: bool = False) -> Any:
    """The SemiNAS config: the paper's TTS settings scaled by the preset, then --config, --set and --budget."""
    from seminas_ray.algorithm.config import build_config

    return build_config(None, config_file, overrides, base=preset.seminas_dict(), budget=budget,
                        schedule="exact" if exact_schedule else None)


def model_config(name: str, overrides: dict[str, Any], cli: list[str] | None = None) -> Any:
    """A ``TTSModelConfig`` preset with the vocabulary set and overrides applied (``--model-set key=value``)."""
    import yaml

    from seminas_ray.tasks.tts import text as tts_text
    from seminas_ray.tasks.tts.model import TTSModelConfig
    from seminas_ray.tasks.tts.model import preset as model_preset

    changes = dict(overrides)
    for text in cli or []:
        if "=" not in text:
            raise ValueError(f"--model-set {text!r} is not of the form key=value")
        key, raw = text.split("=", 1)
        changes[key.strip()] = yaml.safe_load(raw)
    unknown = sorted(set(changes) - set(TTSModelConfig().to_dict()))
    if unknown:
        raise ValueError(f"unknown TTS model setting(s) {unknown}; known: {sorted(TTSModelConfig().to_dict())}")
    return model_preset(name, vocab_size=tts_text.vocab_size, **changes)


def separator_ids() -> tuple[int, ...]:
    """Character ids that separate words (space, punctuation, EOS, pad): word-level skip detection."""
    from seminas_ray.tasks.tts import text as tts_text

    return tuple(i for i, s in enumerate(tts_text.SYMBOLS) if not (s.isalpha() or s == "'"))


# ------------------------------------------------------------------------------------------------------------
# Progress printing
# ------------------------------------------------------------------------------------------------------------
class RoundPrinter:
    """Searcher callback: one line per controller round, and rounds.csv kept current."""

    def __init__(self, out_dir: Path, space: Any) -> None:
        self.out_dir, self.space = out_dir, space

    def __call__(self, searcher: Any, event: str) -> None:
        from seminas_ray.reporting import flatten_row
        from seminas_ray.reporting import round_or_none
        from seminas_ray.reporting import write_csv

        opt = searcher.optimizer
        if event == "trial" and searcher.evaluations:
            e = searcher.evaluations[-1]
            value = e.get(METRIC)
            print(f"  [{e['query']:>3}/{searcher.budget}] round {e['round']} dfr="
                  f"{'failed' if value is None else f'{value:.4f}'}  {e['key']}", flush=True)
            return
        if event != "round":
            return
        log = getattr(opt, "rounds_log", [])
        last = log[-1] if log else {}
        best = searcher.best_value
        print(f"[controller round {getattr(opt, 'round', 0)}] queries {opt.n_told}/{searcher.budget}, best dfr "
              f"{'-' if best is None else f'{best:.4f}'}, controller {last.get('controller_seconds')}s "
              f"(pseudo-labels/s {last.get('pseudo_labels_per_s', '-')}, tau(train) "
              f"{round_or_none(last.get('train_kendall_tau'), 3)}), {last.get('n_proposed', 0)} new architectures",
              flush=True)
        write_csv(self.out_dir / "rounds.csv", [flatten_row(r) for r in log])


# ------------------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> Path:
    """``experiments/run.py --task tts``: data, search through Tune, final evaluation, results folder."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    resume = getattr(args, "resume", None) is not None
    out = Path(args.resume or args.out).resolve()
    if resume:
        for k, v in load_run_settings(out, "tts").items():
            setattr(args, k, v)
    preset = get_preset(getattr(args, "preset", None) or DEFAULT_PRESET)
    if getattr(args, "final_steps", None) is not None:
        if args.final_steps < 1:
            raise ValueError(f"--final-steps must be >= 1, got {args.final_steps}")
        preset = preset.with_overrides(final_steps=int(args.final_steps))
    if args.setting == "robustness" and preset.epochs_per_arch is not None:
        preset = preset.with_overrides(epochs_per_arch=PAPER_ROBUSTNESS_EPOCHS_PER_ARCH)

    # everything that can be wrong with the input is checked before the results folder is touched
    check_data_path(args.data)
    cfg = seminas_config(preset, config_file=args.config, overrides=args.set, budget=args.budget,
                         exact_schedule=getattr(args, "exact_paper_schedule", False))
    search_cfg = model_config(preset.search_model, preset.search_overrides, getattr(args, "model_set", []))
    final_cfg = model_config(preset.final_model, preset.final_overrides)
    if not resume:
        prepare_out_dir(out, overwrite=args.overwrite)
    t_start = time.perf_counter()
    data = prepare_data(args.data, args.setting, preset)
    if not resume:
        from seminas_ray.reporting import write_yaml

        write_yaml(out / "config.yaml", {"task": "tts", "run": _run_settings(args), "preset": _preset_dict(preset),
                                         "seminas": cfg.to_dict(), "search_model": search_cfg.to_dict(),
                                         "final_model": final_cfg.to_dict(), "data": data.info()})
    print(f"tts {args.setting}: {len(data.train)} training / {len(data.valid)} validation utterances "
          f"({data.source}), preset {preset.name}, {cfg.total_queries} architectures to score, seed {args.seed}",
          flush=True)

    search = run_search(args, out, preset, cfg, search_cfg, data, resume=resume)
    report: dict[str, Any] = {"task": "tts", "preset": preset.name, "setting": args.setting, "seed": args.seed,
                              "data": data.info(), "search": search}
    if not getattr(args, "no_final", False):
        from seminas_ray.tasks.tts.evaluation import final_evaluation

        report["final"] = final_evaluation(out, data, preset, final_cfg, best_key=search["best"]["key"],
                                           seed=args.seed)
    report["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    from seminas_ray.tasks.tts.evaluation import write_report

    write_report(out, report)
    print(f"done in {report['wall_seconds'] / 60:.1f} min: best architecture {search['best']['key']} "
          f"({search['best']['describe']}); results in {out} (report.md)", flush=True)
    return out


def run_search(args: argparse.Namespace, out: Path, preset: TTSPreset, cfg: Any, search_cfg: Any, data: TTSData,
               *, resume: bool = False) -> dict[str, Any]:
    """The Tune search; returns the search summary (also written to evaluations.csv / rounds.csv / the plot)."""
    import ray
    from ray import tune

    from seminas_ray.algorithm import SemiNAS
    from seminas_ray.distributed.metrics import SearchMetrics
    from seminas_ray.distributed.pseudo_label import RayPseudoLabeler
    from seminas_ray.distributed.searcher import AskTellSearcher
    from seminas_ray.distributed.supernet_actor import RoundSchedule
    from seminas_ray.distributed.supernet_actor import SupernetCoordinator
    from seminas_ray.distributed.supernet_actor import SupernetSpec
    from seminas_ray.distributed.supernet_actor import batch_plan
    from seminas_ray.distributed.supernet_actor import pack_items
    from seminas_ray.distributed.supernet_actor import plan_placement
    from seminas_ray.spaces.tts import TTSSpace
    from seminas_ray.tasks.nasbench import reserve_work_cpus

    if not ray.is_initialized():
        ray.init(address=args.address, num_cpus=args.num_cpus if args.address is None else None,
                 include_dashboard=args.dashboard, configure_logging=False, log_to_driver=True)
    resources = ray.cluster_resources()
    total_cpus = float(resources.get("CPU", 1.0))
    has_gpu = resources.get("GPU", 0) >= 1
    # the controller round (and its pseudo-labelling tasks) get a reserved bundle; the rest goes to the replicas
    work_cpus = 1.0 if total_cpus >= 2 else 0.5 * total_cpus
    trial_reserve = TRIAL_CPUS * (max(1, args.concurrency) + 2)
    placement = plan_placement(args.supernet_actors or preset.supernet_actors,
                               reserved_cpus=0.0 if has_gpu else work_cpus + trial_reserve,
                               threads=args.actor_threads)
    work_pg = reserve_work_cpus(work_cpus)

    space = TTSSpace(hidden=256)
    steps_per_arch = preset.steps_per_arch
    if preset.epochs_per_arch is not None:
        n_batches = len(batch_plan([len(m) for _, m in data.train], preset.batch_size, preset.max_frames,
                                   placement.n_actors))
        steps_per_arch = max(1, math.ceil(preset.epochs_per_arch * n_batches))
    schedule = RoundSchedule(steps_per_arch=steps_per_arch, min_steps=preset.min_round_steps,
                             max_steps=preset.max_round_steps, first_round_steps=preset.first_round_steps,
                             log_every=25)
    spec = SupernetSpec(model=search_cfg.to_dict(), batch_size=preset.batch_size, max_frames=preset.max_frames,
                        seed=args.seed, threads=placement.threads, score_mode=preset.score_mode,
                        separator_ids=separator_ids())
    train_ref, valid_ref = ray.put(pack_items(data.train)), ray.put(pack_items(data.valid))
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # on the driver's node, so its checkpoint (for --resume) lands in the results folder
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    coordinator = SupernetCoordinator.options(name=COORDINATOR, scheduling_strategy=here).remote(
        spec, train_ref, valid_ref, schedule, placement, str(out / "supernet"), True)
    try:
        info = ray.get(coordinator.info.remote())
        p = info["placement"]
        print(f"supernet: {p['n_actors']} replica(s) {', '.join(info['actors'])} on {p['device']} ({p['backend']}, "
              f"{p['threads']} thread(s) each, {info['replicas'][0]['parameters']:,} parameters), "
              f"{schedule.steps_per_arch} steps x pool size per round, global batch "
              f"{preset.batch_size or str(preset.max_frames) + ' frames'}", flush=True)

        trainable = tune.with_resources(tune.with_parameters(tts_trainable, coordinator=COORDINATOR),
                                        {"cpu": TRIAL_CPUS})
        labeler = None if has_gpu else RayPseudoLabeler(num_cpus=min(1.0, work_cpus))
        if resume:
            from seminas_ray.tasks.nasbench import _find_searcher

            tuner = tune.Tuner.restore(str(out / "tune"), trainable=trainable, resume_unfinished=True,
                                       resume_errored=True)
            searcher = _find_searcher(tuner)
            searcher.work_placement_group = work_pg
        else:
            optimizer = SemiNAS(space, cfg, seed=args.seed, pseudo_labeler=labeler)
            searcher = AskTellSearcher(optimizer, metric=METRIC, mode="max", budget=cfg.total_queries,
                                       work_num_cpus=min(1.0, work_cpus),
                                       callbacks=[RoundPrinter(out, space), SearchMetrics(out.name)],
                                       work_placement_group=work_pg, include_pool=True)
            searcher.extra_result_keys = ("fr", "valid_loss", "supernet_round", "supernet_steps", "eval_seconds")
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1,
                                            max_concurrent_trials=max(1, args.concurrency), reuse_actors=True),
                run_config=tune.RunConfig(name="tune", storage_path=str(out), verbose=0,
                                          failure_config=tune.FailureConfig(max_failures=1)),
            )
        t0 = time.perf_counter()
        tuner.fit()
        search_seconds = time.perf_counter() - t0
        if not searcher.optimizer.finished:
            # Tune returns from fit() on Ctrl-C after saving its state: the search is not over, say how to resume
            raise KeyboardInterrupt(f"stopped after {searcher.optimizer.n_told} of {cfg.total_queries} architectures")
        keys = [e["key"] for e in searcher.evaluations if e.get(METRIC) is not None]
        if not keys:
            raise RuntimeError("every supernet evaluation failed: see the trial errors under " + str(out / "tune"))
        t1 = time.perf_counter()
        final_scores = ray.get(coordinator.rescore.remote(keys))
        rescore_seconds = time.perf_counter() - t1
        supernet_rounds = ray.get(coordinator.rounds.remote())
    finally:
        try:
            ray.get(coordinator.shutdown.remote(), timeout=60)
        except Exception:
            pass
        ray.kill(coordinator)
        from ray.util import remove_placement_group

        remove_placement_group(work_pg)
    return write_search_results(out, searcher, space, final_scores, supernet_rounds,
                                search_seconds=search_seconds, rescore_seconds=rescore_seconds, seed=args.seed)


def write_search_results(out: Path, searcher: Any, space: Any, final_scores: dict[str, dict[str, float]],
                         supernet_rounds: list[dict[str, Any]], *, search_seconds: float, rescore_seconds: float,
                         seed: int) -> dict[str, Any]:
    """evaluations.csv, rounds.csv and search_curve.png; returns the search summary for the report."""
    from seminas_ray.reporting import best_so_far
    from seminas_ray.reporting import flatten_row
    from seminas_ray.reporting import plot_search_curve
    from seminas_ray.reporting import write_csv

    evaluations = list(searcher.evaluations)
    running = best_so_far([e.get(METRIC) for e in evaluations])
    rows = []
    for e, best in zip(evaluations, running):
        final = final_scores.get(e["key"], {})
        rows.append({"query": e["query"], "round": e["round"], "key": e["key"], "arch": space.describe(e["key"]),
                     METRIC: e.get(METRIC), "fr": e.get("fr"), "valid_loss": e.get("valid_loss"),
                     "final_dfr": final.get("dfr"), "final_valid_loss": final.get("loss"),
                     "predicted": e.get("predicted"), "best_so_far": best,
                     "params_layers_256": space.cost(e["key"])["params_layers"],
                     "supernet_steps": e.get("supernet_steps"), "trial_id": e["trial_id"], "time": e["time"]})
    write_csv(out / "evaluations.csv", rows)
    log = [flatten_row(r) for r in getattr(searcher.optimizer, "rounds_log", [])]
    by_round = {int(r["round"]): r for r in supernet_rounds}
    merged = []
    for r in sorted(by_round):  # one row per supernet round, with the controller round that produced its pool
        row = {k if k == "round" or k.startswith("supernet_") else f"supernet_{k}": v for k, v in by_round[r].items()}
        controller = next((c for c in log if int(c.get("round", -1)) == r), {})
        row.update({f"controller_{k}": v for k, v in controller.items() if k != "round"})
        merged.append(row)
    write_csv(out / "rounds.csv", merged, columns=None if merged else ["round"])
    scored = [r for r in rows if r["final_dfr"] is not None]
    best = max(scored, key=lambda r: (r["final_dfr"], r[METRIC] or 0.0))
    best_reward = max((r for r in rows if r[METRIC] is not None), key=lambda r: r[METRIC])
    plot_search_curve(out / "search_curve.png", {"SemiNAS (supernet DFR)": (list(range(1, len(running) + 1)),
                                                                             running)},
                      ylabel="best DFR so far (reward)", title=f"SemiNAS on the TTS space (seed {seed})")
    summary = {
        "n_evaluated": len(rows), "n_failed": sum(r[METRIC] is None for r in rows),
        "n_rounds": len(merged), "search_seconds": round(search_seconds, 1),
        "rescore_seconds": round(rescore_seconds, 1),
        "best": {"key": best["key"], "describe": best["arch"], "final_dfr": best["final_dfr"], "dfr": best[METRIC],
                 "round": best["round"]},
        "best_by_reward": {"key": best_reward["key"], "dfr": best_reward[METRIC], "round": best_reward["round"]},
        "supernet_rounds": supernet_rounds,
        "final_dfr_range": [min(r["final_dfr"] for r in scored), max(r["final_dfr"] for r in scored)],
    }
    print(f"search done in {search_seconds / 60:.1f} min: {len(rows)} architectures; best on the final supernet "
          f"weights: {best['key']} (DFR {best['final_dfr']:.4f}; reward in round {best['round']}: "
          f"{best[METRIC]:.4f})", flush=True)
    return summary


# ------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------
_RUN_KEYS = ("data", "setting", "preset", "config", "set", "budget", "seed", "exact_paper_schedule", "concurrency",
             "supernet_actors", "actor_threads", "model_set", "final_steps", "no_final")


def _run_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k, None) for k in _RUN_KEYS}


def _preset_dict(preset: TTSPreset) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(preset)


__all__ = ["COORDINATOR", "METRIC", "SETTINGS", "TTSData", "add_arguments", "prepare_data", "run", "run_search",
           "seminas_config", "tts_trainable"]
