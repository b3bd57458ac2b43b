"""TTS items as flat numpy arrays: how items travel through Ray's object store (once, zero-copy).

An item is ``(tokens int [L], mel float [T, n_mels])`` (transformer-tts: characters) or, for the duration-based
backbone, ``(phonemes int [L], mel, stress int [L], durations int [L], style float [3])``.
"""
from __future__ import annotations

from typing import Any
from typing import Sequence

import numpy as np


def pack_items(items: Sequence[tuple[Any, ...]]) -> dict[str, np.ndarray]:
    """Items -> flat arrays (mels stored as float16); aligned items also pack stress, durations and style."""
    if not items:
        raise ValueError("pack_items needs at least one item")
    widths = {len(item) for item in items}
    if widths not in ({2}, {5}):
        raise ValueError(f"items must all be (tokens, mel) or all (phonemes, mel, stress, durations, style); "
                         f"got {sorted(widths)} fields")
    chars = [np.asarray(item[0], dtype=np.int64).reshape(-1) for item in items]
    mels = [np.asarray(item[1], dtype=np.float16) for item in items]
    packed = {
        "chars": np.concatenate(chars),
        "char_offsets": np.concatenate([[0], np.cumsum([len(c) for c in chars])]).astype(np.int64),
        "mels": np.concatenate(mels),
        "mel_offsets": np.concatenate([[0], np.cumsum([len(m) for m in mels])]).astype(np.int64),
    }
    if widths == {5}:
        packed["stress"] = np.concatenate([np.asarray(item[2], dtype=np.int64).reshape(-1) for item in items])
        packed["durations"] = np.concatenate([np.asarray(item[3], dtype=np.int64).reshape(-1) for item in items])
        packed["style"] = np.stack([np.asarray(item[4], dtype=np.float32).reshape(-1) for item in items])
        if len(packed["stress"]) != len(packed["chars"]) or len(packed["durations"]) != len(packed["chars"]):
            raise ValueError("stress and durations must have one entry per phoneme")
    return packed


def unpack_items(packed: dict[str, np.ndarray]) -> list[tuple[Any, ...]]:
    """Inverse of :func:`pack_items` (views into the packed arrays; mels stay float16 until collated)."""
    co, mo = packed["char_offsets"], packed["mel_offsets"]
    n = len(co) - 1
    if "durations" not in packed:
        return [(packed["chars"][co[i]:co[i + 1]], packed["mels"][mo[i]:mo[i + 1]]) for i in range(n)]
    return [(packed["chars"][co[i]:co[i + 1]], packed["mels"][mo[i]:mo[i + 1]], packed["stress"][co[i]:co[i + 1]],
             packed["durations"][co[i]:co[i + 1]], packed["style"][i]) for i in range(n)]


__all__ = ["pack_items", "unpack_items"]
