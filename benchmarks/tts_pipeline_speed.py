"""Speed of the offline TTS data pipeline, per utterance: eSpeak synthesis, log-mel, Griffin-Lim, pocketsphinx ASR.

Builds a fresh ``--n``-utterance eSpeak corpus in a temporary folder, with the default number of workers and with
one worker. It then times the log-mel analysis (per utterance, and the batched ``precompute_mels``), Griffin-Lim
with 16 and 32 iterations, and pocketsphinx on ``--asr-n`` utterances, both the ground-truth audio and the GL32
round trip. The two ASR rows also give their WER. Prints a table and writes ``DIR/tts_pipeline_speed.csv``.

    python benchmarks/tts_pipeline_speed.py --n 200 --asr-n 30 --out bench_out/
"""
from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

from seminas_ray.tasks.tts import asr, audio, corpus
from seminas_ray.tasks.tts.ljspeech import SAMPLE_RATE, read_wav


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="utterances to synthesise and analyse")
    parser.add_argument("--asr-n", type=int, default=30, help="utterances for Griffin-Lim and ASR (slow steps)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=Path("bench_out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows: list[dict] = []

    def add(step: str, count: int, seconds: float, audio_seconds: float, wer: float | None = None) -> None:
        rows.append({"step": step, "utterances": count, "seconds": round(seconds, 3),
                     "ms_per_utt": round(1000 * seconds / count, 2),
                     "ms_per_audio_s": round(1000 * seconds / audio_seconds, 2),
                     "wer": "" if wer is None else round(wer, 4)})

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        lj = corpus.build_corpus(args.n, root=Path(tmp) / "default", progress=False)
        total_audio = lj.total_seconds()
        add("synthesis (default workers)", len(lj), time.perf_counter() - start, total_audio)
        start = time.perf_counter()
        corpus.build_corpus(args.n, root=Path(tmp) / "one", workers=1, progress=False)
        add("synthesis (1 worker)", len(lj), time.perf_counter() - start, total_audio)

        wavs = [read_wav(u.wav_path)[0] for u in lj]
        start = time.perf_counter()
        mels = [audio.wav_to_mel(w) for w in wavs]
        add("log-mel, one at a time", len(wavs), time.perf_counter() - start, total_audio)
        start = time.perf_counter()
        audio.precompute_mels(lj, cache_root=Path(tmp) / "mels", progress=False)
        add("precompute_mels (read + batched + npz)", len(lj), time.perf_counter() - start, total_audio)

        subset = list(range(min(args.asr_n, len(lj))))
        sub_audio = sum(wavs[i].size for i in subset) / SAMPLE_RATE
        vocoded = {}
        for n_iter in (16, 32):
            start = time.perf_counter()
            vocoded[n_iter] = [audio.mel_to_wav(mels[i], n_iter=n_iter).numpy() for i in subset]
            add(f"Griffin-Lim {n_iter} iterations", len(subset), time.perf_counter() - start, sub_audio)

        refs = [lj[i].normalized for i in subset]
        start = time.perf_counter()
        gt_hyps = asr.transcribe([wavs[i] for i in subset])
        add("ASR, ground-truth eSpeak audio", len(subset), time.perf_counter() - start, sub_audio,
            asr.word_error_rate(refs, gt_hyps).wer)
        start = time.perf_counter()
        gl_hyps = asr.transcribe(vocoded[32])
        add("ASR, mel -> GL32 audio", len(subset), time.perf_counter() - start, sub_audio,
            asr.word_error_rate(refs, gl_hyps).wer)

    print(f"corpus: {len(lj)} utterances, {total_audio / 60:.1f} min of audio, "
          f"{total_audio / len(lj):.2f} s mean; torch threads {torch.get_num_threads()}")
    print(f"{'step':40s} {'utts':>5s} {'seconds':>8s} {'ms/utt':>9s} {'ms/audio s':>10s} {'WER':>6s}")
    for row in rows:
        wer = f"{row['wer']:.3f}" if row["wer"] != "" else ""
        print(f"{row['step']:40s} {row['utterances']:5d} {row['seconds']:8.2f} {row['ms_per_utt']:9.1f} "
              f"{row['ms_per_audio_s']:10.1f} {wer:>6s}")
    path = args.out / "tts_pipeline_speed.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
