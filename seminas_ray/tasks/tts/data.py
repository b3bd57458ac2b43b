"""The TTS task's data: the corpus (LJSpeech-1.1 given with ``--data``, or the embedded eSpeak NG corpus, built once
and cached), the paper's low-resource or robustness split, and log-mels (cached), as items of the backbone's kind:
``(chars, normalised mel)`` for transformer-tts, ``(phonemes, mel, stress, durations, style)`` for fastspeech (from
the corpus's eSpeak phoneme alignment and jitter parameters)."""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from seminas_ray.tasks.tts import phonemes as tts_phonemes
from seminas_ray.tasks.tts import text as tts_text
from seminas_ray.tasks.tts.audio import HOP_LENGTH
from seminas_ray.tasks.tts.audio import load_mels
from seminas_ray.tasks.tts.audio import precompute_mels
from seminas_ray.tasks.tts.corpus import build_corpus
from seminas_ray.tasks.tts.corpus import build_hard_corpus
from seminas_ray.tasks.tts.corpus import load_hard_sentences
from seminas_ray.tasks.tts.corpus import read_alignments
from seminas_ray.tasks.tts.corpus import read_synth_params
from seminas_ray.tasks.tts.duration_training import style_vector
from seminas_ray.tasks.tts.ljspeech import LJSpeechCorpus
from seminas_ray.tasks.tts.ljspeech import low_resource_split
from seminas_ray.tasks.tts.presets import TTSPreset

SETTINGS = ("low-resource", "robustness")
DATA_SPLIT_SEED = 0  # the data split is fixed, so runs with different --seed compare on the same sentences


@dataclass
class TTSData:
    """The prepared data of one run: (chars, normalised mel [frames, 80]) items and what the evaluation needs."""

    source: str                      # "espeak-ng (embedded)" or the --data folder
    setting: str
    backbone: str                    # whose items these are (backbones.py)
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
        return {"source": self.source, "setting": self.setting, "backbone": self.backbone,
                "corpus": str(self.corpus_root),
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


def prepare_data(data: str | None, setting: str, preset: TTSPreset, *, backbone: str = "transformer-tts",
                 progress: bool = True) -> TTSData:
    """Corpus, split and log-mels (all cached) for ``setting``, as ``backbone``'s items; see the module docstring."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose one of {SETTINGS}")
    if backbone == "fastspeech" and data is not None:
        raise ValueError(f"--data {data}: the fastspeech backbone trains on eSpeak's phoneme durations, which only "
                         "the embedded corpus has; use --backbone transformer-tts (or --preset paper) with --data")
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

    aligned = backbone == "fastspeech"
    align = {**read_alignments(corpus), **read_alignments(hard_corpus)} if aligned else {}
    styles = {row["id"]: style_vector(float(row["speed"]), float(row["pitch"]), float(row["word_gap"]))
              for c in (corpus, hard_corpus) for row in read_synth_params(c)} if aligned else {}

    def items(utts: Any, mels: Any) -> list[Any]:
        out = []
        for u in utts:
            mel = ((mels[u.id] - mean) / std).T.astype("float32")
            if not aligned:
                out.append((tts_text.encode(u.normalized), mel))
                continue
            ids, stress = tts_phonemes.encode(align[u.id].phonemes)
            out.append((ids, mel, stress, align[u.id].durations(len(mel), HOP_LENGTH), styles[u.id]))
        return out

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
    return TTSData(source=source, setting=setting, backbone=backbone, corpus_root=corpus.root, mel_mean=mean, mel_std=std,
                   train=items(train_utts, store), valid=valid_items, valid_ids=list(valid_ids),
                   test_utts=list(split.test), test=items(split.test, store), hard=hard, hard_utts=hard_utts,
                   hard_items=hard_items, notes=notes)


__all__ = ["SETTINGS", "TTSData", "check_data_path", "prepare_data"]
