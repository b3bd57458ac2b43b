"""Audio features for the TTS task: 80-bin log-mel spectrograms, Griffin-Lim inversion and a mel cache.

The settings are the paper's LJSpeech ones (22,050 Hz, n_fft = window = 1024, hop 256, 80 mel bins from 0 to 8 kHz),
with Slaney-style mel filters (``torchaudio.functional.melscale_fbanks(norm="slaney", mel_scale="slaney")``, the same
as ``librosa.filters.mel``'s defaults) applied to the STFT magnitude, and ``log(clamp(x, 1e-5))``. A signal of ``n``
samples gives ``n // 256 + 1`` frames (centred frames with reflect padding, as in librosa).

The vocoder is Griffin-Lim, as in the paper (``vocoder='gl'``): the pseudo-inverse of the mel basis gives back a
linear magnitude (as good as an iterative NNLS solve here, and about 20 times faster), then torchaudio's fast
Griffin-Lim runs with momentum 0.99 from a seeded random phase.

WAV I/O uses the stdlib (``read_wav``/``write_wav``, re-exported from ``ljspeech``): torchaudio 2.9+ moved
``load``/``save`` to torchcodec, and 16-bit PCM needs no codec anyway.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from tqdm.auto import tqdm

from seminas_ray import settings
from seminas_ray.tasks.tts.ljspeech import LJSpeechCorpus, read_wav, write_wav
from seminas_ray.utils.state_io import ordinary_permissions

__all__ = [
    "SAMPLE_RATE", "N_FFT", "HOP_LENGTH", "WIN_LENGTH", "N_MELS", "F_MIN", "F_MAX", "LOG_FLOOR", "MEL_MEAN",
    "MEL_STD", "MelStore", "denormalize_mel", "griffin_lim", "load_mels", "mel_basis", "mel_to_wav",
    "normalize_mel", "num_frames", "precompute_mels", "read_wav", "wav_to_mel", "write_wav",
]

SAMPLE_RATE = 22050
N_FFT = 1024
HOP_LENGTH = 256
WIN_LENGTH = 1024
N_MELS = 80
F_MIN = 0.0
F_MAX = 8000.0
LOG_FLOOR = 1e-5
# Global normalisation of the log-mel (mean and std over all frames and bins). They were measured on the default
# 1,200-utterance eSpeak corpus; precompute_mels also stores the statistics of whichever corpus it is given.
MEL_MEAN = -5.60
MEL_STD = 3.18
MEL_FEATURE_VERSION = 1  # part of the mel-cache key: bump when the analysis changes


@functools.lru_cache(maxsize=1)
def mel_basis() -> torch.Tensor:
    """The (80, 513) Slaney mel filter bank (float32), as ``librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmax=8000)``."""
    fb = AF.melscale_fbanks(
        n_freqs=N_FFT // 2 + 1, f_min=F_MIN, f_max=F_MAX, n_mels=N_MELS, sample_rate=SAMPLE_RATE,
        norm="slaney", mel_scale="slaney",
    )
    return fb.T.contiguous().float()


@functools.lru_cache(maxsize=1)
def _mel_pinv() -> torch.Tensor:
    """(513, 80) Moore-Penrose pseudo-inverse of the mel basis: mel magnitude back to a linear magnitude."""
    return torch.linalg.pinv(mel_basis().double()).float()


@functools.lru_cache(maxsize=1)
def _window() -> torch.Tensor:
    return torch.hann_window(WIN_LENGTH)  # periodic, as librosa's "hann" with fftbins=True


def num_frames(num_samples: int | np.ndarray) -> int | np.ndarray:
    """Number of mel frames of a signal of ``num_samples`` samples (centred frames): ``n // 256 + 1``."""
    return num_samples // HOP_LENGTH + 1


def wav_to_mel(wav: np.ndarray | torch.Tensor, lengths: Sequence[int] | None = None) -> torch.Tensor:
    """Log-mel spectrogram: a (T,) signal gives (80, frames); a padded (B, T) batch gives (B, 80, max_frames).

    ``lengths`` are the true sample counts of a padded batch. Each item is reflect-padded at its own ends before
    the batched STFT, so an item's frames are the same as when it is analysed alone. Frames past an item's end hold
    ``log(1e-5)``, the value of silence.
    """
    x = torch.as_tensor(wav, dtype=torch.float32)
    single = x.ndim == 1
    if single:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"wav_to_mel expects (T,) or (B, T) audio, got shape {tuple(x.shape)}")
    lengths = [x.shape[1]] * x.shape[0] if lengths is None else [int(n) for n in lengths]
    if len(lengths) != x.shape[0] or max(lengths) > x.shape[1] or min(lengths) < 1:
        raise ValueError(f"lengths {lengths} do not fit a batch of shape {tuple(x.shape)}")
    pad = N_FFT // 2
    items = []
    for i, n in enumerate(lengths):
        item = x[i, :n][None, None]
        # reflect needs more samples than the padding; a signal shorter than 512 samples is zero-padded instead
        mode = "reflect" if n > pad else "constant"
        items.append(torch.nn.functional.pad(item, (pad, pad), mode=mode)[0, 0])
    width = max(item.shape[0] for item in items)
    batch = torch.stack([torch.nn.functional.pad(item, (0, width - item.shape[0])) for item in items])
    spec = torch.stft(batch, N_FFT, HOP_LENGTH, WIN_LENGTH, window=_window(), center=False, return_complex=True).abs()
    logmel = torch.log(torch.clamp(torch.matmul(mel_basis(), spec), min=LOG_FLOOR))
    frames = [int(num_frames(n)) for n in lengths]
    logmel = logmel[:, :, : max(frames)]
    for i, f in enumerate(frames):
        logmel[i, :, f:] = float(np.log(LOG_FLOOR))
    return logmel[0] if single else logmel


def normalize_mel(logmel: torch.Tensor | np.ndarray, mean: float = MEL_MEAN, std: float = MEL_STD):
    """Globally normalised log-mel, ``(x - mean) / std``: the model's regression target."""
    return (logmel - mean) / std


def denormalize_mel(normalized: torch.Tensor | np.ndarray, mean: float = MEL_MEAN, std: float = MEL_STD):
    """Inverse of ``normalize_mel``."""
    return normalized * std + mean


def griffin_lim(magnitude: torch.Tensor, n_iter: int = 32, momentum: float = 0.99, seed: int = 0,
                length: int | None = None) -> torch.Tensor:
    """Fast Griffin-Lim (torchaudio) on a linear STFT magnitude (..., 513, frames), from a seeded random phase."""
    with torch.random.fork_rng(devices=[]):  # seeded phase without disturbing the caller's RNG
        torch.manual_seed(seed)
        return AF.griffinlim(
            magnitude, _window(), N_FFT, HOP_LENGTH, WIN_LENGTH, power=1.0, n_iter=n_iter, momentum=momentum,
            length=length, rand_init=True,
        )


def mel_to_wav(logmel: torch.Tensor | np.ndarray, n_iter: int = 32, momentum: float = 0.99, seed: int = 0) -> torch.Tensor:
    """Audio from a log-mel, (80, frames) -> (samples,) or (B, 80, frames) -> (B, samples), ``(frames - 1) * 256`` samples.

    Mel pseudo-inverse, clamped to 1e-8, then ``n_iter`` Griffin-Lim iterations (32 by default, 16 are enough for a
    smoke test). It takes about 0.1-0.2 s per 3 s utterance with 32 iterations (one busy CPU core).
    """
    m = torch.as_tensor(logmel, dtype=torch.float32)
    if m.ndim not in (2, 3) or m.shape[-2] != N_MELS:
        raise ValueError(f"mel_to_wav expects (80, frames) or (B, 80, frames), got shape {tuple(m.shape)}")
    magnitude = torch.clamp(torch.matmul(_mel_pinv(), torch.exp(m)), min=1e-8)
    return griffin_lim(magnitude, n_iter, momentum, seed, length=(m.shape[-1] - 1) * HOP_LENGTH)


def _mel_cache_key(corpus: LJSpeechCorpus) -> str:
    """Hash of the analysis settings and the corpus (root, ids, lengths, file sizes)."""
    settings_part = [MEL_FEATURE_VERSION, SAMPLE_RATE, N_FFT, HOP_LENGTH, WIN_LENGTH, N_MELS, F_MIN, F_MAX, LOG_FLOOR]
    items = [(u.id, u.num_samples, u.wav_path.stat().st_size) for u in corpus]
    blob = json.dumps([settings_part, str(corpus.root.resolve()), items]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def precompute_mels(corpus: LJSpeechCorpus, *, cache_root: str | Path | None = None, batch_size: int = 16,
                    progress: bool = True) -> Path:
    """Log-mels of every utterance in one ``.npz`` (built once, cached); returns its path. Open it with ``load_mels``.

    Contents (no pickled objects): ``mels`` (total_frames, 80) float16, every utterance's frames one after another;
    ``offsets`` (n + 1,) int64, so utterance i is ``mels[offsets[i]:offsets[i + 1]]``; ``ids`` (n,) unicode;
    ``mean``/``std``, the corpus's own log-mel statistics (float64 scalars). A few ms per utterance, reading included.
    """
    folder = Path(cache_root) if cache_root is not None else settings.cache_dir("tts", "mels")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"mels-{len(corpus)}-{_mel_cache_key(corpus)}.npz"
    if path.is_file():
        return path
    chunks, frames = [], []
    total, total_sq, count = 0.0, 0.0, 0
    items = list(corpus)
    with tqdm(total=len(items), desc="log-mel features", unit="utt", disable=not progress) as bar:
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            wavs = [read_wav(u.wav_path)[0] for u in batch]
            padded = np.zeros((len(wavs), max(w.size for w in wavs)), np.float32)
            for i, w in enumerate(wavs):
                padded[i, : w.size] = w
            mels = wav_to_mel(padded, [w.size for w in wavs]).numpy()
            for i, w in enumerate(wavs):
                m = mels[i, :, : int(num_frames(w.size))].T  # (frames, 80): contiguous rows per utterance
                chunks.append(m.astype(np.float16))
                frames.append(m.shape[0])
                total += float(m.sum(dtype=np.float64))
                total_sq += float(np.square(m, dtype=np.float64).sum())
                count += m.size
            bar.update(len(batch))
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))
    offsets = np.concatenate([[0], np.cumsum(frames)]).astype(np.int64)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        ordinary_permissions(fd)
        with os.fdopen(fd, "wb") as handle:  # a file object: np.savez would append ".npz" to a temp name
            np.savez(handle, mels=np.concatenate(chunks), offsets=offsets, ids=np.asarray(corpus.ids),
                     mean=np.float64(mean), std=np.float64(std))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class MelStore:
    """The log-mels of a corpus from a ``precompute_mels`` file, by id or index, as float32 (80, frames) arrays."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with np.load(self.path, allow_pickle=False) as data:
            missing = {"mels", "offsets", "ids", "mean", "std"} - set(data.files)
            if missing:
                raise ValueError(f"{self.path} is not a mel cache: missing arrays {sorted(missing)}")
            self._mels = data["mels"]
            self._offsets = data["offsets"]
            self.ids: list[str] = [str(i) for i in data["ids"]]
            self.mean = float(data["mean"])
            self.std = float(data["std"])
        if self._mels.ndim != 2 or self._mels.shape[1] != N_MELS or len(self._offsets) != len(self.ids) + 1:
            raise ValueError(f"{self.path}: inconsistent mel cache (mels {self._mels.shape}, {len(self.ids)} ids)")
        self._index = {uid: i for i, uid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, key: str | int) -> int:
        """Position of an utterance id (or a position, checked)."""
        if isinstance(key, str):
            if key not in self._index:
                raise KeyError(f"utterance {key!r} is not in the mel cache {self.path}")
            return self._index[key]
        if not -len(self) <= key < len(self):
            raise IndexError(f"index {key} out of range for {len(self)} utterances")
        return key % len(self)

    def frames(self, key: str | int) -> int:
        """Number of frames of one utterance."""
        i = self.index(key)
        return int(self._offsets[i + 1] - self._offsets[i])

    def __getitem__(self, key: str | int) -> np.ndarray:
        i = self.index(key)
        return self._mels[self._offsets[i]:self._offsets[i + 1]].T.astype(np.float32)


def load_mels(path: str | Path) -> MelStore:
    """Open a mel cache written by ``precompute_mels``."""
    return MelStore(path)
