"""NAS-Bench-101 cells: the :class:`CellSpec` representation, pruning and validity (numpy and stdlib only).

A cell is an upper-triangular 0/1 adjacency matrix over ``n`` vertices plus one op name per vertex (``input``
first, ``output`` last, the others from :data:`OPS`). NAS-Bench-101 judges a cell on its *pruned* graph
(vertices not on an input->output path are dropped, :func:`prune`), so :func:`validate` prunes first. The space
has 423,624 unique cells (see :mod:`seminas_ray.spaces.nb101_enumerate`).

Padded-array schema (shared with ``nb101_subset20k.npz`` and the enumeration cache): ``adjacency`` [N,7,7] uint8
zero-padded past ``n_vertices``, ``labels`` [N,7] int8 with -1 input, -2 output, 0 conv3x3, 1 conv1x1,
2 maxpool, -3 padding. :func:`check_arrays` validates cells in that form in bulk, because the controller
handles 10k-1M cells at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from seminas_ray.spaces.base import InvalidArchitecture

INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"
#: The interior ops, in the order of the hash labels (``nasbench/lib/config.py: available_ops``).
OPS: tuple[str, ...] = (CONV3X3, CONV1X1, MAXPOOL3X3)

MAX_VERTICES = 7
MAX_EDGES = 9
#: Unique cells in the space, and per pruned vertex count (2..7), as documented for ``generate_graphs.py``.
N_CELLS = 423_624
N_CELLS_BY_SIZE: dict[int, int] = {2: 1, 3: 6, 4: 84, 5: 2_441, 6: 62_010, 7: 359_082}

# Hash labels of the padded-array schema.
LABEL_INPUT = -1
LABEL_OUTPUT = -2
LABEL_PAD = -3
#: Op name -> hash label (input -1, output -2, an interior op its index in :data:`OPS`), and back.
LABEL_OF_OP: dict[str, int] = {INPUT: LABEL_INPUT, OUTPUT: LABEL_OUTPUT, **{op: i for i, op in enumerate(OPS)}}
OP_OF_LABEL: dict[int, str] = {label: op for op, label in LABEL_OF_OP.items()}


# =====================================================================================================
# CellSpec
# =====================================================================================================
@dataclass(frozen=True, eq=False, repr=False)
class CellSpec:
    """One NAS-Bench-101 cell, possibly unpruned (like ``nasbench.api.ModelSpec``).

    Construction normalises ``matrix`` to a read-only uint8 array and ``ops`` to a tuple of str, and checks the
    structure every other function relies on: a square matrix with ``n >= 2`` vertices, 0/1 entries, strictly
    upper-triangular (vertex order is a topological order) and ``len(ops) == n``. Membership of the space (op
    names, at most 7 vertices and 9 edges after pruning, input->output connectivity) is checked by
    :func:`validate` / :func:`is_valid`, as NAS-Bench-101 checks it on the pruned cell.

    Equality and hashing use the exact matrix and ops, not the isomorphism class: use ``NB101Space.key`` for that.
    """

    matrix: np.ndarray
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        try:
            raw = np.asarray(self.matrix)
        except Exception as exc:  # ragged nested lists and the like
            raise InvalidArchitecture(f"matrix is not an array: {exc}") from None
        if raw.ndim != 2 or raw.shape[0] != raw.shape[1]:
            raise InvalidArchitecture(f"matrix must be square, got shape {raw.shape}")
        n = raw.shape[0]
        if n < 2:
            raise InvalidArchitecture(f"a cell needs at least 2 vertices (input and output), got {n}")
        if raw.dtype.kind not in "biuf":
            raise InvalidArchitecture(f"matrix must hold 0/1 numbers, got dtype {raw.dtype}")
        bad = ~((raw == 0) | (raw == 1))
        if bad.any():
            r, c = (int(x) for x in np.argwhere(bad)[0])
            raise InvalidArchitecture(f"matrix entries must be 0 or 1, got {raw[r, c]!r} at [{r},{c}]")
        matrix = raw.astype(np.uint8)
        lower = np.tril(matrix)
        if lower.any():
            r, c = (int(x) for x in np.argwhere(lower)[0])
            raise InvalidArchitecture(
                f"matrix must be strictly upper-triangular (vertex order = topological order), "
                f"but entry [{r},{c}] is 1"
            )
        matrix.setflags(write=False)
        if isinstance(self.ops, (str, bytes)):
            raise InvalidArchitecture(f"ops must be a sequence of op names, got the string {self.ops!r}")
        try:
            ops = tuple(self.ops)
        except TypeError:
            raise InvalidArchitecture(f"ops must be a sequence of op names, got {self.ops!r}") from None
        for i, op in enumerate(ops):
            if not isinstance(op, str):
                raise InvalidArchitecture(f"ops[{i}] must be an op name (str), got {op!r}")
        if len(ops) != n:
            raise InvalidArchitecture(f"{len(ops)} ops for a {n}x{n} matrix: need one op per vertex")
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "ops", ops)

    @classmethod
    def _trusted(cls, matrix: np.ndarray, ops: tuple[str, ...]) -> CellSpec:
        """Build without checks from a uint8 upper-triangular matrix (bulk paths whose input is known good)."""
        spec = object.__new__(cls)
        matrix.setflags(write=False)
        object.__setattr__(spec, "matrix", matrix)
        object.__setattr__(spec, "ops", ops)
        return spec

    @property
    def n_vertices(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.matrix.sum())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CellSpec):
            return NotImplemented
        return (
            self.matrix.shape == other.matrix.shape
            and self.ops == other.ops
            and self.matrix.tobytes() == other.matrix.tobytes()
        )

    def __hash__(self) -> int:
        return hash((self.matrix.shape[0], self.matrix.tobytes(), self.ops))

    def __repr__(self) -> str:
        return f"CellSpec(matrix={self.matrix.tolist()}, ops={list(self.ops)})"


def as_spec(spec: Any) -> CellSpec:
    """``spec`` as a ``CellSpec``: a CellSpec, a ``(matrix, ops)`` pair or a ``{"matrix", "ops"}`` mapping."""
    if isinstance(spec, CellSpec):
        return spec
    if isinstance(spec, dict):
        missing = [k for k in ("matrix", "ops") if k not in spec]
        if missing:
            raise InvalidArchitecture(f"NB101 config lacks {', '.join(missing)} (got keys {sorted(spec)})")
        return CellSpec(spec["matrix"], spec["ops"])
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        return CellSpec(spec[0], spec[1])
    raise InvalidArchitecture(f"not an NB101 cell: {type(spec).__name__} {spec!r}"[:300])


# =====================================================================================================
# Pruning and validity (nasbench/lib/model_spec.py and nasbench/api.py:is_valid)
# =====================================================================================================
def prune(spec: CellSpec) -> CellSpec | None:
    """Drop the vertices that are not on an input->output path, exactly as ``ModelSpec._prune`` does.

    Keeps the vertices that are reachable from the input AND reach the output; returns ``None`` when the output is
    not reachable from the input (NAS-Bench-101's ``valid_spec = False``). A spec with nothing to prune is returned
    as is.
    """
    spec = as_spec(spec)
    n = spec.matrix.shape[0]
    rows = spec.matrix.tolist()
    # Forward from the input along out-edges, backward from the output along in-edges.
    from_input = {0}
    frontier = [0]
    while frontier:
        top = frontier.pop()
        for v in range(top + 1, n):
            if rows[top][v] and v not in from_input:
                from_input.add(v)
                frontier.append(v)
    to_output = {n - 1}
    frontier = [n - 1]
    while frontier:
        top = frontier.pop()
        for v in range(top):
            if rows[v][top] and v not in to_output:
                to_output.add(v)
                frontier.append(v)
    keep = sorted(from_input & to_output)
    if len(keep) < 2:  # input and output not connected
        return None
    if len(keep) == n:
        return spec
    matrix = np.ascontiguousarray(spec.matrix[np.ix_(keep, keep)])
    return CellSpec._trusted(matrix, tuple(spec.ops[i] for i in keep))


def validate(spec: CellSpec | Any) -> CellSpec:
    """The pruned cell of ``spec``; raises ``InvalidArchitecture`` saying precisely why it is not in the space.

    Same rules as ``nasbench.api.NASBench.is_valid`` (checked on the pruned cell): input connected to output,
    at most 7 vertices and 9 edges, ``input`` first, ``output`` last and the other ops in :data:`OPS`.
    ``spec`` may also be a ``(matrix, ops)`` pair or a ``{"matrix", "ops"}`` mapping (user input).
    """
    spec = as_spec(spec)
    matrix = np.ascontiguousarray(spec.matrix, dtype=np.uint8)
    pruned, reason = _validate_cached(matrix.shape[0], matrix.tobytes(), tuple(spec.ops))
    if reason is not None:
        raise InvalidArchitecture(reason)
    return pruned if pruned is not None else spec


@lru_cache(maxsize=1 << 17)
def _validate_cached(n: int, matrix_bytes: bytes, ops: tuple[str, ...]) -> tuple[CellSpec | None, str | None]:
    """``(pruned cell or None when nothing was pruned, reason it is invalid or None)`` of one exact cell.

    Memoised because mutation re-validates the same few dozen neighbours of a parent many times (a ``CellSpec``
    is immutable, so sharing the pruned one is safe). Invalid cells are cached as their reason.
    """
    spec = CellSpec._trusted(np.frombuffer(matrix_bytes, dtype=np.uint8).reshape(n, n), ops)
    try:
        pruned = _validate_uncached(spec)
    except InvalidArchitecture as exc:
        return None, str(exc)
    return (None if pruned is spec else pruned), None


def _validate_uncached(spec: CellSpec) -> CellSpec:
    pruned = prune(spec)
    if pruned is None:
        raise InvalidArchitecture(f"output is not reachable from input in {spec!r}")
    n = pruned.matrix.shape[0]
    if n > MAX_VERTICES:
        raise InvalidArchitecture(f"{n} vertices > {MAX_VERTICES} after pruning")
    n_edges = int(pruned.matrix.sum())
    if n_edges > MAX_EDGES:
        raise InvalidArchitecture(f"{n_edges} edges > {MAX_EDGES} after pruning")
    ops = pruned.ops
    if ops[0] != INPUT:
        raise InvalidArchitecture(f"the first op must be {INPUT!r}, got {ops[0]!r}")
    if ops[-1] != OUTPUT:
        raise InvalidArchitecture(f"the last op must be {OUTPUT!r}, got {ops[-1]!r}")
    for i, op in enumerate(ops[1:-1], start=1):
        if op not in OPS:
            raise InvalidArchitecture(f"op {op!r} of vertex {i} (after pruning) is not one of {', '.join(OPS)}")
    return pruned


def is_valid(spec: Any) -> bool:
    """True when ``spec`` is a NAS-Bench-101 cell (see :func:`validate`); never raises."""
    try:
        validate(spec)
    except InvalidArchitecture:
        return False
    return True


# =====================================================================================================
# Bulk validation of the padded-array schema
# =====================================================================================================
_STRICT_UPPER = np.triu(np.ones((MAX_VERTICES, MAX_VERTICES), dtype=bool), 1)


def check_arrays(
    adjacency: np.ndarray, labels: np.ndarray, n_vertices: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check cells in the padded-array schema; raises ``InvalidArchitecture`` naming the first bad row.

    Shapes, ``n_vertices`` in 2..7, input label first and output label at ``n_vertices - 1``, op labels (0..2)
    in between, 0/1 strictly upper-triangular adjacency. Returns ``(adjacency as uint8, labels, n_vertices as
    int64)``. Entries past ``n_vertices`` are ignored (the schema pads them with 0 / -3).
    """
    adjacency = np.asarray(adjacency)
    labels = np.asarray(labels)
    n_vertices = np.asarray(n_vertices).astype(np.int64).reshape(-1)
    count = n_vertices.shape[0]
    if adjacency.shape != (count, MAX_VERTICES, MAX_VERTICES):
        raise InvalidArchitecture(f"adjacency must have shape ({count}, 7, 7), got {adjacency.shape}")
    if labels.shape != (count, MAX_VERTICES):
        raise InvalidArchitecture(f"labels must have shape ({count}, 7), got {labels.shape}")
    if adjacency.dtype.kind not in "biu" or labels.dtype.kind not in "iu":
        raise InvalidArchitecture(f"adjacency/labels must be integer arrays, got {adjacency.dtype}/{labels.dtype}")
    if count == 0:
        return adjacency.astype(np.uint8), labels, n_vertices

    def first_bad(bad: np.ndarray) -> int:
        # Whole-array any() is fast; the per-row reduction runs only to name the row of an error.
        return int(np.flatnonzero(bad.reshape(count, -1).any(axis=1))[0])

    bad = (n_vertices < 2) | (n_vertices > MAX_VERTICES)
    if bad.any():
        row = first_bad(bad)
        raise InvalidArchitecture(f"row {row}: n_vertices = {n_vertices[row]} is not in 2..7")
    col = np.arange(MAX_VERTICES)
    last = (n_vertices - 1)[:, None]
    bad_ends = (labels[:, 0] != LABEL_INPUT) | (labels[np.arange(count), n_vertices - 1] != LABEL_OUTPUT)
    bad_ops = ((col > 0) & (col < last)) & ((labels < 0) | (labels >= len(OPS)))
    if bad_ends.any() or bad_ops.any():
        row = first_bad(bad_ends[:, None] | bad_ops)
        raise InvalidArchitecture(
            f"row {row}: labels {labels[row].tolist()} must be -1 (input), then op labels 0..2, then -2 (output) "
            f"at index n_vertices-1 = {n_vertices[row] - 1}"
        )
    inside = col[None, :] <= last  # [N,7]
    used = adjacency.astype(bool) & (inside[:, :, None] & inside[:, None, :])
    bad = (used & ~_STRICT_UPPER) | (adjacency > 1) | (adjacency < 0)
    if bad.any():
        raise InvalidArchitecture(f"row {first_bad(bad)}: adjacency must be 0/1 and strictly upper-triangular")
    return adjacency.astype(np.uint8, copy=False), labels, n_vertices
