"""Speed of the searchable Transformer-TTS model: training steps, DFR scoring and free-running inference.

Synthetic batches with realistic lengths (default: 16 utterances, ~48 characters and ~258 mel frames each, the
mean of the offline eSpeak corpus; lengths jittered ±30 % so padding is realistic). For each size preset, arch,
mode (``supernet``: single path through the weight-sharing supernet; ``child``: the standalone model) and thread
count it times ``--steps`` training steps after ``--warmup`` untimed ones. ``--concurrent 2`` additionally runs
the 1-thread supernet measurement in 2 processes at once (the search's "2 candidates in parallel" setting).
It then times teacher-forced DFR scoring (ms per utterance) and autoregressive synthesis (ms per utterance; the
stop threshold is set out of reach, so each utterance runs to ``--frames`` frames).

Prints a table and writes ``DIR/tts_model_speed.csv``.

    python benchmarks/tts_model_speed.py --sizes smoke,default --threads 1,2 --out bench_out/
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from seminas_ray.spaces.tts import LOW_RESOURCE_ARCH  # noqa: E402
from seminas_ray.spaces.tts import ROBUSTNESS_ARCH  # noqa: E402
from seminas_ray.spaces.tts import TRANSFORMER_TTS_ARCH  # noqa: E402
from seminas_ray.spaces.tts import TTSSpace  # noqa: E402
from seminas_ray.tasks.tts.model import ChildModel  # noqa: E402
from seminas_ray.tasks.tts.model import Supernet  # noqa: E402
from seminas_ray.tasks.tts.model import TTSModelConfig  # noqa: E402
from seminas_ray.tasks.tts.model import count_parameters  # noqa: E402
from seminas_ray.tasks.tts.model import preset  # noqa: E402
from seminas_ray.tasks.tts.training import collate  # noqa: E402
from seminas_ray.tasks.tts.training import make_optimizer  # noqa: E402
from seminas_ray.tasks.tts.training import score_archs  # noqa: E402
from seminas_ray.tasks.tts.training import synthesize  # noqa: E402
from seminas_ray.tasks.tts.training import train_step  # noqa: E402

ARCHS: dict[str, str] = {
    "all_sa4": str(TRANSFORMER_TTS_ARCH),
    "all_conv25": "7 7 7 7 7 7 | 7 7 7 7 7 7",
    "all_lstm": "11 11 11 11 11 11 | 11 11 11 11 11 11",
    "low_resource": str(LOW_RESOURCE_ARCH),
    "robustness": str(ROBUSTNESS_ARCH),
}
FIELDS = ["measure", "size", "hidden", "ffn_kernel", "arch", "mode", "threads", "procs", "params_path", "ms",
          "ms_std", "cpu_ms", "unit", "n", "device", "load1"]


def synthetic_batch(n: int, chars: int, frames: int, n_mels: int, vocab: int, r: int, seed: int) -> dict:
    """A collated batch of ``n`` random utterances with lengths jittered ±30 % around the given means."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        scale = rng.uniform(0.7, 1.3)
        ch = rng.integers(2, vocab, size=max(2, int(chars * scale)))
        mel = rng.standard_normal((max(r, int(frames * scale)), n_mels)).astype(np.float32)
        items.append((ch, mel))
    return collate(items, r)


def time_train(model: torch.nn.Module, arch: Any, batch: dict, cfg: TTSModelConfig, steps: int,
               warmup: int) -> tuple[list[float], float]:
    """Wall milliseconds per training step (``steps`` timed after ``warmup`` untimed), and the mean process CPU
    milliseconds per step (all threads; on a shared machine it shows the compute the step needs, wall shows what
    it got)."""
    opt = make_optimizer(model, cfg)
    times = []
    cpu = 0.0
    for i in range(warmup + steps):
        if model_device_is_cuda(model):
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        train_step(model, batch, arch, opt, None, cfg)
        if model_device_is_cuda(model):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(1000.0 * (time.perf_counter() - t0))
            cpu += 1000.0 * (time.process_time() - c0)
    return times, cpu / max(steps, 1)


def model_device_is_cuda(model: torch.nn.Module) -> bool:
    return next(model.parameters()).is_cuda


def _concurrent_worker(args: tuple) -> tuple[list[float], float]:
    size, arch, batch_kw, steps, warmup, device = args
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = preset(size)
    net = Supernet(cfg).to(device)
    batch = synthetic_batch(**batch_kw, n_mels=cfg.n_mels, vocab=cfg.vocab_size, r=cfg.r)
    return time_train(net, arch, batch, cfg, steps, warmup)


def run(args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device)
    rows: list[dict] = []
    arch_names = [a for a in args.archs.split(",") if a]
    for name in arch_names:
        if name not in ARCHS:
            raise SystemExit(f"unknown arch {name!r}; choose from {', '.join(ARCHS)}")
    threads = [int(t) for t in args.threads.split(",") if t]
    modes = [m for m in args.modes.split(",") if m]
    space = TTSSpace()

    def add(**kw: Any) -> None:
        row = {f: "" for f in FIELDS}
        row.update(device=str(device), load1=round(os.getloadavg()[0], 2), **kw)
        rows.append(row)
        print(" | ".join(f"{row[f]}" for f in FIELDS), flush=True)

    print(" | ".join(FIELDS))
    for size in [s for s in args.sizes.split(",") if s]:
        cfg = preset(size)
        torch.manual_seed(0)
        supernet = Supernet(cfg).to(device)
        batch_kw = dict(n=args.batch, chars=args.chars, frames=args.frames, seed=0)
        batch = synthetic_batch(**batch_kw, n_mels=cfg.n_mels, vocab=cfg.vocab_size, r=cfg.r)
        base = dict(size=size, hidden=cfg.hidden, ffn_kernel=cfg.ffn_kernel)
        for name in arch_names:
            arch = space.parse(ARCHS[name])
            n_path = count_parameters(supernet, supernet.path_parameter_names(arch))
            for mode in modes:
                model = supernet if mode == "supernet" else ChildModel(arch, cfg).to(device)
                for nt in threads:
                    torch.set_num_threads(nt)
                    ts, cpu = time_train(model, arch, batch, cfg, args.steps, args.warmup)
                    add(measure="train_step", **base, arch=name, mode=mode, threads=nt, procs=1, params_path=n_path,
                        ms=round(statistics.mean(ts), 1), ms_std=round(statistics.pstdev(ts), 1),
                        cpu_ms=round(cpu, 1), unit="ms/step", n=len(ts))
            if args.concurrent > 1 and device.type == "cpu":
                ctx = mp.get_context("spawn")
                with ctx.Pool(args.concurrent) as pool:
                    jobs = [(size, arch, batch_kw, args.steps, args.warmup, "cpu")] * args.concurrent
                    results = pool.map(_concurrent_worker, jobs)
                per = [statistics.mean(ts) for ts, _ in results]
                cpu = statistics.mean(c for _, c in results)
                add(measure="train_step", **base, arch=name, mode="supernet", threads=1, procs=args.concurrent,
                    params_path=n_path, ms=round(statistics.mean(per), 1), ms_std=round(statistics.pstdev(per), 1),
                    cpu_ms=round(cpu, 1), unit="ms/step per process", n=args.steps)
        # DFR scoring and AR synthesis, at the first thread count
        torch.set_num_threads(threads[0])
        valid = [synthetic_batch(n=args.batch, chars=args.chars, frames=args.frames, n_mels=cfg.n_mels,
                                 vocab=cfg.vocab_size, r=cfg.r, seed=10 + i) for i in range(args.dfr_batches)]
        n_valid = sum(b["chars"].shape[0] for b in valid)
        for name in arch_names:
            arch = space.parse(ARCHS[name])
            t0, c0 = time.perf_counter(), time.process_time()
            score_archs(supernet, [arch], valid, cfg)
            ms = 1000.0 * (time.perf_counter() - t0) / n_valid
            cpu = 1000.0 * (time.process_time() - c0) / n_valid
            add(measure="dfr_score", **base, arch=name, mode="supernet", threads=threads[0], procs=1,
                ms=round(ms, 2), cpu_ms=round(cpu, 2), unit="ms/utt", n=n_valid)
            chars = valid[0]["chars"][: args.ar_utts]
            lens = valid[0]["text_lens"][: args.ar_utts]
            t0, c0 = time.perf_counter(), time.process_time()
            res = synthesize(supernet, arch, chars, args.frames, text_lens=lens, stop_threshold=2.0)  # never stops
            ms = 1000.0 * (time.perf_counter() - t0) / chars.shape[0]
            cpu = 1000.0 * (time.process_time() - c0) / chars.shape[0]
            unit = f"ms/utt ({max(res.lengths)} frames; batch {chars.shape[0]})"
            add(measure="ar_synth", **base, arch=name, mode="supernet", threads=threads[0], procs=1,
                ms=round(ms, 1), cpu_ms=round(cpu, 1), unit=unit, n=chars.shape[0])
    return rows


def write_csv(rows: list[dict], out_dir: Path) -> Path:
    """Write the rows to ``out_dir/tts_model_speed.csv`` atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tts_model_speed.csv"
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".csv.tmp")
    with os.fdopen(fd, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="smoke,default", help="comma-separated presets (model.PRESETS)")
    parser.add_argument("--archs", default=",".join(ARCHS), help=f"comma-separated: {', '.join(ARCHS)}")
    parser.add_argument("--modes", default="supernet,child")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--concurrent", type=int, default=0, help="also time N 1-thread supernet processes at once")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--chars", type=int, default=48, help="mean characters per utterance")
    parser.add_argument("--frames", type=int, default=258, help="mean mel frames per utterance")
    parser.add_argument("--dfr-batches", type=int, default=2)
    parser.add_argument("--ar-utts", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("bench_out"))
    args = parser.parse_args(argv)
    rows = run(args)
    path = write_csv(rows, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
