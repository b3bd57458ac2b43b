"""Which TTS recipe becomes intelligible on a CPU, and how fast: word accuracy vs training steps and minutes.

Each route trains one standalone model from scratch on the embedded eSpeak corpus (the default preset's 1,000 training
utterances) and, at each checkpoint (in training steps, so the curve does not depend on how loaded the machine is;
minutes are recorded too), synthesises the first ``--n-test`` test sentences, vocodes them with the run's Griffin-Lim
and recognises them with PocketSphinx. Word accuracy is reported relative to the same recogniser on the
ground-truth recordings (the goal of issue #18: >= 0.8) and beside the vocoder's ceiling (ground-truth mels through
the same Griffin-Lim).

Routes (``--routes``):

* ``ar-chars``: the paper's autoregressive Transformer TTS (``--backbone transformer-tts``), character input,
  free-running synthesis (the ``final_cpu`` model, guided attention);
* ``fs-phonemes``: the duration-based backbone with eSpeak phonemes and durations but *no* style input (the jitter
  of speed and pitch is left for the model to average over);
* ``fs-style``: the same with the per-utterance style input (the default ``fastspeech`` recipe).

Every route trains the same architecture (``--arch``, default the Transformer-TTS baseline: all layers SA4) with its
backbone's final model preset. Prints a table and writes ``DIR/tts_routes.csv``.

    python benchmarks/tts_routes.py --routes fs-phonemes,fs-style --steps 400,800,1200 --n-test 50 --out bench_out/tts_routes
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from seminas_ray.reporting import write_csv  # noqa: E402
from seminas_ray.spaces.tts import TRANSFORMER_TTS_ARCH  # noqa: E402
from seminas_ray.tasks.tts import asr as tts_asr  # noqa: E402
from seminas_ray.tasks.tts.backbones import get_backbone  # noqa: E402
from seminas_ray.tasks.tts.data import prepare_data  # noqa: E402
from seminas_ray.tasks.tts.evaluation import recognise  # noqa: E402
from seminas_ray.tasks.tts.evaluation import shuffled_epochs  # noqa: E402
from seminas_ray.tasks.tts.evaluation import synthesize_set  # noqa: E402
from seminas_ray.tasks.tts.presets import get_preset  # noqa: E402
from seminas_ray.tasks.tts.task import model_config  # noqa: E402
from seminas_ray.tasks.tts.text import separator_ids  # noqa: E402
from seminas_ray.tasks.tts.training import make_optimizer  # noqa: E402
from seminas_ray.tasks.tts.training import make_scheduler  # noqa: E402
from seminas_ray.tasks.tts.training import train_steps  # noqa: E402
from seminas_ray.tasks.tts.audio import mel_to_wav  # noqa: E402

ROUTES: dict[str, dict[str, Any]] = {
    "ar-chars": {"backbone": "transformer-tts", "style": False},
    "fs-phonemes": {"backbone": "fastspeech", "style": False},
    "fs-style": {"backbone": "fastspeech", "style": True},
}


def test_set(data: Any, backbone: str, n_test: int) -> dict[str, Any]:
    """The first ``n_test`` test sentences as the evaluation's set spec (inputs, ground-truth lengths)."""
    items = data.test[:n_test]
    inputs = [(it[0], it[2]) if backbone == "fastspeech" else it[0] for it in items]
    return {"inputs": inputs, "gt_frames": [len(it[1]) for it in items]}


def eval_opts(data: Any, preset: Any, seed: int, threads: int) -> dict[str, Any]:
    """The options the final evaluation passes to ``synthesize_set`` (same vocoder, caps and seed)."""
    return {"seed": seed, "threads": threads, "gl_iters": preset.gl_iters, "max_len_ratio": preset.max_len_ratio,
            "eval_batch_size": preset.eval_batch_size, "separator_ids": separator_ids(), "mel_mean": data.mel_mean,
            "mel_std": data.mel_std, "n_keep": 0}


def train_and_measure(data: Any, backbone: str, arch: Any, cfg: Any, checkpoints: list[int], n_test: int,
                      seed: int, threads: int, preset: Any, label: str, batch_size: int = 16,
                      on_row: Any = None) -> list[dict[str, Any]]:
    """Train ``arch`` from scratch and measure word accuracy on the test sentences at each step checkpoint
    (``on_row(row)`` is called after each one, e.g. to keep a CSV current)."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    bb = get_backbone(backbone)
    model = bb.child(arch, cfg)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    batches = bb.batches(data.train, cfg, batch_size=batch_size, max_frames=None, rng=np.random.default_rng(seed))
    it = shuffled_epochs(batches, seed)
    spec, opts = test_set(data, backbone, n_test), eval_opts(data, preset, seed, threads)
    texts = [u.normalized for u in data.test_utts[:n_test]]
    done, train_seconds, rows = 0, 0.0, []
    for target in sorted(checkpoints):
        res = train_steps(model, it, target - done, optimizer, scheduler, cfg, losses=bb.losses)
        done, train_seconds = target, train_seconds + res["seconds"]
        t0 = time.perf_counter()
        _, _, wavs = synthesize_set(label, "test", spec, model, cfg, opts)
        hyps = recognise(wavs, seed, f"{label}: recognising after {done} steps")
        accuracy = 1.0 - tts_asr.word_error_rate(texts, hyps).wer
        rows.append({"route": label, "backbone": backbone, "arch": str(arch), "hidden": cfg.hidden, "seed": seed,
                     "steps": done, "train_minutes": round(train_seconds / 60, 2), "threads": threads,
                     "train_loss": round(res["loss"], 4), "word_accuracy": accuracy,
                     "eval_seconds": round(time.perf_counter() - t0, 1)})
        print(f"{label}: {done} steps ({train_seconds / 60:.1f} min): word accuracy {accuracy:.3f}", flush=True)
        if on_row is not None:
            on_row(rows[-1])
        model.train()
    return rows


def reference_rows(data: Any, preset: Any, n_test: int, seed: int) -> dict[str, float]:
    """Word accuracy of the ground-truth recordings and of the ground-truth mels through Griffin-Lim."""
    texts = [u.normalized for u in data.test_utts[:n_test]]
    gt = recognise([str(u.wav_path) for u in data.test_utts[:n_test]], seed, "ground truth")
    vocoded = [mel_to_wav(np.asarray(it[1], np.float32).T * data.mel_std + data.mel_mean, n_iter=preset.gl_iters,
                          seed=seed).numpy() for it in data.test[:n_test]]
    voc = recognise(vocoded, seed, "vocoder ceiling")
    return {"ground_truth": 1.0 - tts_asr.word_error_rate(texts, gt).wer,
            "vocoder_ceiling": 1.0 - tts_asr.word_error_rate(texts, voc).wer}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", default="fs-phonemes,fs-style", help=f"comma list of {', '.join(ROUTES)}")
    parser.add_argument("--steps", default="400,800,1200", help="checkpoints in training steps")
    parser.add_argument("--n-test", type=int, default=50, help="test sentences recognised per checkpoint")
    parser.add_argument("--arch", default=str(TRANSFORMER_TTS_ARCH), help="the architecture every route trains")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench_out/tts_routes")
    args = parser.parse_args(argv)
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    unknown = [r for r in routes if r not in ROUTES]
    if unknown:
        parser.error(f"unknown route(s) {unknown}; choose from {', '.join(ROUTES)}")
    checkpoints = sorted({int(x) for x in args.steps.split(",")})
    preset = get_preset("default")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    refs: dict[str, float] | None = None
    for route in routes:
        spec = ROUTES[route]
        data = prepare_data(None, "low-resource", preset, backbone=spec["backbone"], progress=False)
        if refs is None:
            refs = reference_rows(data, preset, args.n_test, args.seed)
        if spec["backbone"] == "fastspeech" and not spec["style"]:
            zero = np.zeros(3, np.float32)
            data.train = [(*it[:4], zero) for it in data.train]
        cfg = model_config(preset.model_names(spec["backbone"])[1], {})
        def keep(row: dict[str, Any], refs: dict[str, float] = refs) -> None:  # the CSV stays current
            row["ground_truth_word_accuracy"] = refs["ground_truth"]
            row["vocoder_ceiling_word_accuracy"] = refs["vocoder_ceiling"]
            row["relative_intelligibility"] = row["word_accuracy"] / refs["ground_truth"]
            rows.append(row)
            write_csv(out / "tts_routes.csv", rows)

        train_and_measure(data, spec["backbone"], args.arch, cfg, checkpoints, args.n_test, args.seed,
                          args.threads, preset, route, on_row=keep)
    assert refs is not None
    frame = write_csv(out / "tts_routes.csv", rows)
    print(f"\nground truth word accuracy {refs['ground_truth']:.3f}, vocoder ceiling {refs['vocoder_ceiling']:.3f} "
          f"({args.n_test} test sentences)")
    print(frame[["route", "steps", "train_minutes", "train_loss", "word_accuracy", "relative_intelligibility"]]
          .to_string(index=False))
    print(f"wrote {out / 'tts_routes.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
