"""The NAS-Bench-101 cell space (framework-free: numpy and the standard library only).

A cell is a :class:`CellSpec`: an upper-triangular 0/1 adjacency matrix over ``n`` vertices plus one op name per
vertex (``input`` first, ``output`` last, the others from :data:`OPS`). NAS-Bench-101 identifies a cell by its
*pruned* graph (vertices not on an input->output path are dropped, :func:`prune`) and by an isomorphism-invariant
MD5 "module hash" of that graph (:func:`nb101_hash`, a port of ``nasbench/lib/graph_util.py:hash_module``). The
space has 423,624 unique cells (:func:`enumerate_nb101`).

Token encoding for the controller (``nasbench/utils.py:convert_arch_to_seq`` of SemiNAS): vocabulary 7 (0 SOS/pad,
1 no edge, 2 edge, 3 conv1x1, 4 conv3x3, 5 maxpool, 6 output); for column ``j = 1..6`` of the 7x7 matrix the edge
tokens ``matrix[0..j-1][j] + 1`` and then the op token of vertex ``j``; 27 tokens, op tokens at positions
1, 4, 8, 13, 19, 26. A pruned cell with ``n < 7`` vertices has its output token 6 in column ``n-1`` and zeros
after it. Note the token op order (3 = conv1x1, 4 = conv3x3) differs from the hash label order
(0 = conv3x3, 1 = conv1x1, 2 = maxpool).

Padded-array schema (shared with ``nb101_subset20k.npz`` and the enumeration cache): ``adjacency`` [N,7,7] uint8
zero-padded past ``n_vertices``, ``labels`` [N,7] int8 with -1 input, -2 output, 0 conv3x3, 1 conv1x1,
2 maxpool, -3 padding. :func:`specs_from_arrays`, :func:`arrays_from_specs`, :func:`encode_arrays` and
:func:`nb101_hash_arrays` work on it in bulk, because the controller handles 10k-1M cells at a time.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from operator import methodcaller
from pathlib import Path
from typing import Any
from typing import Iterable
from typing import Sequence

import numpy as np

from seminas_ray.spaces.base import InvalidArchitecture
from seminas_ray.spaces.base import SearchSpace

try:  # CPython's HACL* MD5 has far less per-call overhead than OpenSSL's for short messages; same digest.
    from _md5 import md5 as _md5
except ImportError:  # pragma: no cover - CPython built without it
    _md5 = hashlib.md5

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
_LABEL_OF_OP: dict[str, int] = {INPUT: LABEL_INPUT, OUTPUT: LABEL_OUTPUT, **{op: i for i, op in enumerate(OPS)}}
_OP_OF_LABEL: dict[int, str] = {label: op for op, label in _LABEL_OF_OP.items()}

# Tokens.
VOCAB_SIZE = 7
SEQ_LEN = (MAX_VERTICES + 2) * (MAX_VERTICES - 1) // 2  # 27
TOKEN_PAD = 0
TOKEN_NO_EDGE = 1
TOKEN_EDGE = 2
TOKEN_OUTPUT = 6
_TOKEN_OF_OP: dict[str, int] = {CONV1X1: 3, CONV3X3: 4, MAXPOOL3X3: 5, OUTPUT: TOKEN_OUTPUT}
_OP_OF_TOKEN: dict[int, str] = {t: op for op, t in _TOKEN_OF_OP.items()}
OP_TOKENS: tuple[int, ...] = (3, 4, 5, 6)
EDGE_TOKENS: tuple[int, ...] = (TOKEN_NO_EDGE, TOKEN_EDGE)


def _column_offset(col: int) -> int:
    """Position of the first edge token of matrix column ``col`` (1..6) in the token sequence."""
    return col * (col + 1) // 2 - 1


#: Position of the op token of vertex ``j`` (1..6): 1, 4, 8, 13, 19, 26.
OP_POSITIONS: tuple[int, ...] = tuple(_column_offset(j) + j for j in range(1, MAX_VERTICES))

# Index arrays for the vectorised encoder: edge token positions with their (row, col), op token positions with
# their vertex, and the matrix column every position belongs to.
_EDGE_POS = np.array([_column_offset(j) + i for j in range(1, MAX_VERTICES) for i in range(j)], dtype=np.intp)
_EDGE_ROW = np.array([i for j in range(1, MAX_VERTICES) for i in range(j)], dtype=np.intp)
_EDGE_COL = np.array([j for j in range(1, MAX_VERTICES) for i in range(j)], dtype=np.intp)
_OP_POS = np.array(OP_POSITIONS, dtype=np.intp)
_OP_COL = np.arange(1, MAX_VERTICES, dtype=np.intp)
_POS_COL = np.empty(SEQ_LEN, dtype=np.int64)
_POS_COL[_EDGE_POS] = _EDGE_COL
_POS_COL[_OP_POS] = _OP_COL
# label + 3 -> token: pad -> 0, output -> 6, input -> 0 (never encoded), conv3x3 -> 4, conv1x1 -> 3, maxpool -> 5.
_TOKEN_OF_LABEL_LUT = np.array([0, TOKEN_OUTPUT, 0, 4, 3, 5], dtype=np.int64)


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


def _as_spec(spec: Any) -> CellSpec:
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
    spec = _as_spec(spec)
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
    spec = _as_spec(spec)
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
# Module hash (nasbench/lib/graph_util.py:hash_module)
# =====================================================================================================
def hash_module(matrix: np.ndarray | Sequence[Sequence[int]], labeling: Sequence[int]) -> str:
    """The NAS-Bench-101 module hash of a graph with integer vertex labels (a port of ``graph_util.hash_module``).

    Each vertex starts as ``md5(str((out_degree, in_degree, label)))``; then ``n`` times every vertex becomes
    ``md5(sorted in-neighbour hashes | sorted out-neighbour hashes | own hash)``; the result is
    ``md5(str(sorted(vertex hashes)))``. Isomorphic graphs hash alike. The graph is hashed as given (no pruning).
    """
    rows = np.asarray(matrix).tolist()
    n = len(rows)
    labels = [int(x) for x in labeling]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for a {n}-vertex matrix")
    ins = [[w for w in range(n) if rows[w][v]] for v in range(n)]
    outs = [[w for w in range(n) if rows[v][w]] for v in range(n)]
    # str() of a tuple of Python ints, e.g. "(1, 0, -1)": must not be numpy scalars.
    hashes = [_md5(str((len(outs[v]), len(ins[v]), labels[v])).encode()).hexdigest() for v in range(n)]
    plan = list(zip(range(n), ins, outs))
    for _ in range(n):
        hashes = [
            _md5(
                (
                    "".join(sorted([hashes[w] for w in i]))
                    + "|"
                    + "".join(sorted([hashes[w] for w in o]))
                    + "|"
                    + hashes[v]
                ).encode()
            ).hexdigest()
            for v, i, o in plan
        ]
    return _md5(str(sorted(hashes)).encode()).hexdigest()


def op_labels(ops: Sequence[str]) -> list[int]:
    """Hash labels of op names: input -1, output -2, interior ops their index in :data:`OPS`."""
    try:
        return [_LABEL_OF_OP[op] for op in ops]
    except KeyError as exc:
        raise InvalidArchitecture(f"unknown NB101 op {exc.args[0]!r} (allowed: {', '.join(OPS)})") from None


def nb101_hash(matrix: np.ndarray | Sequence[Sequence[int]], ops: Sequence[str]) -> str:
    """The 32-hex NAS-Bench-101 module hash of ``(matrix, ops)`` as given (pass a pruned cell, as the benchmark
    stores; ``NB101Space.key`` prunes first).

    Memoised on the exact ``(matrix, ops)``: evolution and restricted-space mutation hash the same few dozen
    neighbours of a parent over and over, and one hash is ~50 md5 calls in Python.
    """
    bits = np.ascontiguousarray(np.asarray(matrix).astype(bool), dtype=np.uint8)
    if bits.ndim != 2 or bits.shape[0] != bits.shape[1]:
        return hash_module(matrix, op_labels(ops))  # not a cell's matrix: hash_module says what is wrong
    return _nb101_hash_cached(bits.shape[0], bits.tobytes(), tuple(ops))


@lru_cache(maxsize=1 << 17)
def _nb101_hash_cached(n: int, matrix_bytes: bytes, ops: tuple[str, ...]) -> str:
    """``nb101_hash`` of one exact cell, keyed like ``_validate_cached`` (vertex count, uint8 bytes, ops)."""
    return hash_module(np.frombuffer(matrix_bytes, dtype=np.uint8).reshape(n, n), op_labels(ops))


_DIGEST = methodcaller("digest")
#: byte -> its two lower-case hex characters, as a little-endian uint16 (so a gather yields ASCII in order).
_HEX_PAIRS = np.array([int.from_bytes(f"{b:02x}".encode(), "little") for b in range(256)], dtype="<u2")
#: the strictly upper-triangular entries of a 7-vertex matrix (the edges mutation may flip).
_UPPER = np.triu(np.ones((MAX_VERTICES, MAX_VERTICES), dtype=bool), 1)
#: _EARLIER[v, w]: w has a smaller index than v (tie-break between equal hashes).
_EARLIER = np.tril(np.ones((MAX_VERTICES, MAX_VERTICES), dtype=bool), -1)


def _md5_rows(messages: np.ndarray) -> np.ndarray:
    """MD5 digests ([m,16] uint8) of the rows of an [m, L] uint8 array (one MD5 call per row, looped in C)."""
    m, width = messages.shape
    if m == 0:
        return np.zeros((0, 16), dtype=np.uint8)
    # Rows as bytes objects via a fixed-width bytes view (rows never end in NUL: they end in a hex digit or "]").
    rows = np.ascontiguousarray(messages).view(f"S{width}").reshape(m).tolist()
    return np.frombuffer(b"".join(map(_DIGEST, map(_md5, rows))), dtype=np.uint8).reshape(m, 16)


def _hex64(digests: np.ndarray) -> np.ndarray:
    """Lower-case hex of [k,16] uint8 digests as [k,4] uint64 words (32 ASCII bytes per row, for fast gathers)."""
    return _HEX_PAIRS[digests].view(np.uint64).reshape(digests.shape[0], 4)


def _hash_order(digests: np.ndarray) -> np.ndarray:
    """Per graph, its vertices ordered by hex hash string: digests [G,n,16] -> [G,n] vertex indices.

    Hex order is digest byte order, i.e. the order of the (high, low) big-endian 64-bit halves. A vertex's rank
    is the number of vertices before it (smaller key, or an equal key and a smaller index), from pairwise
    comparisons, which is much faster than sorting many 7-element rows.
    """
    be = np.ascontiguousarray(digests).view(">u8")
    hi, lo = be[..., 0], be[..., 1]
    g, n = hi.shape
    hi_v, hi_w = hi[:, :, None], hi[:, None, :]
    lo_v, lo_w = lo[:, :, None], lo[:, None, :]
    before = (hi_w < hi_v) | ((hi_w == hi_v) & ((lo_w < lo_v) | ((lo_w == lo_v) & _EARLIER[:n, :n])))
    rank = before.sum(axis=2)  # a permutation of 0..n-1 per graph
    order = np.empty_like(rank)
    np.put_along_axis(order, rank, np.broadcast_to(np.arange(n), (g, n)), axis=1)
    return order


def _sorted_rows(values: np.ndarray, neighbours: np.ndarray, bound: int) -> np.ndarray:
    """``values`` of each row's neighbours in ascending order: [m, d] from flat neighbour ids (d >= 1, values in
    ``0..bound-1``).

    Sorting tiny rows one by one is slow, so rows are offset by ``row * bound`` and sorted as one flat array.
    """
    picked = np.take(values, neighbours)
    m, d = picked.shape
    if d == 1:
        return picked
    if d == 2:
        first, second = picked[:, :1], picked[:, 1:]
        return np.concatenate([np.minimum(first, second), np.maximum(first, second)], axis=1)
    offset = (np.arange(m, dtype=np.int64) * bound)[:, None]
    return np.sort((picked + offset).reshape(-1)).reshape(m, d) - offset


def _messages(
    vid: np.ndarray,
    base: np.ndarray,
    ins: np.ndarray | None,
    outs: np.ndarray | None,
    rank_flat: np.ndarray,
    sorted_hex64: np.ndarray,
    hex64: np.ndarray,
    n: int,
) -> np.ndarray:
    """WL messages ``sorted in-hashes | sorted out-hashes | own hash`` of vertices ``vid`` ([m, L] uint8)."""
    m = vid.shape[0]
    d_in = 0 if ins is None else ins.shape[1]
    d_out = 0 if outs is None else outs.shape[1]
    message = np.empty((m, 32 * (d_in + d_out + 1) + 2), dtype=np.uint8)
    cut = 32 * d_in
    if ins is not None:
        ranks = _sorted_rows(rank_flat, ins, n)
        message[:, :cut] = np.take(sorted_hex64, base + ranks, axis=0).view(np.uint8).reshape(m, cut)
    message[:, cut] = ord("|")
    if outs is not None:
        ranks = _sorted_rows(rank_flat, outs, n)
        message[:, cut + 1 : cut + 1 + 32 * d_out] = (
            np.take(sorted_hex64, base + ranks, axis=0).view(np.uint8).reshape(m, 32 * d_out)
        )
    message[:, -33] = ord("|")
    message[:, -32:] = np.take(hex64, vid, axis=0).view(np.uint8).reshape(m, 32)
    return message


def _hash_same_size(adj: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Vectorised :func:`hash_module` for G graphs of the same size n: adj [G,n,n] bool, labels [G,n] -> [G] S32.

    Each WL round builds every vertex's message (sorted in-neighbour hashes, "|", sorted out-neighbour hashes,
    "|", own hash) as a byte array with numpy, one array per (in-degree, out-degree) group since those share a
    message length; only the MD5 calls run one per message (in C, via ``map``).
    """
    g, n, _ = adj.shape
    indeg = adj.sum(axis=1)  # [G,n]
    outdeg = adj.sum(axis=2)
    # Initial hashes md5(str((out_degree, in_degree, label))), from a small table of the distinct triples.
    codes = (outdeg.astype(np.int64) * (n + 1) + indeg) * 8 + (labels.astype(np.int64) + 3)
    uniq, inverse = np.unique(codes, return_inverse=True)
    table = np.empty((uniq.shape[0], 16), dtype=np.uint8)
    for i, code in enumerate(uniq.tolist()):
        triple = (code // 8 // (n + 1), code // 8 % (n + 1), code % 8 - 3)  # Python ints, as str() needs
        table[i] = np.frombuffer(_md5(str(triple).encode()).digest(), dtype=np.uint8)
    digests = table[inverse.reshape(-1)]  # [G*n,16]; flat vertex id = graph * n + vertex
    graph_base = (np.arange(g) * n)[:, None]
    # Static per-group data: flat vertex ids, flat neighbour ids, degrees.
    groups = []
    degree_pair = (indeg * (n + 1) + outdeg).reshape(-1)
    in_flat = np.ascontiguousarray(adj.transpose(0, 2, 1)).reshape(g * n, n)  # row (g, v): in-neighbours w
    out_flat = adj.reshape(g * n, n)
    for code in np.unique(degree_pair).tolist():
        vid = np.flatnonzero(degree_pair == code)
        d_in, d_out = divmod(code, n + 1)
        base = (vid // n * n)[:, None]
        ins = base + np.nonzero(in_flat[vid])[1].reshape(-1, d_in) if d_in else None
        outs = base + np.nonzero(out_flat[vid])[1].reshape(-1, d_out) if d_out else None
        groups.append((vid, base, d_in, d_out, ins, outs))
    positions = np.broadcast_to(np.arange(n), (g, n))
    ids = inverse.reshape(-1).astype(np.int64)  # initial class (table row) of every vertex
    id_bits = max(1, (table.shape[0] - 1).bit_length())
    for round_ in range(n):
        order = _hash_order(digests.reshape(g, n, 16))
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, positions, axis=1)
        rank_flat = rank.reshape(-1)
        hex64 = _hex64(digests)
        sorted_hex64 = np.take(hex64, (graph_base + order).reshape(-1), axis=0)  # row g*n+r: rank r of graph g
        new = np.empty_like(digests)
        for vid, base, d_in, d_out, ins, outs in groups:
            if round_ == 0 and (d_in + d_out + 1) * id_bits <= 63:
                # A first-round message depends only on the initial classes of the vertex and its neighbours,
                # so most are repeats (98% in the enumeration): hash each distinct one once. The key packs the
                # own class and the sorted neighbour classes, which determine the message.
                key = ids[vid]
                for neighbours in (ins, outs):
                    if neighbours is not None:
                        for column in _sorted_rows(ids, neighbours, table.shape[0]).T:
                            key = (key << id_bits) | column
                _, first, back = np.unique(key, return_index=True, return_inverse=True)
                sub_ins = None if ins is None else ins[first]
                sub_outs = None if outs is None else outs[first]
                messages = _messages(vid[first], base[first], sub_ins, sub_outs, rank_flat, sorted_hex64, hex64, n)
                new[vid] = _md5_rows(messages)[back.reshape(-1)]
            else:
                new[vid] = _md5_rows(_messages(vid, base, ins, outs, rank_flat, sorted_hex64, hex64, n))
        digests = new
    # Final: md5(str(sorted(hashes))) = md5("['h0', 'h1', ...]"), i.e. items "'<hex>', " without the last ", ".
    order = _hash_order(digests.reshape(g, n, 16))
    ordered = np.take(_hex64(digests), (graph_base + order).reshape(-1), axis=0).view(np.uint8).reshape(g, n, 32)
    item = np.empty((g, n, 36), dtype=np.uint8)
    item[:, :, 0] = item[:, :, 33] = ord("'")
    item[:, :, 1:33] = ordered
    item[:, :, 34] = ord(",")
    item[:, :, 35] = ord(" ")
    message = np.empty((g, 36 * n), dtype=np.uint8)
    message[:, 0] = ord("[")
    message[:, 1:-1] = item.reshape(g, 36 * n)[:, :-2]
    message[:, -1] = ord("]")
    return np.ascontiguousarray(_hex64(_md5_rows(message))).view("S32").reshape(g)


def nb101_hash_arrays(
    adjacency: np.ndarray,
    labels: np.ndarray,
    n_vertices: np.ndarray,
    *,
    chunk: int = 20_000,
    progress: Any = None,
) -> np.ndarray:
    """Module hashes ([N] S32) of cells in the padded-array schema, vectorised (about 20x faster than a loop of
    :func:`nb101_hash`).

    The cells are hashed as given, so pass pruned cells (tables and the enumeration store them pruned).
    ``progress`` is an optional tqdm-like object whose ``update(k)`` is called after each chunk of k cells.
    """
    adjacency, labels, n_vertices = _check_arrays(adjacency, labels, n_vertices)
    out = np.empty(adjacency.shape[0], dtype="S32")
    for n in np.unique(n_vertices).tolist():
        idx = np.flatnonzero(n_vertices == n)
        for start in range(0, idx.shape[0], chunk):
            part = idx[start : start + chunk]
            out[part] = _hash_same_size(adjacency[part, :n, :n].astype(bool), labels[part, :n])
            if progress is not None:
                progress.update(part.shape[0])
    return out


# =====================================================================================================
# Padded-array schema <-> CellSpec, and tokens
# =====================================================================================================
_STRICT_UPPER = np.triu(np.ones((MAX_VERTICES, MAX_VERTICES), dtype=bool), 1)


def _check_arrays(
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


def specs_from_arrays(adjacency: np.ndarray, labels: np.ndarray, n_vertices: np.ndarray) -> list[CellSpec]:
    """``CellSpec`` objects from the padded-array schema (cells taken as given: they should be pruned)."""
    adjacency, labels, n_vertices = _check_arrays(adjacency, labels, n_vertices)
    ops_cache: dict[bytes, tuple[str, ...]] = {}  # few distinct label rows: build each op tuple once
    out = []
    for a, lab, n in zip(adjacency, labels, n_vertices.tolist()):
        row = lab[:n]
        key = row.tobytes()
        ops = ops_cache.get(key)
        if ops is None:
            ops = ops_cache[key] = tuple(_OP_OF_LABEL[int(x)] for x in row)
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
        labels[i, :n] = [_LABEL_OF_OP[op] for op in spec.ops]
        n_vertices[i] = n
    return adjacency, labels, n_vertices


def encode_arrays(adjacency: np.ndarray, labels: np.ndarray, n_vertices: np.ndarray) -> np.ndarray:
    """Token sequences ([N,27] int64) of pruned cells in the padded-array schema, without a per-cell Python loop."""
    adjacency, labels, n_vertices = _check_arrays(adjacency, labels, n_vertices)
    count = adjacency.shape[0]
    tokens = np.empty((count, SEQ_LEN), dtype=np.int64)
    tokens[:, _EDGE_POS] = adjacency[:, _EDGE_ROW, _EDGE_COL].astype(np.int64) + 1
    tokens[:, _OP_POS] = _TOKEN_OF_LABEL_LUT[labels[:, _OP_COL].astype(np.int64) + 3]
    tokens[_POS_COL[None, :] > (n_vertices[:, None] - 1)] = TOKEN_PAD  # columns past the output vertex
    return tokens


def encode(spec: CellSpec | Any) -> np.ndarray:
    """Token sequence (27, int64) of the pruned cell; raises ``InvalidArchitecture`` for an invalid cell."""
    pruned = validate(spec)
    n = pruned.matrix.shape[0]
    tokens = np.zeros(SEQ_LEN, dtype=np.int64)
    for j in range(1, n):
        off = _column_offset(j)
        tokens[off : off + j] = pruned.matrix[:j, j].astype(np.int64) + 1
        tokens[off + j] = _TOKEN_OF_OP[pruned.ops[j]]
    return tokens


def decode(tokens: Sequence[int] | np.ndarray) -> CellSpec | None:
    """The pruned cell described by ``tokens``, or ``None`` when they do not describe a valid cell (never raises).

    Accepts the padded form produced by :func:`encode` and the unpadded 27-token output of constrained greedy
    decoding: columns are read in order until the output token 6; when it sits in column ``k < 6`` the cell is
    vertices ``0..k`` and later columns are ignored. Every read edge token must be 1/2 and every read op token
    3..6; no output token by column 6 is invalid.
    """
    try:
        arr = np.asarray(tokens)
        if arr.shape != (SEQ_LEN,) or arr.dtype.kind not in "biuf":
            return None
        if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and np.array_equal(arr, np.round(arr))):
            return None
        seq = arr.astype(np.int64).tolist()
    except (TypeError, ValueError, OverflowError):
        return None
    n = None
    for j in range(1, MAX_VERTICES):
        off = _column_offset(j)
        if any(t not in EDGE_TOKENS for t in seq[off : off + j]):
            return None
        op = seq[off + j]
        if op not in _OP_OF_TOKEN:
            return None
        if op == TOKEN_OUTPUT:
            n = j + 1
            break
    if n is None:
        return None
    matrix = np.zeros((n, n), dtype=np.uint8)
    ops = [INPUT]
    for j in range(1, n):
        off = _column_offset(j)
        matrix[:j, j] = np.asarray(seq[off : off + j]) - 1
        ops.append(_OP_OF_TOKEN[seq[off + j]])
    try:
        return validate(CellSpec._trusted(matrix, tuple(ops)))
    except InvalidArchitecture:
        return None


def allowed_tokens(position: int) -> tuple[int, ...]:
    """Tokens constrained decoding may emit at ``position``: ops (3..6) at op positions, else edges (1, 2)."""
    if not 0 <= position < SEQ_LEN:
        raise IndexError(f"position {position} outside 0..{SEQ_LEN - 1}")
    return OP_TOKENS if position in OP_POSITIONS else EDGE_TOKENS


# =====================================================================================================
# Cells in the padded-array schema (the enumeration, a sample of it)
# =====================================================================================================
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


def enumerate_nb101(
    progress: bool = True, *, use_cache: bool = True, cache_path: str | Path | None = None
) -> NB101Arrays:
    """All 423,624 unique NAS-Bench-101 cells (sorted by module hash), from the cache or built and cached.

    Follows ``nasbench/scripts/generate_graphs.py``: every upper-triangular graph of 2..7 vertices with at most 9
    edges whose pruning is a no-op, every op labelling, deduplicated by module hash; each hash keeps the first
    (matrix, labelling) in that script's iteration order. The cache
    (``cache_dir("nasbench101")/nb101_enumeration_v1.npz``) is validated on load and rebuilt with a warning if
    it is corrupt. See :mod:`seminas_ray.spaces._nb101_enumerate`.
    """
    from seminas_ray.spaces import _nb101_enumerate

    if not use_cache:
        return _nb101_enumerate.build_enumeration(progress=progress)
    return _nb101_enumerate.load_or_build(cache_path, progress=progress)


# =====================================================================================================
# The space
# =====================================================================================================
class NB101Space(SearchSpace[CellSpec]):
    """NAS-Bench-101 as a SemiNAS search space (vocabulary 7, 27 tokens; key = module hash of the pruned cell).

    ``enumeration`` (optional) replaces the full 423,624-cell enumeration as the pool ``sample`` draws from;
    by default it is loaded (or built once and cached, ~20 s) on the first ``sample``.
    """

    name = "nasbench101"
    vocab_size = VOCAB_SIZE
    seq_len = SEQ_LEN

    #: ``mutation_rate`` of the nasbench example notebook (edge flip probability rate/7 per upper-triangular entry,
    #: so 3 flips per try in expectation; op change probability rate/5 per interior vertex, so 1 per try).
    mutation_rate: float = 1.0
    max_mutation_tries: int = 10_000

    def __init__(self, enumeration: NB101Arrays | None = None, *, progress: bool = True) -> None:
        self._enumeration = enumeration
        self._progress = progress

    @property
    def enumeration(self) -> NB101Arrays:
        """The cells ``sample`` draws from (loaded or built on first use)."""
        if self._enumeration is None:
            self._enumeration = enumerate_nb101(progress=self._progress)
        return self._enumeration

    # -- sampling -------------------------------------------------------------------------------------------
    def sample_arrays(self, rng: np.random.Generator, n: int) -> NB101Arrays:
        """``n`` distinct cells drawn uniformly (without replacement) from the enumeration, as arrays.

        Like SemiNAS, which draws unlabelled archs from the shuffled NAS-Bench-101 hash list.
        """
        pool = self.enumeration
        n = int(n)
        if n < 0 or n > len(pool):
            raise ValueError(f"cannot draw {n} distinct cells from a pool of {len(pool)}")
        return pool.take(rng.choice(len(pool), size=n, replace=False))

    def sample(self, rng: np.random.Generator, n: int) -> list[CellSpec]:
        """``n`` distinct cells drawn uniformly from the unique cells (see :meth:`sample_arrays`), in random order."""
        return self.sample_arrays(rng, n).specs()

    def mutate(self, arch: CellSpec, rng: np.random.Generator) -> CellSpec:
        """A valid cell with a different key: the regularized-evolution mutation of the nasbench example notebook.

        The pruned cell is embedded in 7 vertices (a smaller cell gets disconnected interior vertices with random
        ops just before its output, so mutation can grow it). Then each of the 21 upper-triangular entries flips
        with probability ``mutation_rate / 7`` and each of the 5 interior ops is resampled (to a different op)
        with probability ``mutation_rate / 5``; this repeats until the result is valid and its key differs.
        """
        base = validate(arch)
        old_key = self.key(base)
        n = base.matrix.shape[0]
        matrix = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.uint8)
        keep = list(range(n - 1)) + [MAX_VERTICES - 1]  # where the old vertices go
        matrix[np.ix_(keep, keep)] = base.matrix
        ops = [INPUT] * MAX_VERTICES
        for old, new in enumerate(keep):
            ops[new] = base.ops[old]
        for v in range(n - 1, MAX_VERTICES - 1):
            ops[v] = OPS[int(rng.integers(len(OPS)))]
        edge_p = self.mutation_rate / MAX_VERTICES
        op_p = self.mutation_rate / (MAX_VERTICES - 2)
        for _ in range(self.max_mutation_tries):
            flips = (rng.random((MAX_VERTICES, MAX_VERTICES)) < edge_p) & _UPPER
            new_matrix = matrix ^ flips.astype(np.uint8)
            new_ops = list(ops)
            for v in range(1, MAX_VERTICES - 1):
                if rng.random() < op_p:
                    choices = [o for o in OPS if o != new_ops[v]]
                    new_ops[v] = choices[int(rng.integers(len(choices)))]
            candidate = CellSpec._trusted(new_matrix, tuple(new_ops))
            try:
                pruned = validate(candidate)
            except InvalidArchitecture:
                continue
            if nb101_hash(pruned.matrix, pruned.ops) != old_key:
                return pruned
        raise RuntimeError(f"no valid mutation of {base!r} in {self.max_mutation_tries} tries")

    # -- encoding -------------------------------------------------------------------------------------------
    def encode(self, arch: CellSpec) -> np.ndarray:
        return encode(arch)

    def decode(self, tokens: Sequence[int] | np.ndarray) -> CellSpec | None:
        return decode(tokens)

    def encode_many(self, archs: Sequence[CellSpec]) -> np.ndarray:
        """``[n, 27]`` int64 tokens via the vectorised :func:`encode_arrays`."""
        if len(archs) == 0:
            return np.zeros((0, SEQ_LEN), dtype=np.int64)
        return encode_arrays(*arrays_from_specs(archs))

    # -- validity and identity ----------------------------------------------------------------------------
    def is_valid(self, arch: Any) -> bool:
        return is_valid(arch)

    def validate(self, arch: Any) -> CellSpec:
        """The pruned cell, or ``InvalidArchitecture`` with the reason."""
        return validate(arch)

    def prune(self, arch: CellSpec) -> CellSpec | None:
        return prune(arch)

    def key(self, arch: CellSpec) -> str:
        """Module hash of the pruned cell; raises ``InvalidArchitecture`` for a cell outside the space."""
        pruned = validate(arch)
        return nb101_hash(pruned.matrix, pruned.ops)

    def keys(self, archs: Sequence[CellSpec]) -> list[str]:
        """``key`` of many cells at once (vectorised hashing)."""
        if len(archs) == 0:
            return []
        return nb101_hash_arrays(*arrays_from_specs(archs)).astype("U32").tolist()

    # -- constrained decoding -----------------------------------------------------------------------------
    def allowed_tokens(self, position: int) -> tuple[int, ...]:
        return allowed_tokens(position)

    # -- (de)serialisation --------------------------------------------------------------------------------
    def to_config(self, arch: CellSpec) -> dict[str, Any]:
        """``{"matrix": [[...]], "ops": [...]}`` of the pruned cell (plain lists, JSON-able)."""
        pruned = validate(arch)
        return {"matrix": pruned.matrix.tolist(), "ops": list(pruned.ops)}

    def from_config(self, config: dict[str, Any]) -> CellSpec:
        """The pruned, validated cell of a ``{"matrix", "ops"}`` config; ``InvalidArchitecture`` otherwise."""
        if not isinstance(config, dict):
            raise InvalidArchitecture(f"an NB101 config must be a dict with 'matrix' and 'ops', got {config!r}"[:300])
        return validate(_as_spec(config))

    def cost(self, arch: CellSpec) -> dict[str, float]:
        """Empty: NAS-Bench-101's parameter counts live in the benchmark table, not in the space."""
        return {}

    def describe(self, arch: CellSpec) -> str:
        """``<hash> <n>v/<e>e: op,op,...`` with short op names."""
        pruned = validate(arch)
        short = {CONV3X3: "c3", CONV1X1: "c1", MAXPOOL3X3: "mp"}
        inner = ",".join(short[o] for o in pruned.ops[1:-1]) or "-"
        return f"{self.key(pruned)} {pruned.n_vertices}v/{pruned.n_edges}e: {inner}"
