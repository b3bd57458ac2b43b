"""Does searching help? The found TTS architecture vs the Transformer-TTS baseline vs random architectures, each
trained with the final budget over several seeds (issue #18; hours on 2 cores at the default budget).

For each seed it trains, exactly as the default run's final evaluation does (``evaluation.train_and_synthesize``:
the backbone's final model preset, ``--steps`` steps, synthesis of the test and hard sentences, Griffin-Lim,
PocketSphinx):

* the **found** architecture (``--found``: an architecture string, or a TTS results folder whose report.json names it),
* the **baseline** (all layers SA4, the Transformer-TTS layout),
* ``--n-random`` **random** architectures of the space (drawn with the seed); their median is the "random" system.

Metrics per system and seed: relative intelligibility (word accuracy on the test sentences / the recogniser's on the
ground-truth recordings) and the hard-sentence error rate (``asr.robustness_errors``: length and excess recogniser
errors for the duration-based backbone, plus stop and attention for the autoregressive one). The table gives the
mean over seeds with a 95 % bootstrap interval (2,000 seeded resamples of the per-sentence results of all seeds).
Trainings run ``--workers`` at a time, one thread each. Writes ``DIR/tts_search_value.csv`` (one row per system and
seed) and ``DIR/tts_search_value_summary.csv`` after every training, ``DIR/tts_search_value.png`` at the end;
rerunning the same command into the same folder resumes (``DIR/tts_search_value_records.json`` keeps the
per-sentence results).

**Does the search reward rank like stand-alone training?** When ``--found`` (or ``--supernet``) is a results folder,
every trained architecture is also scored on that run's final shared weights (``supernet/supernet_state.npz``)
with the search's reward (and the backbone's other validation terms), and ``DIR/tts_search_value_rank_agreement.csv``
holds the Kendall tau (per seed) between each of them and the stand-alone
relative intelligibility, hard-sentence error rate and validation loss (signs aligned: a positive tau means the
supernet orders the architectures as training them does).

    python benchmarks/tts_search_value.py --found results/tts_default --seeds 0,1,2 --out bench_out/tts_search_value
    python benchmarks/tts_search_value.py --found "2 9 11 1 8 3 | 10 4 2 11 9 1" --seeds 0 --n-random 1 --steps 100 \\
        --n-test 10 --n-hard 10      # a quick check of the pipeline
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from seminas_ray.reporting import write_csv  # noqa: E402
from seminas_ray.reporting import write_json  # noqa: E402
from seminas_ray.spaces.tts import TRANSFORMER_TTS_ARCH  # noqa: E402
from seminas_ray.spaces.tts import TTSSpace  # noqa: E402
from seminas_ray.tasks.tts import asr as tts_asr  # noqa: E402
from seminas_ray.tasks.tts.data import prepare_data  # noqa: E402
from seminas_ray.tasks.tts.evaluation import eval_indices  # noqa: E402
from seminas_ray.tasks.tts.evaluation import train_and_synthesize  # noqa: E402
from seminas_ray.tasks.tts.evaluation import transcribe_ground_truth  # noqa: E402
from seminas_ray.tasks.tts.packing import pack_items  # noqa: E402
from seminas_ray.tasks.tts.presets import get_preset  # noqa: E402
from seminas_ray.tasks.tts.task import model_config  # noqa: E402
from seminas_ray.tasks.tts.text import separator_ids  # noqa: E402


def found_arch(text: str) -> str:
    """An architecture string, or the best architecture named by a TTS results folder's report.json."""
    path = Path(text)
    if path.is_dir():
        report = path / "report.json"
        if not report.is_file():
            raise SystemExit(f"--found {text}: no report.json in that folder (expected a TTS results folder)")
        return str(json.loads(report.read_text())["search"]["best"]["key"])
    try:
        return str(TTSSpace.coerce(text))
    except Exception as err:  # noqa: BLE001 - any parse failure is the same user error
        raise SystemExit(f"--found {text!r}: neither a results folder nor an architecture ({err})") from None


def bootstrap_mean_ci(values: list[float], seed: int = 0, n: int = 2000) -> tuple[float, float, float]:
    """Mean and 95 % percentile-bootstrap interval."""
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (n, len(x)))].mean(1)
    return float(x.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


SUPERNET_STATE = Path("supernet") / "supernet_state.npz"


def supernet_scores(run_dir: Path, backbone: str, keys: list[str], data: Any) -> dict[str, dict[str, float]]:
    """Each architecture's scores on the final shared weights of a TTS run (its ``supernet/supernet_state.npz``; the
    supernet of the run's preset), computed as the search computes its reward (one in-process replica) on the
    validation utterances of ``data``: the reward and the backbone's other validation terms."""
    from seminas_ray.distributed.supernet_actor import SupernetWorker
    from seminas_ray.tasks.tts.supernet_backend import TTSSupernetBackend
    from seminas_ray.utils.state_io import load_state

    report = json.loads((run_dir / "report.json").read_text())
    if report.get("backbone") != backbone:
        raise SystemExit(f"--supernet {run_dir}: a run of backbone {report.get('backbone')!r}, not {backbone}")
    preset = get_preset(str(report.get("preset", "default")))
    search_cfg = model_config(preset.model_names(backbone)[0], {})
    backend = TTSSupernetBackend(search_cfg.to_dict(), pack_items(data.train), pack_items(data.valid),
                                 batch_size=preset.batch_size, max_frames=preset.max_frames,
                                 score_mode=preset.score_mode, separator_ids=separator_ids())
    worker = SupernetWorker(0, 1, backend, seed=int(report.get("seed", 0)), threads=2)
    worker.set_state(load_state(run_dir / SUPERNET_STATE)["supernet"])
    return {k: {name: float(v) for name, v in s.items() if isinstance(v, (int, float))}
            for k, s in zip(keys, worker.score(keys))}


# stand-alone quality measures, each with the sign that makes "higher = better"
STANDALONE = (("relative_intelligibility", 1.0), ("hard_sentence_error_rate", -1.0), ("valid_loss", -1.0))


def rank_agreement(rows: list[dict[str, Any]], scores: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Kendall tau, per seed, between each supernet score (the search reward first; loss-like scores negated) and
    each stand-alone quality measure (error-like ones negated): a positive tau means the supernet orders the
    architectures as training them on their own does. One row per (seed, supernet score, stand-alone measure)."""
    from scipy.stats import kendalltau

    from seminas_ray.tasks.tts.backbones import get_backbone

    out: list[dict[str, Any]] = []
    for seed in sorted({r["seed"] for r in rows}):
        members = [r for r in rows if r["seed"] == seed and r["key"] in scores]
        if len(members) < 3:
            continue
        backbone = get_backbone(members[0]["backbone"])
        # a term that is the same for every architecture (e.g. valid_post when the search model has no postnet)
        # cannot rank anything
        names = [backbone.reward] + sorted(
            n for n in scores[members[0]["key"]] if n != backbone.reward and n.startswith("valid_")
            and len({scores[r["key"]].get(n) for r in members}) > 1)
        for name in names:
            # every supernet term of the fastspeech backbone is a loss; the transformer-tts reward (dfr) is not
            sign = 1.0 if name == backbone.reward and backbone.mode == "max" else -1.0
            supernet = [sign * scores[r["key"]][name] for r in members]
            for target, flip in STANDALONE:
                res = kendalltau(supernet, [flip * r[target] for r in members])
                out.append({"seed": seed, "supernet_score": name, "is_search_reward": name == backbone.reward,
                            "standalone": target, "kendall_tau": float(res.statistic), "p_value": float(res.pvalue),
                            "n_archs": len(members)})
    return out


def summarize(rows: list[dict[str, Any]], seeds: list[int], gt_acc: float) -> list[dict[str, Any]]:
    """Per system: mean over seeds (the random system: per seed, the member with the median relative
    intelligibility) with 95 % bootstrap intervals over the per-sentence results."""
    summary = []
    for system in ("found", "baseline", "random"):
        picked = []
        for seed in seeds:
            members = sorted((r for r in rows if r["system"] == system and r["seed"] == seed),
                             key=lambda r: r["relative_intelligibility"])
            if members:
                picked.append(members[len(members) // 2])
        if not picked:
            continue
        rel = bootstrap_mean_ci([a / gt_acc for r in picked for a in r["_test_acc"]])
        hard = bootstrap_mean_ci([e for r in picked for e in r["_hard_err"]])
        summary.append({"system": system, "seeds": len(picked),
                        "members": len({r["member"] for r in rows if r["system"] == system}),
                        "relative_intelligibility": float(np.mean([r["relative_intelligibility"] for r in picked])),
                        "relative_intelligibility_ci_low": rel[1], "relative_intelligibility_ci_high": rel[2],
                        "hard_sentence_error_rate": float(np.mean([r["hard_sentence_error_rate"] for r in picked])),
                        "hard_error_ci_low": hard[1], "hard_error_ci_high": hard[2],
                        "params_mean": float(np.mean([r["params"] for r in picked]))})
    return summary


def plot_search_value(path: Path, rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> None:
    """Left: relative intelligibility per system (each trained member a dot, the system's mean and 95 % interval a
    bar). Right, when the rows carry supernet scores: the search reward against stand-alone intelligibility."""
    from matplotlib.figure import Figure

    scored = [r for r in rows if r.get("supernet_valid_loss") is not None]
    fig = Figure(figsize=(10.0 if scored else 5.0, 4.0), dpi=120)
    axes = fig.subplots(1, 2 if scored else 1, squeeze=False)[0]
    ax = axes[0]
    for i, s in enumerate(summary):
        ax.errorbar([i], [s["relative_intelligibility"]], capsize=6, fmt="s", color="black",
                    yerr=[[s["relative_intelligibility"] - s["relative_intelligibility_ci_low"]],
                          [s["relative_intelligibility_ci_high"] - s["relative_intelligibility"]]])
        members = [r["relative_intelligibility"] for r in rows if r["system"] == s["system"]]
        ax.scatter(i + np.linspace(-0.12, 0.12, len(members)) + 0.25, members, s=18, alpha=0.7)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="ground truth")
    ax.set_xticks(range(len(summary)), [s["system"] for s in summary])
    ax.set_ylabel("relative intelligibility (word acc. / ground truth's)")
    ax.set_title("trained with the final budget (dots: members x seeds)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    if scored:
        ax = axes[1]
        for system in ("found", "baseline", "random"):
            pts = [(r["supernet_valid_loss"], r["relative_intelligibility"]) for r in scored if r["system"] == system]
            if pts:
                ax.scatter(*zip(*pts), label=system, s=24)
        ax.set_xlabel("search reward on the supernet: validation loss (lower is better)")
        ax.set_ylabel("stand-alone relative intelligibility")
        ax.set_title("search reward vs stand-alone quality")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def load_done(path: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of an earlier, interrupted run into the same folder with the same settings (resume)."""
    if not path.is_file():
        return []
    try:
        saved = json.loads(path.read_text())
        rows, old = list(saved["rows"]), dict(saved["settings"])
    except (ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"{path}: not a search-value records file ({err}); move it away or pick another --out")
    if old != settings:
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        raise SystemExit(f"{path}: an earlier run with other settings ({', '.join(diff)}); pick another --out")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--found", required=True, help="the searched architecture, or a TTS results folder")
    parser.add_argument("--backbone", default="fastspeech", choices=("fastspeech", "transformer-tts"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n-random", type=int, default=5)
    parser.add_argument("--systems", default="found,baseline,random",
                        help="which systems to train (e.g. found,baseline to add seeds to those two only)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the default preset's)")
    parser.add_argument("--n-test", type=int, default=None, help="test sentences (default: all 100)")
    parser.add_argument("--n-hard", type=int, default=None, help="hard sentences (default: all 100)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--supernet", default=None,
                        help="a TTS results folder whose final supernet scores every trained "
                             "architecture (Kendall tau of search reward vs stand-alone quality); default: --found "
                             "when it is such a folder")
    parser.add_argument("--out", default="bench_out/tts_search_value")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    systems = {s.strip() for s in args.systems.split(",") if s.strip()}
    if not systems or not systems <= {"found", "baseline", "random"}:
        raise SystemExit(f"--systems {args.systems!r}: a comma-separated subset of found,baseline,random")
    found = found_arch(args.found)  # before any work: a bad --found is one line
    supernet_dir = Path(args.supernet) if args.supernet else (
        Path(args.found) if (Path(args.found) / SUPERNET_STATE).is_file() else None)
    if supernet_dir is not None and not all((supernet_dir / f).is_file() for f in (SUPERNET_STATE, "report.json")):
        raise SystemExit(f"--supernet {supernet_dir}: no {SUPERNET_STATE} and report.json there (expected the "
                         "folder of a finished TTS run)")
    preset = get_preset("default")
    steps = args.steps or preset.final_steps
    out = Path(args.out)
    records_path = out / "tts_search_value_records.json"
    settings = {"backbone": args.backbone, "steps": steps, "n_test": args.n_test, "n_hard": args.n_hard}
    rows: list[dict[str, Any]] = load_done(records_path, settings)
    data = prepare_data(None, "low-resource", preset, backbone=args.backbone, progress=False)
    cfg = model_config(preset.model_names(args.backbone)[1], {})
    test_idx = eval_indices(len(data.test), args.n_test)
    hard_idx = eval_indices(len(data.hard_items), args.n_hard)
    aligned = args.backbone == "fastspeech"

    def inputs(item: Any) -> Any:
        return (item[0], item[2]) if aligned else item[0]

    sets = {"test": {"inputs": [inputs(data.test[i]) for i in test_idx],
                     "gt_frames": [len(data.test[i][1]) for i in test_idx]},
            "hard": {"inputs": [inputs(data.hard_items[i]) for i in hard_idx],
                     "gt_frames": [len(data.hard_items[i][1]) for i in hard_idx]}}
    texts = {"test": [data.test_utts[i].normalized for i in test_idx],
             "hard": [data.hard[i].normalized for i in hard_idx]}
    space = TTSSpace()
    jobs = []
    for seed in seeds:
        rng = np.random.default_rng([seed, 18])
        jobs.append(("found", found, seed))
        jobs.append(("baseline", str(TRANSFORMER_TTS_ARCH), seed))
        for k in range(args.n_random):
            jobs.append((f"random-{k}", str(space.sample(rng, 1)[0]), seed))
    jobs = [job for job in jobs if job[0].split("-")[0] in systems]
    done = {(r["member"], r["key"], r["seed"]) for r in rows}
    todo = [job for job in jobs if job not in done]
    train, valid = pack_items(data.train), pack_items(data.valid)
    print(f"{len(todo)} trainings of {steps} steps to run ({len(jobs) - len(todo)} done earlier; {args.workers} at "
          f"a time)", flush=True)

    def write_tables() -> list[dict[str, Any]]:
        write_json(records_path, {"settings": settings, "rows": rows})
        write_csv(out / "tts_search_value.csv", [{k: v for k, v in r.items() if not k.startswith("_")}
                                                  for r in rows])
        summary = summarize(rows, seeds, gt_acc)
        write_csv(out / "tts_search_value_summary.csv", summary)
        return summary

    out.mkdir(parents=True, exist_ok=True)
    with cf.ProcessPoolExecutor(max_workers=args.workers) as pool, cf.ProcessPoolExecutor(max_workers=1) as side:
        # the recogniser on the recordings runs beside the first trainings (it is needed only for their results)
        gt_future = side.submit(transcribe_ground_truth, {
            "test": [str(data.test_utts[i].wav_path) for i in test_idx],
            "hard": [str(data.hard_utts[i].wav_path) for i in hard_idx]}, 0)
        futures = {}
        for name, key, seed in todo:
            opts = {"steps": steps, "batch_size": preset.final_batch_size, "max_frames": preset.final_max_frames,
                    "seed": seed, "threads": 1, "device": "cpu", "gl_iters": preset.gl_iters,
                    "max_len_ratio": preset.max_len_ratio, "eval_batch_size": preset.eval_batch_size,
                    "separator_ids": separator_ids(), "mel_mean": data.mel_mean, "mel_std": data.mel_std,
                    "asr": True, "n_keep": 0}
            futures[pool.submit(train_and_synthesize, name, key, cfg.to_dict(), train, valid, sets, opts)] = (
                name, key, seed)
        gt = gt_future.result()
        gt_acc = 1.0 - tts_asr.word_error_rate(texts["test"], gt["test"]).wer
        for fut in cf.as_completed(futures):
            name, key, seed = futures[fut]
            res = fut.result()
            test, hard = res["sets"]["test"]["records"], res["sets"]["hard"]["records"]
            wer = tts_asr.word_error_rate(texts["test"], [r["hyp"] for r in test])
            rob = tts_asr.robustness_errors(
                texts["hard"], stop_fired=[r["stop_fired"] for r in hard], frames=[r["frames"] for r in hard],
                gt_frames=[r["gt_frames"] for r in hard], attention_failed=[not r["attention_ok"] for r in hard],
                hyps=[r["hyp"] for r in hard], gt_hyps=gt["hard"])
            rows.append({"system": name.split("-")[0], "member": name, "key": key, "seed": seed,
                         "backbone": args.backbone, "params": res["params"], "word_accuracy": 1.0 - wer.wer,
                         "relative_intelligibility": (1.0 - wer.wer) / gt_acc,
                         "hard_sentence_error_rate": rob.error_rate, "valid_loss": res["valid_loss"],
                         "train_minutes": res["train_seconds"] / 60,
                         "_test_acc": [1 - e / max(n, 1) for e, n in zip(wer.errors, wer.ref_words)],
                         "_hard_err": [float(e) for e in rob.errors]})
            write_tables()  # after every training: an interrupted run keeps what it measured and resumes
            print(f"{name} seed {seed}: relative intelligibility {rows[-1]['relative_intelligibility']:.3f}, "
                  f"hard errors {rob.error_rate:.2f}, stand-alone valid loss {res['valid_loss']:.4f}", flush=True)
    summary = write_tables()
    print(f"\nground-truth word accuracy {gt_acc:.3f} on {len(test_idx)} test sentences; {len(hard_idx)} hard")
    print(pd.DataFrame(summary).to_string(index=False))
    if supernet_dir is not None and rows:
        keys = list(dict.fromkeys(r["key"] for r in rows))
        scores = supernet_scores(supernet_dir, args.backbone, keys, data)
        for r in rows:  # fresh scores replace any a resumed record carries
            for stale in [k for k in r if k.startswith("supernet_")]:
                del r[stale]
            r.update({f"supernet_{name}": v for name, v in scores[r["key"]].items()})
        summary = write_tables()
        agreement = write_csv(out / "tts_search_value_rank_agreement.csv", rank_agreement(rows, scores))
        print(f"\nsupernet scores ({supernet_dir}) vs stand-alone quality: Kendall tau, positive = the same order")
        print(agreement.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    plot_search_value(out / "tts_search_value.png", rows, summary)
    print(f"wrote {out / 'tts_search_value.csv'} and {out / 'tts_search_value_summary.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
