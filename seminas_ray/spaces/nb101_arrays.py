"""NAS-Bench-101 cells in the padded-array schema: conversion from and to :class:`CellSpec`, and
:class:`NB101Arrays` (a set of pruned cells with their module hashes, e.g. the enumeration or a sample of it).

The schema is described in :mod:`seminas_ray.spaces.nb101_cell`; bulk work (hashing 423k cells, encoding 1M
samples) stays in arrays, and ``CellSpec`` objects are only built for the cells a caller asks for.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable
from typing import Sequence

import numpy as np

from seminas_ray.spaces.base import InvalidArchitecture
from seminas_ray.spaces.nb101_cell import LABEL_OF_OP
from seminas_ray.spaces.nb101_cell import LABEL_PAD
from seminas_ray.spaces.nb101_cell import MAX_VERTICES
from seminas_ray.spaces.nb101_cell import OP_OF_LABEL
from seminas_ray.spaces.nb101_cell import CellSpec
from seminas_ray.spaces.nb101_cell import check_arrays
from seminas_ray.spaces.nb101_cell import validate
from seminas_ray.spaces.nb101_encoding import encode_arrays


def specs_from_arrays(adjacency: np.ndarray, labels: np.ndarray, n_vertices: np.ndarray) -> list[CellSpec]:
    """``CellSpec`` objects from the padded-array schema (cells taken as given: they should be pruned)."""
    adjacency, labels, n_vertices = check_arrays(adjacency, labels, n_vertices)
    ops_cache: dict[bytes, tuple[str, ...]] = {}  # few distinct label rows: build each op tuple once
    out = []
    for a, lab, n in zip(adjacency, labels, n_vertices.tolist()):
        row = lab[:n]
        key = row.tobytes()
        ops = ops_cache.get(key)
        if ops is None:
            ops = ops_cache[key] = tuple(OP_OF_LABEL[int(x)] for x in row)
        out.append(CellSpec._trusted(a[:n, :n].copy(), ops))  # a copy: never alias the caller's array
    return out


def arrays_from_specs(specs: Iterable[CellSpec]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(adjacency [N,7,7] uint8, labels [N,7] int8, n_vertices [N] uint8)`` of the pruned cells of ``specs``.

    Raises ``InvalidArchitecture`` (naming the index) for a spec that is not a valid cell.
    """
    pruned = []
    for i, spec in enumerate(specs):
        try:
            pruned.append(validate(spec))
        except InvalidArchitecture as exc:
            raise InvalidArchitecture(f"spec {i}: {exc}") from None
    count = len(pruned)
    adjacency = np.zeros((count, MAX_VERTICES, MAX_VERTICES), dtype=np.uint8)
    labels = np.full((count, MAX_VERTICES), LABEL_PAD, dtype=np.int8)
    n_vertices = np.zeros(count, dtype=np.uint8)
    for i, spec in enumerate(pruned):
        n = spec.matrix.shape[0]
        adjacency[i, :n, :n] = spec.matrix
        labels[i, :n] = [LABEL_OF_OP[op] for op in spec.ops]
        n_vertices[i] = n
    return adjacency, labels, n_vertices


@dataclass(frozen=True, eq=False)
class NB101Arrays:
    """A set of pruned cells in the padded-array schema, with their module hashes.

    ``hash`` [N] S32, ``n_vertices`` [N] uint8, ``adjacency`` [N,7,7] uint8, ``labels`` [N,7] int8 (the schema of
    ``nb101_subset20k.npz``). The enumeration is sorted by hash, so :meth:`index_of` is a binary search.
    """

    hash: np.ndarray
    n_vertices: np.ndarray
    adjacency: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        lengths = {np.shape(a)[:1] for a in (self.hash, self.n_vertices, self.adjacency, self.labels)}
        if len(lengths) != 1 or lengths == {()}:
            raise ValueError(
                f"NB101Arrays fields differ in length: hash {np.shape(self.hash)}, n_vertices "
                f"{np.shape(self.n_vertices)}, adjacency {np.shape(self.adjacency)}, labels {np.shape(self.labels)}"
            )

    def __len__(self) -> int:
        return int(self.hash.shape[0])

    def take(self, index: np.ndarray | Sequence[int]) -> NB101Arrays:
        """The rows ``index`` (copies)."""
        idx = np.asarray(index, dtype=np.intp)
        return NB101Arrays(self.hash[idx], self.n_vertices[idx], self.adjacency[idx], self.labels[idx])

    def specs(self) -> list[CellSpec]:
        """All rows as ``CellSpec`` objects."""
        return specs_from_arrays(self.adjacency, self.labels, self.n_vertices)

    def keys(self) -> list[str]:
        """All module hashes as str."""
        return self.hash.astype("U32").tolist()

    def encode(self) -> np.ndarray:
        """Token sequences [N,27] of all rows."""
        return encode_arrays(self.adjacency, self.labels, self.n_vertices)

    def index_of(self, hashes: np.ndarray | Sequence[str]) -> np.ndarray:
        """Row of each hash (-1 where absent); requires ``hash`` sorted, as in the enumeration."""
        query = np.asarray(hashes, dtype="S32").reshape(-1)
        pos = np.searchsorted(self.hash, query)
        pos_c = np.minimum(pos, max(len(self) - 1, 0))
        found = (pos < len(self)) & (self.hash[pos_c] == query) if len(self) else np.zeros(query.shape, bool)
        return np.where(found, pos, -1)
