"""The phoneme front end of the duration-based backbone: eSpeak NG's phoneme mnemonics as model input.

eSpeak's phoneme events name each phoneme with its own ASCII mnemonic, prefixed by a stress mark (``'`` primary,
``,`` secondary), e.g. ``'oU``. A token is split into its base phoneme and its stress level, embedded separately and
summed, so an unseen stress/phoneme pair still has both parts. The inventory below is every base phoneme eSpeak NG
1.52 (voice en-us) used for the 3,000 committed WordNet sentences and the 100 hard sentences (70 of them), sorted
by frequency; anything else maps to ``<unk>``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

PAD, UNK = "<pad>", "<unk>"
#: Base phonemes, most frequent first (ids 2...; 0 is padding, 1 unknown).
INVENTORY: tuple[str, ...] = (
    "n", "t", "I", "s", "d", "_:", "r", "k", "D", "l", "_", "@", "z", "m", "V", "E", "p", "@2", "a", "v", "i:",
    "h", "f", "w", "3", "eI", "b", "a#", "aI", "I#", "u:", "i", "oU", "S", "I2", "N", "0", "g", "3:", ";", "t#",
    "@L", "j", "tS", "dZ", "U", "aU", "A@", "O2", "O:", "O@", "r-", "T", "o@", "e@", "aa", "i@", "t2", "i@3",
    "OI", "U@", "Z", "aI3", "A:", "@-", "aI@", "n-", "?", "_!", "x",
)
SYMBOLS: tuple[str, ...] = (PAD, UNK) + INVENTORY
_IDS = {p: i for i, p in enumerate(SYMBOLS)}
STRESS_MARKS = {"'": 1, ",": 2}  # 0 = unstressed
vocab_size = len(SYMBOLS)
n_stress = 3


def split_stress(token: str) -> tuple[str, int]:
    """``"'oU"`` -> ``("oU", 1)``; ``",E"`` -> ``("E", 2)``; ``"n"`` -> ``("n", 0)``."""
    if len(token) > 1 and token[0] in STRESS_MARKS:
        return token[1:], STRESS_MARKS[token[0]]
    return token, 0


def encode(tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Phoneme ids (``int64``, unknown -> 1) and stress levels (``int64``, 0-2) of eSpeak phoneme tokens."""
    if len(tokens) == 0:
        raise ValueError("a phoneme sequence must not be empty")
    ids, stress = [], []
    for token in tokens:
        base, level = split_stress(str(token))
        ids.append(_IDS.get(base, 1))
        stress.append(level)
    return np.asarray(ids, dtype=np.int64), np.asarray(stress, dtype=np.int64)


def decode(ids: Sequence[int], stress: Sequence[int] | None = None) -> list[str]:
    """Inverse of :func:`encode` (for reports and tests); padding is dropped."""
    marks = {v: k for k, v in STRESS_MARKS.items()}
    stress = [0] * len(ids) if stress is None else list(stress)
    return [marks.get(int(s), "") + SYMBOLS[int(i)] for i, s in zip(ids, stress) if int(i) != 0]


__all__ = ["INVENTORY", "SYMBOLS", "decode", "encode", "n_stress", "split_stress", "vocab_size"]
