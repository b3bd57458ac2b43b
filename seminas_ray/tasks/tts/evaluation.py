"""Final evaluation of a TTS search: train the best architecture and the Transformer-TTS baseline from scratch with
the same budget, synthesise, vocode and measure them against the ground truth, and write the report.

What is measured (the paper used human listeners; these are the offline stand-ins, see ``asr.py``):

- **Intelligibility**: word accuracy (1 - WER) of PocketSphinx on the synthesis of the test sentences (free-running
  for transformer-tts, predicted durations for fastspeech; Griffin-Lim vocoder, as the paper), *relative to* the
  same recogniser's word accuracy on the ground-truth recordings of the same sentences. The ground truth's own WER
  is reported too (on eSpeak speech it is far from 0), and so is the **vocoder's ceiling**: the ground-truth mels
  through the same Griffin-Lim.
- **Robustness**: the share of hard sentences with an error: the stop token never fired, the output/ground-truth
  length ratio is outside [0.67, 1.5], the attention skipped or repeated a word or jumped
  (``training.alignment_errors`` at word level), or the recogniser made >= 3 more word errors than on the
  reference recording of the same sentence (the duration-based backbone has no stop token or attention to fail).
- **Real-time factor** of synthesis: compute seconds (model + Griffin-Lim, the task's threads) per second of speech.

The two systems train as two Ray tasks side by side (one thread each on a 2-core box, one GPU each on a cluster);
the ground-truth transcription is a third task. Everything is seeded: the same run gives the same numbers.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray.exceptions import RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from seminas_ray.reporting import atomic_write_text
from seminas_ray.reporting import write_csv
from seminas_ray.reporting import write_json
from seminas_ray.spaces.tts import TRANSFORMER_TTS_ARCH
from seminas_ray.spaces.tts import TTSSpace
from seminas_ray.tasks.tts import asr as tts_asr
from seminas_ray.tasks.tts.audio import mel_to_wav
from seminas_ray.tasks.tts.ljspeech import SAMPLE_RATE
from seminas_ray.tasks.tts.ljspeech import read_wav
from seminas_ray.tasks.tts.ljspeech import write_wav
from seminas_ray.tasks.tts.backbones import get_backbone
from seminas_ray.tasks.tts.model import TTSModelConfig
from seminas_ray.tasks.tts.model import count_parameters
from seminas_ray.tasks.tts.packing import pack_items
from seminas_ray.tasks.tts.packing import unpack_items
from seminas_ray.tasks.tts.text import separator_ids
from seminas_ray.tasks.tts.training import alignment_errors
from seminas_ray.tasks.tts.training import make_optimizer
from seminas_ray.tasks.tts.training import make_scheduler
from seminas_ray.tasks.tts.training import synthesize
from seminas_ray.tasks.tts.training import train_steps
from seminas_ray.tasks.tts.training import word_spans
from seminas_ray.utils.progress import progress_bar

BASELINE_NAME = "Transformer-TTS (baseline)"
MIN_VOCODER_FRAMES = 8  # Griffin-Lim's reflect padding (n_fft / 2 = 512 samples) needs more than 2 hops of signal
BEST_NAME = "SemiNAS best"


# ------------------------------------------------------------------------------------------------------------
# Work done in the Ray tasks
# ------------------------------------------------------------------------------------------------------------
def shuffled_epochs(batches: list[Any], seed: int) -> Any:
    """Endless batch iterator, reshuffled every pass (a list given to ``train_steps`` would restart each call)."""
    rng = np.random.default_rng([seed, 11])
    while True:
        for j in rng.permutation(len(batches)):
            yield batches[int(j)]


def train_and_synthesize(name: str, key: str, model_cfg: dict[str, Any], train: dict[str, np.ndarray],
                         valid: dict[str, np.ndarray], sets: dict[str, dict[str, Any]],
                         opts: dict[str, Any]) -> dict[str, Any]:
    """Train ``key`` from scratch, then synthesise, vocode and (optionally) recognise every evaluation set.

    ``sets[name] = {"inputs": [...], "gt_frames": [...]}`` (inputs: character arrays for transformer-tts,
    ``(phonemes, stress)`` pairs for fastspeech); ``opts`` holds steps, batch, seed, threads, device, gl_iters,
    max_len_ratio, eval_batch_size, separator_ids, mel_mean, mel_std, asr, n_keep (utterances whose mel, alignment
    and audio come back for plots and samples).
    """
    torch.set_num_threads(max(1, int(opts["threads"])))
    torch.manual_seed(int(opts["seed"]))
    device = torch.device("cuda" if opts.get("device") == "cuda" and torch.cuda.is_available() else "cpu")
    cfg = TTSModelConfig.from_dict(dict(model_cfg))
    backbone = get_backbone(cfg.backbone)
    model = backbone.child(key, cfg).to(device)
    done, last, sums, train_seconds = _train_final(name, model, cfg, backbone, train, opts)
    valid_batches = backbone.batches(unpack_items(valid), cfg, batch_size=16, max_frames=None)
    valid_scores = backbone.score(model, [None], valid_batches, cfg, seed=int(opts["seed"]))[0]

    out_sets: dict[str, Any] = {}
    t1 = time.perf_counter()
    for set_name, spec in sets.items():
        t_set = time.perf_counter()
        records, kept, wavs = synthesize_set(name, set_name, spec, model, cfg, opts)
        synth_seconds = time.perf_counter() - t_set
        audio_seconds = sum(len(w) for w in wavs) / SAMPLE_RATE
        hyps = recognise(wavs, int(opts["seed"]), f"{name}: recognising {set_name} sentences") if opts["asr"] else None
        if hyps is not None:
            for r, h in zip(records, hyps):
                r["hyp"] = h
        out_sets[set_name] = {"records": records, "kept": kept, "synthesis_seconds": round(synth_seconds, 2),
                              "audio_seconds": round(audio_seconds, 2)}
    return {"name": name, "key": key, "backbone": cfg.backbone, "params": count_parameters(model),
            "train_steps": done, "train_seconds": round(train_seconds, 1),
            "ms_per_step": round(1000 * train_seconds / max(done, 1), 1),
            "train_loss_last": last.get("loss"), "train_loss_mean": sums.get("loss", 0.0) / max(done, 1),
            "valid_dfr_tf": valid_scores.get("dfr"), "valid_loss": valid_scores["loss"],
            "eval_seconds": round(time.perf_counter() - t1, 1), "sets": out_sets, "device": str(device),
            "threads": int(opts["threads"])}


def _train_final(name: str, model: Any, cfg: TTSModelConfig, backbone: Any, train: dict[str, np.ndarray],
                 opts: dict[str, Any]) -> tuple[int, dict[str, float], dict[str, float], float]:
    """``opts["steps"]`` training steps from scratch, in chunks of 25 (progress bar);
    returns (steps done, the last chunk's losses, step-weighted loss sums, seconds)."""
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    batches = backbone.batches(unpack_items(train), cfg, batch_size=opts["batch_size"],
                               max_frames=opts["max_frames"], rng=np.random.default_rng(int(opts["seed"])))
    it = shuffled_epochs(batches, int(opts["seed"]))
    steps = int(opts["steps"])
    bar = progress_bar(steps, f"final training: {name}")
    sums: dict[str, float] = {}
    t0 = time.perf_counter()
    done = 0
    last: dict[str, float] = {}
    while done < steps:
        chunk = min(25, steps - done)
        last = train_steps(model, it, chunk, optimizer, scheduler, cfg, losses=backbone.losses)
        for k in backbone.loss_keys:
            sums[k] = sums.get(k, 0.0) + last[k] * chunk
        done += chunk
        if bar is not None:
            bar.update(chunk)
            bar.set_description(f"final training: {name} loss {last['loss']:.3f}")
    if bar is not None:
        bar.close()
    return done, last, sums, time.perf_counter() - t0


def synthesize_set(name: str, set_name: str, spec: dict[str, Any], model: Any, cfg: TTSModelConfig,
                   opts: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[np.ndarray]]:
    """Synthesise + vocode one evaluation set with the backbone's inference (free-running or predicted durations):
    one record per sentence, the first ``opts["n_keep"]`` sentences' mel/alignment/audio, and every wav."""
    synth = _synthesize_set_aligned if cfg.backbone == "fastspeech" else _synthesize_set
    return synth(name, set_name, spec, model, cfg, opts)


def _synthesize_set_aligned(name: str, set_name: str, spec: dict[str, Any], model: Any, cfg: TTSModelConfig,
                            opts: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[np.ndarray]]:
    """Duration-based synthesis (predicted durations, the corpus's mean voice) + Griffin-Lim of one set; the
    records have the same fields as the autoregressive ones (no stop token or attention to fail: both pass), and
    the kept "attention" is the hard phoneme-to-frame alignment the predicted durations give."""
    inputs = spec["inputs"]
    gt_frames = [int(f) for f in spec["gt_frames"]]
    records: list[dict[str, Any]] = []
    wavs: list[np.ndarray] = []
    kept: list[dict[str, Any]] = []
    bs = max(1, int(opts["eval_batch_size"]))
    bar = progress_bar(len(inputs), f"{name}: synthesising {set_name} sentences", unit="utt")
    for start in range(0, len(inputs), bs):
        idx = list(range(start, min(start + bs, len(inputs))))
        width = max(len(inputs[i][0]) for i in idx)
        phon = torch.zeros(len(idx), width, dtype=torch.long)
        stress = torch.zeros(len(idx), width, dtype=torch.long)
        for row, i in enumerate(idx):
            phon[row, : len(inputs[i][0])] = torch.as_tensor(np.array(inputs[i][0], dtype=np.int64))
            stress[row, : len(inputs[i][1])] = torch.as_tensor(np.array(inputs[i][1], dtype=np.int64))
        batch = {"phonemes": phon, "stress": stress, "text_lens": torch.tensor([len(inputs[i][0]) for i in idx]),
                 "style": torch.zeros(len(idx), 3)}
        cap = max(1, int(math.ceil(max(gt_frames[i] for i in idx) * opts["max_len_ratio"])))
        with torch.no_grad():
            model.eval()
            dev = next(model.parameters()).device
            out = model(*(batch[k].to(dev) for k in ("phonemes", "stress", "text_lens", "style")))
        for row, i in enumerate(idx):
            frames = min(int(out.frame_lens[row]), cap)
            mel = out.mel_post[row, :frames].cpu().numpy().T * opts["mel_std"] + opts["mel_mean"]
            # Griffin-Lim's STFT needs a few frames: a barely trained model's very short output gets silence appended
            voc = mel if frames >= MIN_VOCODER_FRAMES else np.pad(
                mel, ((0, 0), (0, MIN_VOCODER_FRAMES - frames)), constant_values=float(np.log(1e-5)))
            wav = mel_to_wav(voc, n_iter=int(opts["gl_iters"]), seed=int(opts["seed"])).numpy()
            wavs.append(wav)
            records.append({"frames": frames, "gt_frames": gt_frames[i], "stop_fired": True,
                            "length_ratio": frames / max(gt_frames[i], 1), "n_skipped": 0, "repeats": 0,
                            "jumps": 0, "attention_ok": True})
            if i < int(opts["n_keep"]):
                durations = out.durations[row, : len(inputs[i][0])].cpu().numpy()
                align = np.zeros((max(frames, 1), len(durations)), np.float32)
                edges = np.concatenate([[0], np.cumsum(durations)])
                for p in range(len(durations)):
                    align[min(edges[p], frames):min(edges[p + 1], frames), p] = 1.0
                kept.append({"index": i, "mel": mel.astype(np.float32), "attn": align,
                             "wav": wav.astype(np.float32)})
        if bar is not None:
            bar.update(len(idx))
    if bar is not None:
        bar.close()
    return records, kept, wavs


def _synthesize_set(name: str, set_name: str, spec: dict[str, Any], model: Any, cfg: TTSModelConfig,
                    opts: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[np.ndarray]]:
    """Free-running synthesis + Griffin-Lim of one evaluation set, ``eval_batch_size`` sentences per call;
    returns (one record per sentence, the first ``n_keep`` sentences' mel/attention/audio, every wav)."""
    chars_list = [np.asarray(c, dtype=np.int64) for c in spec["inputs"]]
    gt_frames = [int(f) for f in spec["gt_frames"]]
    records: list[dict[str, Any]] = []
    wavs: list[np.ndarray] = []
    kept: list[dict[str, Any]] = []
    bs = max(1, int(opts["eval_batch_size"]))
    bar = progress_bar(len(chars_list), f"{name}: synthesising {set_name} sentences", unit="utt")
    for start in range(0, len(chars_list), bs):
        idx = list(range(start, min(start + bs, len(chars_list))))
        caps = [max(cfg.r, int(math.ceil(gt_frames[i] * opts["max_len_ratio"]))) for i in idx]
        width = max(len(chars_list[i]) for i in idx)
        chars = torch.zeros(len(idx), width, dtype=torch.long)
        for row, i in enumerate(idx):
            chars[row, : len(chars_list[i])] = torch.as_tensor(np.array(chars_list[i]))  # a writable copy
        lens = torch.tensor([len(chars_list[i]) for i in idx])
        res = synthesize(model, None, chars, max(caps), text_lens=lens, seed=int(opts["seed"]))
        for row, i in enumerate(idx):
            stop_step = res.stop_steps[row]
            frames = min(res.lengths[row], caps[row])
            fired = stop_step is not None and res.lengths[row] <= caps[row]
            attn = res.attn[row]
            words = word_spans(chars_list[i], opts["separator_ids"])
            align = alignment_errors(attn, words=words or None)
            mel = res.mels[row, :frames].numpy().T * opts["mel_std"] + opts["mel_mean"]  # log-mel (80, frames)
            if frames > 0:
                wav = mel_to_wav(mel, n_iter=int(opts["gl_iters"]), seed=int(opts["seed"])).numpy()
            else:  # nothing synthesised (an untrained model stops at once): silence, counted as a failed sentence
                wav = np.zeros(0, np.float32)
                mel = np.zeros((res.mels.shape[-1], 1), np.float32)
            wavs.append(wav if wav.size else np.zeros(256, np.float32))
            records.append({"frames": frames, "gt_frames": gt_frames[i], "stop_fired": bool(fired),
                            "length_ratio": frames / max(gt_frames[i], 1), "n_skipped": align["n_skipped"],
                            "repeats": align["repeats"], "jumps": align["jumps"],
                            "attention_ok": bool(align["ok"])})
            if i < int(opts["n_keep"]):
                kept.append({"index": i, "mel": mel.astype(np.float32), "attn": attn.numpy().astype(np.float32),
                             "wav": wavs[-1].astype(np.float32)})
        if bar is not None:
            bar.update(len(idx))
    if bar is not None:
        bar.close()
    return records, kept, wavs


def recognise(wavs: list[Any], seed: int, desc: str) -> list[str]:
    """``asr.transcribe`` (one fresh decoder, noise seeded per position) with a progress bar: 1-4 s per utterance."""
    recognizer = tts_asr.Recognizer()
    bar = progress_bar(len(wavs), desc, unit="utt")
    out = []
    for i, wav in enumerate(wavs):
        rate = SAMPLE_RATE
        if isinstance(wav, (str, Path)):
            wav, rate = read_wav(wav)
        out.append(recognizer.recognize(tts_asr.prepare_audio(wav, rate, seed=(seed, i))))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out


def transcribe_ground_truth(paths: dict[str, list[str]], seed: int,
                            vocoded: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """PocketSphinx transcripts of the ground-truth recordings, one fresh decoder per set (as for the systems).

    ``vocoded = {"mels": [normalised mel [T, 80], ...], "mel_mean", "mel_std", "gl_iters"}`` adds the set
    ``"vocoder"``: the ground-truth mels of the test sentences through the same Griffin-Lim as the systems, i.e. the
    vocoder's ceiling (no model can read better than its own mels allow)."""
    out = {name: recognise(list(p), seed, f"ground truth: recognising {name} sentences") for name, p in paths.items()}
    if vocoded is not None:
        wavs = [mel_to_wav(np.asarray(m, dtype=np.float32).T * vocoded["mel_std"] + vocoded["mel_mean"],
                           n_iter=int(vocoded["gl_iters"]), seed=seed).numpy() for m in vocoded["mels"]]
        out["vocoder"] = recognise(wavs, seed, "ground-truth mels through Griffin-Lim: recognising test sentences")
    return out


_train_task = ray.remote(max_retries=0)(train_and_synthesize)
_gt_task = ray.remote(max_retries=1)(transcribe_ground_truth)


# ------------------------------------------------------------------------------------------------------------
# Driver side
# ------------------------------------------------------------------------------------------------------------
def eval_indices(n_total: int, n_wanted: int | None) -> list[int]:
    """``n_wanted`` indices spread evenly over ``range(n_total)`` (all when None): every hard-sentence category."""
    if n_wanted is None or n_wanted >= n_total:
        return list(range(n_total))
    return sorted({int(round(x)) for x in np.linspace(0, n_total - 1, max(1, n_wanted))})


def final_evaluation(out: Path, data: Any, preset: Any, final_cfg: Any, *, best_key: str, seed: int,
                     baseline_key: str | None = None) -> dict[str, Any]:
    """Train + synthesise + measure the best architecture and the baseline (plots, samples and
    ``final_sentences.csv`` go to ``out``); returns the ``final`` part of the report."""
    baseline_key = baseline_key or str(TRANSFORMER_TTS_ARCH)
    use_asr = tts_asr.asr_available()
    resources = ray.cluster_resources()
    gpu = resources.get("GPU", 0) >= 1
    total_cpus = float(resources.get("CPU", 1.0))
    threads = 1 if gpu else max(1, int(total_cpus // 2))
    test_idx = eval_indices(len(data.test), preset.n_eval_test)
    hard_idx = eval_indices(len(data.hard_items), preset.n_eval_hard)
    aligned = final_cfg.backbone == "fastspeech"

    def inputs(item: Any) -> Any:  # characters, or (phonemes, stress)
        return (item[0], item[2]) if aligned else item[0]

    sets = {
        "test": {"inputs": [inputs(data.test[i]) for i in test_idx],
                 "gt_frames": [len(data.test[i][1]) for i in test_idx]},
        "hard": {"inputs": [inputs(data.hard_items[i]) for i in hard_idx],
                 "gt_frames": [len(data.hard_items[i][1]) for i in hard_idx]},
    }
    opts = {"steps": preset.final_steps, "batch_size": preset.final_batch_size, "max_frames": preset.final_max_frames,
            "seed": seed, "threads": threads, "device": "cuda" if gpu else "cpu", "gl_iters": preset.gl_iters,
            "max_len_ratio": preset.max_len_ratio, "eval_batch_size": preset.eval_batch_size,
            "separator_ids": separator_ids(), "mel_mean": data.mel_mean, "mel_std": data.mel_std, "asr": use_asr,
            "n_keep": max(1, preset.n_wav_samples)}
    systems = {BEST_NAME: best_key, BASELINE_NAME: baseline_key}
    print(f"final evaluation: training {len(systems)} models from scratch ({preset.final_steps} steps, "
          f"{final_cfg.hidden}-wide, {threads} thread(s) each{', GPU' if gpu else ''}), then synthesising "
          f"{len(test_idx)} test + {len(hard_idx)} hard sentences each"
          f"{' and recognising them with PocketSphinx' if use_asr else ' (PocketSphinx missing: no ASR metrics)'}",
          flush=True)
    train_ref, valid_ref = ray.put(pack_items(data.train)), ray.put(pack_items(data.valid))
    task_opts: dict[str, Any] = {"num_cpus": threads}
    if gpu:
        task_opts = {"num_cpus": 1, "num_gpus": 1}
    t0 = time.perf_counter()
    refs = {name: _train_task.options(name=f"final_{'best' if name == BEST_NAME else 'baseline'}", **task_opts)
            .remote(name, key, final_cfg.to_dict(), train_ref, valid_ref, sets, opts)
            for name, key in systems.items()}
    gt_ref = None
    if use_asr:
        paths = {"test": [str(data.test_utts[i].wav_path) for i in test_idx],
                 "hard": [str(data.hard_utts[i].wav_path) for i in hard_idx]}
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        # a few seconds of decoding per utterance: it runs beside the two trainings rather than after them
        vocoded = {"mels": [np.asarray(data.test[i][1], dtype=np.float16) for i in test_idx],
                   "mel_mean": data.mel_mean, "mel_std": data.mel_std, "gl_iters": preset.gl_iters}
        gt_ref = _gt_task.options(name="ground_truth_asr", num_cpus=0.01, scheduling_strategy=here).remote(
            paths, seed, vocoded)
    results, failed = {}, []
    for name, ref in refs.items():
        try:
            results[name] = ray.get(ref)
        except (RayTaskError, ValueError, RuntimeError) as exc:  # one system failing must not lose the search
            reason = " ".join(str(getattr(exc, "cause", None) or exc).split())[-300:]
            failed.append({"system": name, "key": systems[name], "error": reason})
            print(f"final evaluation: {name} could not be trained or synthesised ({reason})", flush=True)
    gt_hyps = ray.get(gt_ref) if gt_ref is not None else None
    eval_seconds = time.perf_counter() - t0

    space = TTSSpace(hidden=final_cfg.hidden)
    texts = {"test": [data.test_utts[i].normalized for i in test_idx],
             "hard": [data.hard[i].normalized for i in hard_idx]}
    ids = {"test": [data.test_utts[i].id for i in test_idx], "hard": [data.hard[i].id for i in hard_idx]}
    categories = [data.hard[i].category for i in hard_idx]
    rows, sentence_rows = [], []
    for name, res in results.items():
        row = system_metrics(name, res, texts, gt_hyps, space)
        rows.append(row)
        for set_name in ("test", "hard"):
            for j, rec in enumerate(res["sets"][set_name]["records"]):
                sentence_rows.append({"system": name, "set": set_name, "id": ids[set_name][j],
                                      "category": categories[j] if set_name == "hard" else "",
                                      "text": texts[set_name][j], **rec,
                                      "gt_hyp": gt_hyps[set_name][j] if gt_hyps else None,
                                      "error_reasons": ";".join(row["_reasons"][j]) if set_name == "hard" else ""})
    gt_row = ground_truth_metrics(texts, gt_hyps, len(test_idx), len(hard_idx))
    for row in rows:
        row.pop("_reasons", None)
    rows += failed  # an error row per system that could not be evaluated
    files = write_artifacts(out, data, results, test_idx, hard_idx, ids, texts, preset)
    write_csv(out / "final_sentences.csv", sentence_rows)
    return {"systems": rows, "ground_truth": gt_row, "eval_seconds": round(eval_seconds, 1),
            "n_test": len(test_idx), "n_hard": len(hard_idx), "asr": use_asr, "backbone": final_cfg.backbone,
            "final_model": final_cfg.to_dict(), "final_steps": preset.final_steps, "gl_iters": preset.gl_iters,
            "files": files}


#: report.json's ``systems[].name`` of each system (a fixed shape that scripts rely on; see docs/results_schema.md)
SHORT_NAMES = {BEST_NAME: "best", BASELINE_NAME: "baseline"}


def summary(final: dict[str, Any]) -> dict[str, Any]:
    """The fixed-shape head of report.json: ``systems`` (``name``, ``label``, ``key``, ``word_accuracy``,
    ``relative_intelligibility``, ``hard_sentence_error_rate``, ``params``, ``real_time_factor``, ``samples``),
    ``ground_truth_word_accuracy``, ``vocoder_ceiling_word_accuracy``, ``n_test_sentences``, ``n_hard_sentences``.
    Values the run could not measure (no recogniser, a failed system) are ``None``."""
    gt = final["ground_truth"]
    samples = final.get("files", {}).get("wav", [])
    systems = []
    for row in final["systems"]:
        name = SHORT_NAMES.get(row["system"], row["system"])
        systems.append({
            "name": name, "label": row["system"], "key": row.get("key"),
            "word_accuracy": row.get("word_accuracy"), "relative_intelligibility": row.get("intelligibility_relative"),
            "hard_sentence_error_rate": row.get("hard_error_rate"), "params": row.get("params"),
            "real_time_factor": row.get("real_time_factor"),
            "samples": [f for f in samples if f.endswith(f"_{name}.wav")],
            **({"error": row["error"]} if "error" in row else {})})
    return {"systems": systems, "ground_truth_word_accuracy": gt.get("word_accuracy"),
            "vocoder_ceiling_word_accuracy": gt.get("vocoder_word_accuracy"),
            "n_test_sentences": final["n_test"], "n_hard_sentences": final["n_hard"]}


def system_metrics(name: str, res: dict[str, Any], texts: dict[str, list[str]],
                   gt_hyps: dict[str, list[str]] | None, space: Any) -> dict[str, Any]:
    """One row of the results table from a system's task result."""
    test, hard = res["sets"]["test"]["records"], res["sets"]["hard"]["records"]
    row: dict[str, Any] = {
        "system": name, "key": res["key"], "arch": space.describe(res["key"]), "params": res["params"],
        "train_steps": res["train_steps"], "train_minutes": round(res["train_seconds"] / 60, 1),
        "ms_per_step": res["ms_per_step"], "train_loss_last": res["train_loss_last"],
        "valid_dfr_teacher_forced": res["valid_dfr_tf"], "valid_loss": res["valid_loss"],
        # seconds of compute (model + Griffin-Lim, the task's threads) per second of speech, on the test sentences
        "real_time_factor": round(res["sets"]["test"]["synthesis_seconds"]
                                  / max(res["sets"]["test"]["audio_seconds"], 1e-9), 4),
        "synthesis_threads": res.get("threads"),
        "test_stop_rate": float(np.mean([r["stop_fired"] for r in test])),
        "test_median_length_ratio": float(np.median([r["length_ratio"] for r in test])),
        "test_attention_ok_rate": float(np.mean([r["attention_ok"] for r in test])),
    }
    if gt_hyps is not None:
        intel = tts_asr.intelligibility(texts["test"], [r["hyp"] for r in test], gt_hyps["test"])
        row.update(word_accuracy=intel.accuracy, gt_word_accuracy=intel.gt_accuracy,
                   intelligibility_relative=intel.relative, wer=intel.wer.wer)
    rob = tts_asr.robustness_errors(
        texts["hard"], stop_fired=[r["stop_fired"] for r in hard], frames=[r["frames"] for r in hard],
        gt_frames=[r["gt_frames"] for r in hard], attention_failed=[not r["attention_ok"] for r in hard],
        hyps=[r["hyp"] for r in hard] if gt_hyps is not None else None,
        gt_hyps=gt_hyps["hard"] if gt_hyps is not None else None)
    row.update(hard_error_rate=rob.error_rate, **{f"hard_{k}": v for k, v in rob.counts.items()})
    if gt_hyps is not None:
        row["hard_wer"] = tts_asr.word_error_rate(texts["hard"], [r["hyp"] for r in hard]).wer
    row["_reasons"] = rob.reasons
    return row


def ground_truth_metrics(texts: dict[str, list[str]], gt_hyps: dict[str, list[str]] | None, n_test: int,
                         n_hard: int) -> dict[str, Any]:
    """The ground-truth row: the recogniser's own errors on the reference recordings (the ceiling)."""
    row: dict[str, Any] = {"system": "Ground truth (recordings)", "n_test": n_test, "n_hard": n_hard}
    if gt_hyps is not None:
        test = tts_asr.word_error_rate(texts["test"], gt_hyps["test"])
        hard = tts_asr.word_error_rate(texts["hard"], gt_hyps["hard"])
        row.update(wer=test.wer, word_accuracy=1 - test.wer, intelligibility_relative=1.0, hard_wer=hard.wer)
        if "vocoder" in gt_hyps:
            vocoder = tts_asr.word_error_rate(texts["test"], gt_hyps["vocoder"])
            row.update(vocoder_wer=vocoder.wer, vocoder_word_accuracy=1 - vocoder.wer)
    return row


# ------------------------------------------------------------------------------------------------------------
# Files: wavs and plots
# ------------------------------------------------------------------------------------------------------------
def write_artifacts(out: Path, data: Any, results: dict[str, Any], test_idx: list[int], hard_idx: list[int],
                    ids: dict[str, list[str]], texts: dict[str, list[str]], preset: Any) -> dict[str, list[str]]:
    """samples/*.wav (ground truth, best, baseline) and plots/*.png (attention, mel); returns relative paths."""
    # matplotlib only when plotting (~0.4 s): the Ray training tasks import this module too. Figures are built with
    # the object API, which renders through Agg without pyplot, so no process-wide backend is switched.
    from matplotlib.figure import Figure

    samples, plots = out / "samples", out / "plots"
    samples.mkdir(parents=True, exist_ok=True)
    plots.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {"wav": [], "png": []}
    short = {BEST_NAME: "best", BASELINE_NAME: "baseline"}
    n = min(preset.n_wav_samples, len(test_idx))
    for j in range(n):
        uid = ids["test"][j]
        gt_wav, rate = read_wav(data.test_utts[test_idx[j]].wav_path)
        files["wav"].append(str(write_wav(samples / f"{uid}_ground_truth.wav", gt_wav, rate).relative_to(out)))
        gt_mel = data.test[test_idx[j]][1].T * data.mel_std + data.mel_mean
        gl = mel_to_wav(gt_mel, n_iter=preset.gl_iters).numpy()
        files["wav"].append(str(write_wav(samples / f"{uid}_ground_truth_griffin_lim.wav", _peak(gl)).relative_to(out)))
        for name, res in results.items():
            kept = {k["index"]: k for k in res["sets"]["test"]["kept"]}
            if j in kept:
                path = samples / f"{uid}_{short[name]}.wav"
                files["wav"].append(str(write_wav(path, _peak(kept[j]["wav"])).relative_to(out)))

    # attention: rows = systems, columns = first test sentence and first hard sentence
    names = list(results)
    if not names:
        return files
    fig = Figure(figsize=(11, 3.2 * len(names)), dpi=110)
    axes = fig.subplots(len(names), 2, squeeze=False)
    for r, name in enumerate(names):
        for c, set_name in enumerate(("test", "hard")):
            ax = axes[r][c]
            kept = results[name]["sets"][set_name]["kept"]
            if kept:
                a = kept[0]["attn"]
                ax.imshow(a.T, aspect="auto", origin="lower", interpolation="nearest", cmap="viridis")
                ax.set_title(f"{short[name]}: {ids[set_name][0]} ({'test' if set_name == 'test' else 'hard'})",
                             fontsize=9)
            ax.set_xlabel("frame" if results[name].get("backbone") == "fastspeech" else "decoder step")
            ax.set_ylabel("phoneme" if results[name].get("backbone") == "fastspeech" else "character")
    aligned = any(res.get("backbone") == "fastspeech" for res in results.values())
    fig.suptitle("Phoneme-to-frame alignment from the predicted durations" if aligned else
                 "Encoder-decoder attention (most focused head), free-running synthesis", fontsize=10)
    fig.tight_layout()
    path = plots / "attention.png"
    fig.savefig(path)
    files["png"].append(str(path.relative_to(out)))

    # mel: ground truth vs the two systems for the first test sentence
    gt = data.test[test_idx[0]][1].T * data.mel_std + data.mel_mean
    panels = [("ground truth", gt)] + [(short[name], results[name]["sets"]["test"]["kept"][0]["mel"])
                                       for name in names if results[name]["sets"]["test"]["kept"]]
    fig = Figure(figsize=(9, 2.3 * len(panels)), dpi=110)
    axes = fig.subplots(len(panels), 1, squeeze=False)
    for ax, (label, mel) in zip(axes[:, 0], panels):
        ax.imshow(mel, aspect="auto", origin="lower", interpolation="nearest", cmap="magma", vmin=-11.5, vmax=2.0)
        ax.set_title(f"{label}: {texts['test'][0][:80]}", fontsize=9)
        ax.set_ylabel("mel bin")
    axes[-1][0].set_xlabel("frame")
    fig.tight_layout()
    path = plots / "mel.png"
    fig.savefig(path)
    files["png"].append(str(path.relative_to(out)))
    return files


def _peak(wav: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Peak-normalise for listening (Griffin-Lim output has an arbitrary gain)."""
    m = float(np.abs(wav).max()) if wav.size else 0.0
    return (wav * (peak / m)).astype(np.float32) if m > 0 else wav.astype(np.float32)


# ------------------------------------------------------------------------------------------------------------
# report.md / report.json
# ------------------------------------------------------------------------------------------------------------
def _fmt(value: Any, pct: bool = False, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if pct:
        return f"{100 * float(value):.1f} %"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def write_report(out: Path, report: dict[str, Any]) -> None:
    """``report.json`` (everything) and ``report.md`` (the tables and an honest reading of them)."""
    write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", render_markdown(report))


def _listener_table(report: dict[str, Any]) -> list[str]:
    """The report's first table: what a listener can check, per system, with links to the samples."""
    lines = ["| system | relative intelligibility | word accuracy (ASR) | hard-sentence errors | params | "
             "real-time factor (CPU) | samples |", "|---|---|---|---|---|---|---|"]
    for sys_row in report.get("systems", []):
        if "error" in sys_row:
            lines.append(f"| {sys_row['label']} | error: {sys_row['error']} | – | – | – | – | – |")
            continue
        links = ", ".join(f"[{Path(f).stem.split('_', 1)[0]}]({f})" for f in sys_row.get("samples", [])) or "–"
        params = sys_row.get("params")
        lines.append(f"| {sys_row['label']} (`{sys_row['name']}`) | "
                     f"{_fmt(sys_row.get('relative_intelligibility'), True)} | "
                     f"{_fmt(sys_row.get('word_accuracy'), True)} | {_fmt(sys_row.get('hard_sentence_error_rate'), True)} | "
                     f"{'–' if params is None else f'{params / 1e6:.2f} M'} | "
                     f"{_fmt(sys_row.get('real_time_factor'), digits=3)} | {links} |")
    gt_links = ", ".join(f"[{Path(f).stem.split('_', 1)[0]}]({f})" for f in
                         report.get("final", {}).get("files", {}).get("wav", []) if f.endswith("_ground_truth.wav"))
    voc_links = ", ".join(f"[{Path(f).stem.split('_', 1)[0]}]({f})" for f in
                          report.get("final", {}).get("files", {}).get("wav", [])
                          if f.endswith("_ground_truth_griffin_lim.wav"))
    gt, voc = report.get("ground_truth_word_accuracy"), report.get("vocoder_ceiling_word_accuracy")
    lines.append(f"| Ground truth (recordings) | 100 % | {_fmt(gt, True)} | – | – | – | {gt_links or '–'} |")
    rel = voc / gt if voc is not None and gt else None
    lines.append(f"| Vocoder ceiling (ground-truth mels through Griffin-Lim) | {_fmt(rel, True)} | {_fmt(voc, True)} "
                 f"| – | – | – | {voc_links or '–'} |")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable report: the listener's table first, then the search and the details."""
    s, data, final = report["search"], report["data"], report.get("final")
    metric = s.get("reward", "dfr")
    wall = report.get("wall_seconds")
    backbone = report.get("backbone", "transformer-tts")
    lines = [f"# SemiNAS TTS search: preset `{report['preset']}`, backbone `{backbone}`, {report['setting']} setting, "
             f"seed {report['seed']}", "",
             f"Data: {data['source']} — {data['train']} training / {data['valid']} validation / {data['test']} test "
             f"utterances, {data['hard']} hard sentences."
             + (f" Whole run: {wall / 60:.1f} min." if wall else ""), ""]
    if final is not None:
        lines += [f"What a listener can check ({report.get('n_test_sentences')} test sentences, "
                  f"{report.get('n_hard_sentences')} hard sentences; relative intelligibility = word accuracy of "
                  "PocketSphinx on the system's speech / on the ground-truth recordings; real-time factor = seconds "
                  "of compute (model + Griffin-Lim, one thread) per second of speech):", ""]
        lines += _listener_table(report) + [""]
    for note in data.get("notes", []):
        lines.append(f"- {note}")
    reward_text = ("teacher-forced diagonal focus rate (DFR) of the encoder-decoder attention on the validation set"
                   if metric == "dfr" else "validation loss (mel L1 before and after the postnet + log-duration MSE, "
                   "true durations) on the shared weights, lower is better")
    rng = s.get(f"final_{metric}_range", [float("nan"), float("nan")])
    lines += ["", "## Search", "",
              f"{s['n_evaluated']} architectures scored on the weight-sharing supernet ({s['n_failed']} failed) in "
              f"{s['n_rounds']} supernet rounds, {s['search_seconds'] / 60:.1f} min. Reward: {reward_text}, told to "
              f"SemiNAS after the round's supernet training. Selection: every scored architecture re-scored on the "
              f"final supernet weights ({metric} {rng[0]:.3f}–{rng[1]:.3f}).", "",
              f"**Best architecture**: `{s['best']['key']}` — {s['best']['describe']} (final {metric} "
              f"{_fmt(s['best'].get(f'final_{metric}'), digits=4)}, reward {_fmt(s['best'].get(metric), digits=4)} in "
              f"round {s['best']['round']}).", "",
              f"| supernet round | pool | steps | ms/step | train s | {metric} min | {metric} max |",
              "|---|---|---|---|---|---|---|"]
    for r in s.get("supernet_rounds", []):
        lines.append(f"| {r['round']} | {r['pool_size']} | {r['supernet_steps']} | {r['ms_per_step']} | "
                     f"{r['supernet_train_seconds']} | {r[f'{metric}_min']:.3f} | {r[f'{metric}_max']:.3f} |")
    lines += ["", "![search curve](search_curve.png)", ""]
    if final is None:
        lines += ["The final evaluation was skipped (`--no-final`).", ""]
        return "\n".join(lines) + "\n"
    gt = final["ground_truth"]
    synthesis = ("free-running" if backbone == "transformer-tts" else "with predicted durations")
    lines += ["## Final evaluation", "",
              f"Both models trained from scratch for {final['final_steps']} steps "
              f"({final['final_model']['hidden']}-wide), then synthesised {synthesis} (Griffin-Lim vocoder, "
              f"{final['gl_iters']} iterations) {final['n_test']} test and {final['n_hard']} hard sentences.", "",
              "| system | params | train min | valid loss | valid DFR (TF) | word acc. (ASR) | relative to GT | WER | "
              "hard-sentence errors | no stop / length / attention / ASR | length ratio (test) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in final["systems"]:
        if "error" in r:
            lines.append(f"| {r['system']} | error: {r['error']} |" + " – |" * 9)
            continue
        lines.append(
            f"| {r['system']} | {r['params'] / 1e6:.2f} M | {r['train_minutes']} | {_fmt(r.get('valid_loss'))} | "
            f"{_fmt(r.get('valid_dfr_teacher_forced'))} | {_fmt(r.get('word_accuracy'), True)} | "
            f"{_fmt(r.get('intelligibility_relative'), True)} | {_fmt(r.get('wer'), True)} | "
            f"{_fmt(r['hard_error_rate'], True)} | {r['hard_no_stop']} / {r['hard_length']} / {r['hard_attention']} / "
            f"{r['hard_asr']} | {_fmt(r['test_median_length_ratio'], digits=2)} |")
    lines.append(f"| {gt['system']} | – | – | – | – | {_fmt(gt.get('word_accuracy'), True)} | 100 % | "
                 f"{_fmt(gt.get('wer'), True)} | – | – | 1.00 |")
    if gt.get("vocoder_word_accuracy") is not None:
        lines.append(f"| Ground-truth mels through Griffin-Lim (vocoder ceiling) | – | – | – | – | "
                     f"{_fmt(gt['vocoder_word_accuracy'], True)} | "
                     f"{_fmt(gt['vocoder_word_accuracy'] / gt['word_accuracy'] if gt.get('word_accuracy') else None, True)}"
                     f" | {_fmt(gt.get('vocoder_wer'), True)} | – | – | – |")
    lines += ["", "Architectures:", ""]
    for r in final["systems"]:
        lines.append(f"- {r['system']}: `{r['key']}` — {r.get('arch', 'not evaluated: ' + str(r.get('error')))}")
    figure = ("Encoder-decoder attention" if backbone == "transformer-tts" else "phoneme-to-frame alignment from the "
              "predicted durations")
    lines += ["", reading(report), "",
              f"Figures: [alignment](plots/attention.png) ({figure}), [mel spectrograms](plots/mel.png); audio in "
              "`samples/` (ground truth, ground truth through Griffin-Lim, best, baseline). Per-sentence results "
              "with the error reasons: `final_sentences.csv`; every searched architecture: `evaluations.csv`; "
              "rounds: `rounds.csv`.", "",
              "![attention](plots/attention.png)", "", "![mel](plots/mel.png)", "",
              "## Departures from the paper", "",
              "- Speech corpus: " + ("LJSpeech as the paper." if not data["source"].startswith("espeak") else
                                     "eSpeak NG synthetic speech of WordNet sentences instead of LJSpeech "
                                     "(no download at run time)."),
              "- Judge: PocketSphinx word accuracy relative to the ground truth instead of human raters; robustness "
              "errors from the stop token, length, attention and ASR instead of listeners.",
              ("- Search reward: DFR *teacher-forced* (the paper decodes free-running) on a supernet trained with a "
               "guided-attention loss (not in the paper) so that minutes of CPU training align at all."
               if backbone == "transformer-tts" else
               "- Backbone: duration-based (FastSpeech-style, as the authors' follow-up LightSpeech) over the same "
               "11 ops, with phoneme input and eSpeak's exact durations, instead of the autoregressive Transformer "
               "TTS: there is no attention to skip or repeat and no stop token, so the paper's attention-robustness "
               "claims are not tested by this backbone (use `--backbone transformer-tts`). Reward: validation loss, "
               "not DFR (which needs attention)."),
              "- SemiNAS scaled down (N, M, round size and count; see config.yaml); top-K seeds in descending order "
              "(the authors' TTS code sorted ascending, starting from the worst architectures).",
              "- Final training: minutes on a CPU instead of 80k updates on GPUs (preset `paper` restores the paper's "
              "sizes).", ""]
    return "\n".join(lines) + "\n"


def reading(report: dict[str, Any]) -> str:
    """A plain statement of what this budget can and cannot show, with the measured numbers."""
    final = report["final"]
    gt = final["ground_truth"]
    rows = {r["system"]: r for r in final["systems"] if "error" not in r}
    best, base = rows.get(BEST_NAME), rows.get(BASELINE_NAME)
    parts = ["**What this run can and cannot show.**"]
    if gt.get("wer") is not None:
        parts.append(f"The recogniser itself gets {100 * gt['wer']:.0f} % of the words of the ground-truth "
                     f"recordings wrong, so word accuracy is only meaningful relative to that ceiling "
                     f"({100 * gt['word_accuracy']:.0f} %).")
        if gt.get("vocoder_word_accuracy") is not None:
            parts.append(f"Through Griffin-Lim the ground-truth mels read at {100 * gt['vocoder_word_accuracy']:.0f} % "
                         "word accuracy: the most a model whose mels were perfect could reach with this vocoder.")
    if best is not None and base is not None and best.get("wer") is not None:
        both_bad = best["wer"] > 0.9 and base["wer"] > 0.9
        parts.append(f"After {best['train_steps']} training steps the best architecture reaches "
                     f"{100 * best['intelligibility_relative']:.0f} % of the ground truth's word accuracy and the "
                     f"baseline {100 * base['intelligibility_relative']:.0f} %.")
        n = max(final["n_test"], 1)
        parts.append(f"With {n} test sentences a difference of a few points is within noise.")
        if both_bad:
            parts.append("Both are essentially unintelligible to the recogniser: the intelligibility comparison here "
                         "does not separate the two.")
    if best is not None and base is not None:
        diff = best["hard_error_rate"] - base["hard_error_rate"]
        noise = 100 * 2 * math.sqrt(0.5 / max(final["n_hard"], 1))  # 2 standard errors of a difference at p=0.5
        parts.append(f"On the hard sentences {100 * best['hard_error_rate']:.0f} % (best) vs "
                     f"{100 * base['hard_error_rate']:.0f} % (baseline) have an error; with {final['n_hard']} "
                     f"sentences a difference below about {noise:.0f} points is within noise "
                     f"({'best better' if diff < 0 else 'baseline better' if diff > 0 else 'equal'}).")
        if best.get("valid_dfr_teacher_forced") is not None and base.get("valid_dfr_teacher_forced") is not None:
            parts.append(f"Teacher-forced DFR on the validation set: {best['valid_dfr_teacher_forced']:.3f} (best) vs "
                         f"{base['valid_dfr_teacher_forced']:.3f} (baseline).")
    parts.append("One seed, one run: treat differences as indications, not results (benchmarks/tts_search_value.py "
                 "repeats the comparison over seeds).")
    return " ".join(parts)


__all__ = ["BASELINE_NAME", "BEST_NAME", "eval_indices", "final_evaluation", "render_markdown", "system_metrics",
           "recognise", "shuffled_epochs", "summary", "synthesize_set", "train_and_synthesize",
           "transcribe_ground_truth", "write_report"]
