"""TTS items as flat numpy arrays: how ``(chars, mel)`` pairs travel through Ray's object store (once, zero-copy)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def pack_items(items: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """``(chars int [L], mel float [T, n_mels])`` pairs -> four flat arrays (mels stored as float16)."""
    if not items:
        raise ValueError("pack_items needs at least one (chars, mel) pair")
    chars = [np.asarray(c, dtype=np.int64).reshape(-1) for c, _ in items]
    mels = [np.asarray(m, dtype=np.float16) for _, m in items]
    return {
        "chars": np.concatenate(chars),
        "char_offsets": np.concatenate([[0], np.cumsum([len(c) for c in chars])]).astype(np.int64),
        "mels": np.concatenate(mels),
        "mel_offsets": np.concatenate([[0], np.cumsum([len(m) for m in mels])]).astype(np.int64),
    }


def unpack_items(packed: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inverse of :func:`pack_items` (views into the packed arrays; mels stay float16 until collated)."""
    co, mo = packed["char_offsets"], packed["mel_offsets"]
    return [(packed["chars"][co[i]:co[i + 1]], packed["mels"][mo[i]:mo[i + 1]]) for i in range(len(co) - 1)]


__all__ = ["pack_items", "unpack_items"]
