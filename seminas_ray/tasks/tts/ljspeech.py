"""Reading a speech corpus in the LJSpeech-1.1 layout, and the paper's two data settings.

Layout (https://keithito.com/LJ-Speech-Dataset/): a folder with ``metadata.csv`` holding one ``id|text|normalized``
line per utterance (UTF-8, no header, no quoting) and ``wavs/<id>.wav`` (22,050 Hz, mono, 16-bit PCM). The
real LJSpeech-1.1 and the corpus that ``corpus.py`` synthesises offline share this layout, so both load through
``LJSpeechCorpus``.

Settings (SemiNAS, Luo et al. 2020, the TTS experiment):
* low-resource: 1,500 training, 100 validation and 100 test utterances drawn at random (``low_resource_split``);
* robustness: train on the whole corpus, validate and test on text-only "hard" sentences (``robustness_split``).
"""
from __future__ import annotations

import os
import re
import tempfile
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from seminas_ray.tasks.tts import text as tts_text
from seminas_ray.utils.state_io import ordinary_permissions

SAMPLE_RATE = 22050
METADATA = "metadata.csv"
_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
WAVS = "wavs"
HARD_SENTENCES_FILE = Path(__file__).resolve().parent / "sentences" / "hard_sentences.tsv"
# The paper's low-resource sizes (generate_data_low_resource.py).
PAPER_TRAIN, PAPER_VALID, PAPER_TEST = 1500, 100, 100


@dataclass(frozen=True)
class Utterance:
    """One corpus line: ``normalized`` is LJSpeech's spelt-out text, ``num_samples`` the wav's length at 22,050 Hz."""

    id: str
    text: str
    normalized: str
    wav_path: Path
    num_samples: int

    @property
    def seconds(self) -> float:
        """Duration of the recording in seconds."""
        return self.num_samples / SAMPLE_RATE


def wav_header(path: Path) -> tuple[int, int, int, int]:
    """(sample rate, channels, bytes per sample, frames) of a PCM WAV file, read from its header only."""
    try:
        with wave.open(str(path), "rb") as handle:
            return handle.getframerate(), handle.getnchannels(), handle.getsampwidth(), handle.getnframes()
    except (wave.Error, EOFError) as err:
        raise ValueError(f"{path} is not a readable PCM WAV file: {err}") from err


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """(float32 samples in [-1, 1], sample rate) of a mono 16-bit PCM WAV file (stdlib ``wave``, no codec library)."""
    path = Path(path)
    rate, channels, width, frames = wav_header(path)
    if channels != 1 or width != 2:
        raise ValueError(f"{path}: {channels} channel(s) of {8 * width}-bit audio, expected mono 16-bit PCM")
    with wave.open(str(path), "rb") as handle:
        data = handle.readframes(frames)
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0, rate


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono 16-bit PCM atomically (temp file, then ``os.replace``), so a reader never sees half a file.

    Float input is taken as [-1, 1] and clipped; int16 input is written as is.
    """
    path = Path(path)
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"write_wav({path}): expected a 1-D mono signal, got shape {samples.shape}")
    if samples.dtype != np.int16:
        samples = np.round(np.clip(samples.astype(np.float64), -1.0, 32767 / 32768) * 32768).astype(np.int16)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        ordinary_permissions(fd)
        with os.fdopen(fd, "wb") as raw, wave.open(raw, "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(int(sample_rate))
            handle.writeframes(samples.astype("<i2").tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class LJSpeechCorpus(Sequence[Utterance]):
    """An LJSpeech-layout corpus: a sequence of ``Utterance`` in ``metadata.csv`` order.

    Loading parses every metadata line and reads every wav header (milliseconds for the 13,100 LJSpeech files) so
    that a broken corpus fails here, with the file and line named, and not in the middle of training.
    An empty ``normalized`` column is filled with ``text.expand(text)``.
    """

    def __init__(self, root: str | Path, *, sample_rate: int = SAMPLE_RATE, _items: list[Utterance] | None = None):
        self.root = Path(root)
        self.sample_rate = sample_rate
        self._items = _items if _items is not None else self._load()
        self._index = {item.id: i for i, item in enumerate(self._items)}

    def _load(self) -> list[Utterance]:
        metadata = self.root / METADATA
        if not self.root.is_dir():
            raise FileNotFoundError(f"LJSpeech corpus folder {self.root} does not exist")
        if not metadata.is_file():
            raise FileNotFoundError(f"{metadata} is missing: an LJSpeech-layout corpus needs metadata.csv (id|text|normalized)")
        items: list[Utterance] = []
        seen: set[str] = set()
        with open(metadata, "rb") as handle:
            for line_number, raw_bytes in enumerate(handle, start=1):
                try:
                    raw = raw_bytes.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ValueError(f"{metadata}:{line_number}: not UTF-8 (byte 0x{raw_bytes[exc.start]:02x} at "
                                     f"column {exc.start + 1}): save the file as UTF-8") from None
                line = raw.rstrip("\r\n")
                if not line.strip():
                    continue
                fields = line.split("|")
                if len(fields) not in (2, 3) or not fields[0].strip() or not fields[1].strip():
                    raise ValueError(
                        f"{metadata}:{line_number}: malformed line {line[:80]!r}: expected 'id|text|normalized' "
                        f"(3 fields separated by '|', id and text non-empty), got {len(fields)} field(s)"
                    )
                uid, text = fields[0].strip(), fields[1].strip()
                normalized = fields[2].strip() if len(fields) == 3 and fields[2].strip() else tts_text.expand(text)
                if not _PLAIN_ID.fullmatch(uid) or ".." in uid:
                    # ids become file names (wavs/<id>.wav, <id>_*.wav in the results): no path may escape a folder
                    raise ValueError(f"{metadata}:{line_number}: utterance id {uid!r} is not a plain file name "
                                     f"(letters, digits, '.', '_' and '-' only, e.g. LJ001-0001)")
                if uid in seen:
                    raise ValueError(f"{metadata}:{line_number}: duplicate utterance id {uid!r}")
                seen.add(uid)
                wav_path = self.root / WAVS / f"{uid}.wav"
                if not wav_path.is_file():
                    raise FileNotFoundError(f"{metadata}:{line_number}: wav file {wav_path} for id {uid!r} is missing")
                rate, channels, width, frames = wav_header(wav_path)
                if rate != self.sample_rate:
                    raise ValueError(f"{wav_path}: sample rate {rate} Hz, expected {self.sample_rate} Hz")
                if channels != 1 or width != 2:
                    raise ValueError(f"{wav_path}: {channels} channel(s) of {8 * width}-bit audio, expected mono 16-bit PCM")
                items.append(Utterance(uid, text, normalized, wav_path, frames))
        if not items:
            raise ValueError(f"{metadata} lists no utterances")
        return items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return self.subset(self._items[index])
        return self._items[index]

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"LJSpeechCorpus({str(self.root)!r}, {len(self)} utterances)"

    @property
    def ids(self) -> list[str]:
        """Utterance ids in corpus order."""
        return [item.id for item in self._items]

    def by_id(self, uid: str) -> Utterance:
        """The utterance with id ``uid`` (``KeyError`` naming it when absent)."""
        if uid not in self._index:
            raise KeyError(f"utterance {uid!r} is not in {self!r}")
        return self._items[self._index[uid]]

    def subset(self, items: Sequence[Utterance] | Sequence[str]) -> LJSpeechCorpus:
        """A corpus view over some of the utterances (given as ``Utterance`` objects or ids), in the order given."""
        chosen = [self.by_id(x) if isinstance(x, str) else x for x in items]
        return LJSpeechCorpus(self.root, sample_rate=self.sample_rate, _items=chosen)

    def total_seconds(self) -> float:
        """Total duration of the corpus audio in seconds."""
        return sum(item.num_samples for item in self._items) / self.sample_rate


class Split(NamedTuple):
    """Train / validation / test corpora of one data setting."""

    train: LJSpeechCorpus
    valid: LJSpeechCorpus
    test: LJSpeechCorpus


def low_resource_sizes(n: int) -> tuple[int, int, int]:
    """(train, valid, test) sizes of the low-resource setting for a corpus of ``n`` utterances.

    The paper's 1,500 / 100 / 100 when ``n >= 1700`` (the rest of the corpus is unused, as in the paper). A smaller
    corpus is scaled down: validation and test each take ``min(100, n // 12)`` utterances (at least 1) and training
    gets the rest, so the default 1,200-utterance synthetic corpus splits 1,000 / 100 / 100 and 120 utterances 100 / 10 / 10.
    """
    if n < 3:
        raise ValueError(f"a low-resource split needs at least 3 utterances, the corpus has {n}")
    held_out = max(1, min(PAPER_VALID, n // 12))
    return min(PAPER_TRAIN, n - 2 * held_out), held_out, held_out


def low_resource_split(corpus: LJSpeechCorpus, seed: int = 0) -> Split:
    """The paper's low-resource setting: a seeded random draw of train / valid / test (sizes: ``low_resource_sizes``)."""
    n_train, n_valid, n_test = low_resource_sizes(len(corpus))
    order = np.random.default_rng(seed).permutation(len(corpus))
    items = [corpus[int(i)] for i in order]
    return Split(
        corpus.subset(items[:n_train]),
        corpus.subset(items[n_train:n_train + n_valid]),
        corpus.subset(items[n_train + n_valid:n_train + n_valid + n_test]),
    )


@dataclass(frozen=True)
class HardSentence:
    """A text-only robustness test sentence: ``category`` says what makes it hard (long, repeat, numbers, short, rare)."""

    id: str
    category: str
    text: str
    normalized: str


def load_hard_sentences(path: str | Path = HARD_SENTENCES_FILE) -> list[HardSentence]:
    """The robustness sentences (``id<TAB>category<TAB>text`` lines), each with its ``text.expand`` form."""
    path = Path(path)
    result = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not all(f.strip() for f in fields):
            raise ValueError(f"{path}:{line_number}: expected 'id<TAB>category<TAB>text', got {line[:80]!r}")
        uid, category, sentence = (f.strip() for f in fields)
        result.append(HardSentence(uid, category, sentence, tts_text.expand(sentence)))
    if not result:
        raise ValueError(f"{path} holds no hard sentences")
    return result


class RobustnessSplit(NamedTuple):
    """Robustness setting: train on the whole corpus; valid and test are the hard sentences (text only)."""

    train: LJSpeechCorpus
    valid: list[HardSentence]
    test: list[HardSentence]


def robustness_split(corpus: LJSpeechCorpus, hard: Sequence[HardSentence] | None = None) -> RobustnessSplit:
    """The paper's robustness setting: all of ``corpus`` for training, the hard sentences for validation and test.

    As in the paper (``processed_robust100`` serves both), validation and test are the same text-only list; the
    search scores candidates on it by attention (DFR), the final evaluation by stop/length/ASR errors.
    ``hard`` defaults to the committed list (:func:`load_hard_sentences`).
    """
    if hard is None:
        hard = load_hard_sentences()
    hard = list(hard)
    if not hard:
        raise ValueError("robustness_split needs at least one hard sentence")
    return RobustnessSplit(corpus, hard, hard)
