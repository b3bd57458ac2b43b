"""The search-space protocol every layer above builds on.

A space is framework-free (numpy only). It tells the controller how to turn an architecture into a token
sequence and back (``encode``/``decode``), which tokens constrained decoding may emit at each position
(``allowed_tokens``/``token_mask``), and the canonical ``key`` used to deduplicate queries (for NAS-Bench-101 the
isomorphism-invariant module hash, so isomorphic or unpruned duplicates share one key).

Token 0 is reserved for SOS/padding in every space, as in the authors' controller.
"""
from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from typing import Any
from typing import Generic
from typing import Hashable
from typing import Sequence
from typing import TypeVar

import numpy as np

Arch = TypeVar("Arch")


class InvalidArchitecture(ValueError):
    """Raised when an architecture is malformed (wrong shape, unknown op, broken graph)."""


class SearchSpace(ABC, Generic[Arch]):
    """A discrete architecture space with a fixed-length token encoding.

    Subclasses set ``name``, ``vocab_size`` (including token 0) and ``seq_len``.
    """

    name: str = "space"
    vocab_size: int
    seq_len: int

    # -- sampling ---------------------------------------------------------------------------------------
    @abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> list[Arch]:
        """Draw ``n`` valid architectures (uniformly over the space's unique cells where possible)."""

    @abstractmethod
    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """A valid neighbour of ``arch`` with a different ``key`` (used by regularized evolution)."""

    # -- encoding ---------------------------------------------------------------------------------------
    @abstractmethod
    def encode(self, arch: Arch) -> np.ndarray:
        """Token sequence of length ``seq_len`` (int64). Raises ``InvalidArchitecture`` if ``arch`` is invalid."""

    @abstractmethod
    def decode(self, tokens: Sequence[int] | np.ndarray) -> Arch | None:
        """Inverse of ``encode``; returns ``None`` when the tokens do not describe a valid architecture."""

    def encode_many(self, archs: Sequence[Arch]) -> np.ndarray:
        """Stack ``encode`` over ``archs`` into an ``[n, seq_len]`` int64 array."""
        if len(archs) == 0:
            return np.zeros((0, self.seq_len), dtype=np.int64)
        return np.stack([self.encode(a) for a in archs]).astype(np.int64, copy=False)

    # -- validity and identity --------------------------------------------------------------------------
    @abstractmethod
    def is_valid(self, arch: Arch) -> bool:
        """True when ``arch`` belongs to the space (after any canonicalisation such as pruning)."""

    @abstractmethod
    def key(self, arch: Arch) -> str:
        """Canonical identity used for deduplication and table lookup."""

    # -- constrained decoding ---------------------------------------------------------------------------
    @abstractmethod
    def allowed_tokens(self, position: int) -> tuple[int, ...]:
        """Tokens constrained greedy decoding may emit at ``position`` (0-based)."""

    def token_mask(self) -> np.ndarray:
        """Boolean ``[seq_len, vocab_size]`` mask built from ``allowed_tokens``."""
        mask = np.zeros((self.seq_len, self.vocab_size), dtype=bool)
        for pos in range(self.seq_len):
            mask[pos, list(self.allowed_tokens(pos))] = True
        return mask

    # -- (de)serialisation for Tune configs and result files -------------------------------------------
    @abstractmethod
    def to_config(self, arch: Arch) -> dict[str, Any]:
        """JSON-serialisable description of ``arch`` (used as a Tune trial config and in result files)."""

    @abstractmethod
    def from_config(self, config: dict[str, Any]) -> Arch:
        """Inverse of ``to_config``. Raises ``InvalidArchitecture`` on malformed input."""

    def cost(self, arch: Arch) -> dict[str, float]:
        """Optional resource costs (params, FLOPs, latency) for constraints; empty when unknown."""
        return {}

    def feasible(self, arch: Arch) -> bool:
        """Whether ``arch`` meets the space's resource constraint (e.g. a FLOPs budget); no constraint by default.

        ``decode`` stays structural (token-wise constrained decoding cannot see a global budget), so SemiNAS's
        generation rejects an infeasible decode exactly like an invalid one and keeps growing the step size.
        """
        return True

    def describe(self, arch: Arch) -> str:
        """Short human-readable form for logs and reports."""
        return self.key(arch)


def as_hashable(tokens: np.ndarray | Sequence[int]) -> Hashable:
    """A token sequence as a tuple of ints (for set membership)."""
    return tuple(int(t) for t in tokens)
