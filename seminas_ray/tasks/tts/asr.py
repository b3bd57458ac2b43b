"""Offline intelligibility and robustness metrics for synthesised speech (pocketsphinx 5.1.1 + word error rate).

The paper rated intelligibility with human listeners. Here an offline recogniser stands in for them: the PyPI wheel
``pocketsphinx==5.1.1`` bundles its en-us acoustic model, the CMU dictionary and a 3-gram language model, so nothing
is downloaded. It is a weak judge of formant speech. On clean eSpeak klatt3 audio its word error rate is already
about 27-39 %, so every score is reported relative to the same recogniser on the ground-truth audio (``intelligibility``).

Audio goes through a fixed front end (``prepare_audio``): it is resampled 22,050 -> 16,000 Hz
(``resample_poly(320, 441)``), peak-normalised to 0.5, and given seeded white noise at 0.001 RMS (about -60 dBFS)
before conversion to int16. eSpeak writes exact digital silence, which pocketsphinx's front end handles badly, and
the noise floor cuts its WER by half. The same front end is applied to every condition: ground truth, vocoded audio
and model output.
pocketsphinx keeps some state across utterances within one decoder, so ``transcribe`` makes a fresh decoder for
each call (one call per evaluated system) and decodes in the order given.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from seminas_ray.tasks.tts import text as tts_text
from seminas_ray.tasks.tts.ljspeech import SAMPLE_RATE, read_wav

ASR_SAMPLE_RATE = 16000
PEAK = 0.5
NOISE_RMS = 0.001
LENGTH_RATIO_RANGE = (0.67, 1.5)
EXCESS_WORD_ERRORS = 3
_INSTALL_HINT = "offline ASR needs the PyPI package pocketsphinx==5.1.1 (it bundles the en-us model): pip install pocketsphinx==5.1.1"


def asr_available() -> bool:
    """Whether pocketsphinx can be imported (the ASR metrics are optional; the DFR search metric does not need them)."""
    try:  # imported here, not at the top: an optional dependency at run time (without it the ASR metrics are skipped)
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


def prepare_audio(wav: np.ndarray, sample_rate: int = SAMPLE_RATE, seed: int | Sequence[int] = 0) -> np.ndarray:
    """The recogniser's input: 16 kHz int16, peak 0.5, plus seeded white noise at 0.001 RMS (see the module docstring)."""
    x = np.asarray(wav, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("prepare_audio got an empty signal")
    if sample_rate != ASR_SAMPLE_RATE:
        g = math.gcd(ASR_SAMPLE_RATE, int(sample_rate))
        x = resample_poly(x, ASR_SAMPLE_RATE // g, int(sample_rate) // g)  # 22,050 Hz: up 320, down 441
    peak = float(np.abs(x).max())
    if peak > 0:
        x = x * (PEAK / peak)
    x = x + np.random.default_rng(seed).normal(0.0, NOISE_RMS, x.size)
    return np.round(np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)


class Recognizer:
    """A pocketsphinx decoder with the bundled en-us model and its generic 3-gram LM; use one per evaluated system."""

    def __init__(self) -> None:
        try:  # optional dependency at run time (see asr_available): fail with the install hint, not at import
            from pocketsphinx import Decoder
        except ImportError as err:
            raise ImportError(_INSTALL_HINT) from err
        self._decoder = Decoder(samprate=ASR_SAMPLE_RATE, loglevel="FATAL")

    def recognize(self, samples: np.ndarray) -> str:
        """Transcript (lowercase words) of 16 kHz int16 samples from ``prepare_audio``."""
        if samples.dtype != np.int16:
            raise ValueError(f"Recognizer.recognize expects int16 samples from prepare_audio, got {samples.dtype}")
        self._decoder.start_utt()
        self._decoder.process_raw(samples.tobytes(), full_utt=True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


def transcribe(wavs: Sequence[np.ndarray | str | Path], sample_rate: int = SAMPLE_RATE, seed: int = 0) -> list[str]:
    """Transcripts of several recordings (float arrays at ``sample_rate``, or WAV paths), decoded in the order given.

    A fresh decoder per call and noise seeded per position (``(seed, i)``) make the result a function of the inputs
    alone. Costs about 0.5-0.9 s per utterance on intelligible speech, and up to 2-4 s on garbage.
    """
    recognizer = Recognizer()
    out = []
    for i, wav in enumerate(wavs):
        if isinstance(wav, (str, Path)):
            wav, rate = read_wav(wav)
        else:
            rate = sample_rate
        out.append(recognizer.recognize(prepare_audio(wav, rate, seed=(seed, i))))
    return out


def words(sentence: str) -> list[str]:
    """Scoring tokens: the text normalised as the model reads it (numbers spelt out, lowercase), letters and
    apostrophes only, with hyphens splitting words ("twenty-one" -> "twenty", "one", as in the recogniser's output)."""
    return [w.strip("'") for w in re.split(r"[^a-z']+", tts_text.normalize(sentence)) if w.strip("'")]


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between word sequences: substitutions + deletions + insertions, each costing 1."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class WERResult:
    """Corpus word error rate (total errors / total reference words) with the per-sentence counts behind it."""

    wer: float
    errors: list[int]
    ref_words: list[int]

    @property
    def per_sentence(self) -> list[float]:
        """Each sentence's own WER (``nan`` for an empty reference)."""
        return [e / n if n else float("nan") for e, n in zip(self.errors, self.ref_words)]


def word_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> WERResult:
    """WER of transcripts ``hyps`` against reference texts ``refs`` (both normalised by ``words``). It can exceed 1."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} transcripts")
    ref_words = [words(r) for r in refs]
    errors = [edit_distance(r, words(h)) for r, h in zip(ref_words, hyps)]
    total = sum(len(r) for r in ref_words)
    if total == 0:
        raise ValueError("the references hold no words, so the WER is undefined")
    return WERResult(sum(errors) / total, errors, [len(r) for r in ref_words])


@dataclass(frozen=True)
class Intelligibility:
    """Word accuracy (1 - WER) of a system, of the ground truth through the same recogniser, and their ratio.

    ``relative`` is the proxy for the paper's intelligibility rate: 1.0 means "as intelligible to the recogniser as
    the ground-truth recordings". It can exceed 1 by chance, and it is ``nan`` when the ground truth's accuracy is <= 0.
    """

    accuracy: float
    gt_accuracy: float
    relative: float
    wer: WERResult
    gt_wer: WERResult


def intelligibility(refs: Sequence[str], hyps: Sequence[str], gt_hyps: Sequence[str]) -> Intelligibility:
    """Word accuracy of ``hyps`` relative to the recogniser's accuracy on the ground truth (``gt_hyps``)."""
    system, truth = word_error_rate(refs, hyps), word_error_rate(refs, gt_hyps)
    accuracy, gt_accuracy = 1.0 - system.wer, 1.0 - truth.wer
    relative = accuracy / gt_accuracy if gt_accuracy > 0 else float("nan")
    return Intelligibility(accuracy, gt_accuracy, relative, system, truth)


@dataclass(frozen=True)
class RobustnessResult:
    """Automatic sentence error rate on hard sentences; ``reasons[i]`` lists why sentence i counts as an error."""

    error_rate: float
    errors: list[bool]
    reasons: list[list[str]]
    counts: dict[str, int] = field(default_factory=dict)


def robustness_errors(
    refs: Sequence[str],
    *,
    stop_fired: Sequence[bool] | None = None,
    frames: Sequence[int] | None = None,
    gt_frames: Sequence[int] | None = None,
    hyps: Sequence[str] | None = None,
    gt_hyps: Sequence[str] | None = None,
    attention_failed: Sequence[bool] | None = None,
    ratio_range: tuple[float, float] = LENGTH_RATIO_RANGE,
    excess_word_errors: int = EXCESS_WORD_ERRORS,
) -> RobustnessResult:
    """Which hard sentences a model got wrong, from whatever evidence is given (at least one criterion).

    A sentence is an error when any applicable check fails:
    * ``no_stop``: the stop token never fired (decoding hit its length limit), from ``stop_fired``;
    * ``length``: output/ground-truth frame ratio outside ``ratio_range`` ([0.67, 1.5]), from ``frames``/``gt_frames``;
    * ``attention``: the model's own skip/repeat check on the attention alignment flagged it (``attention_failed``);
    * ``asr``: the recogniser made at least ``excess_word_errors`` (3) more word errors on the output than on the
      ground truth of the same sentence (``hyps``/``gt_hyps``). Plain exact match is useless here, because the
      recogniser already gets most ground-truth sentences wrong.
    """
    n = len(refs)
    given = {"stop_fired": stop_fired, "frames": frames, "gt_frames": gt_frames, "hyps": hyps, "gt_hyps": gt_hyps,
             "attention_failed": attention_failed}
    for name, values in given.items():
        if values is not None and len(values) != n:
            raise ValueError(f"{name} has {len(values)} entries for {n} sentences")
    if (frames is None) != (gt_frames is None) or (hyps is None) != (gt_hyps is None):
        raise ValueError("frames and gt_frames, and hyps and gt_hyps, must be given together")
    if all(v is None for v in given.values()):
        raise ValueError("robustness_errors needs at least one criterion (stop_fired, frames, attention_failed or hyps)")
    reasons: list[list[str]] = [[] for _ in range(n)]
    if stop_fired is not None:
        for i, fired in enumerate(stop_fired):
            if not fired:
                reasons[i].append("no_stop")
    if frames is not None and gt_frames is not None:
        low, high = ratio_range
        for i, (f, g) in enumerate(zip(frames, gt_frames)):
            if g <= 0:
                raise ValueError(f"gt_frames[{i}] = {g}: ground-truth lengths must be positive")
            if not low <= f / g <= high:
                reasons[i].append("length")
    if attention_failed is not None:
        for i, failed in enumerate(attention_failed):
            if failed:
                reasons[i].append("attention")
    if hyps is not None and gt_hyps is not None:
        system, truth = word_error_rate(refs, hyps), word_error_rate(refs, gt_hyps)
        for i, (e, g) in enumerate(zip(system.errors, truth.errors)):
            if e - g >= excess_word_errors:
                reasons[i].append("asr")
    errors = [bool(r) for r in reasons]
    counts = {k: sum(k in r for r in reasons) for k in ("no_stop", "length", "attention", "asr")}
    return RobustnessResult(sum(errors) / n if n else float("nan"), errors, reasons, counts)
