"""The NAS-Bench-101 module hash: an exact, isomorphism-invariant MD5 hash of a (pruned) cell.

:func:`hash_module` is a port of ``nasbench/lib/graph_util.py:hash_module`` (Weisfeiler-Lehman style rounds of
MD5 over sorted neighbour hashes); :func:`nb101_hash` applies it to ``(matrix, op names)`` with memoisation, and
:func:`nb101_hash_arrays` computes the same digests for many cells at once in the padded-array schema (numpy
builds the messages, only the MD5 calls run per message). All three give bitwise the benchmark's hashes.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from operator import methodcaller
from typing import Any
from typing import Sequence

import numpy as np

from seminas_ray.spaces.base import InvalidArchitecture
from seminas_ray.spaces.nb101_cell import LABEL_OF_OP
from seminas_ray.spaces.nb101_cell import MAX_VERTICES
from seminas_ray.spaces.nb101_cell import OPS
from seminas_ray.spaces.nb101_cell import check_arrays

try:  # CPython's HACL* MD5 has far less per-call overhead than OpenSSL's for short messages; same digest.
    from _md5 import md5 as _md5
except ImportError:  # pragma: no cover - CPython built without it
    _md5 = hashlib.md5


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
        return [LABEL_OF_OP[op] for op in ops]
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
    adjacency, labels, n_vertices = check_arrays(adjacency, labels, n_vertices)
    out = np.empty(adjacency.shape[0], dtype="S32")
    for n in np.unique(n_vertices).tolist():
        idx = np.flatnonzero(n_vertices == n)
        for start in range(0, idx.shape[0], chunk):
            part = idx[start : start + chunk]
            out[part] = _hash_same_size(adjacency[part, :n, :n].astype(bool), labels[part, :n])
            if progress is not None:
                progress.update(part.shape[0])
    return out
