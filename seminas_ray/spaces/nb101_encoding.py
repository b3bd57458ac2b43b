"""The 27-token controller encoding of NAS-Bench-101 cells, and its constrained decoding rules.

As ``nasbench/utils.py:convert_arch_to_seq`` of SemiNAS: vocabulary 7 (0 SOS/pad, 1 no edge, 2 edge,
3 conv1x1, 4 conv3x3, 5 maxpool, 6 output); for column ``j = 1..6`` of the 7x7 matrix the edge tokens
``matrix[0..j-1][j] + 1`` and then the op token of vertex ``j``; 27 tokens, op tokens at positions
1, 4, 8, 13, 19, 26. A pruned cell with ``n < 7`` vertices has its output token 6 in column ``n-1`` and zeros
after it. Note the token op order (3 = conv1x1, 4 = conv3x3) differs from the hash label order
(0 = conv3x3, 1 = conv1x1, 2 = maxpool).
"""
from __future__ import annotations

from typing import Any
from typing import Sequence

import numpy as np

from seminas_ray.spaces.base import InvalidArchitecture
from seminas_ray.spaces.nb101_cell import CONV1X1
from seminas_ray.spaces.nb101_cell import CONV3X3
from seminas_ray.spaces.nb101_cell import INPUT
from seminas_ray.spaces.nb101_cell import MAX_VERTICES
from seminas_ray.spaces.nb101_cell import MAXPOOL3X3
from seminas_ray.spaces.nb101_cell import OUTPUT
from seminas_ray.spaces.nb101_cell import CellSpec
from seminas_ray.spaces.nb101_cell import check_arrays
from seminas_ray.spaces.nb101_cell import validate

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


def encode_arrays(adjacency: np.ndarray, labels: np.ndarray, n_vertices: np.ndarray) -> np.ndarray:
    """Token sequences ([N,27] int64) of pruned cells in the padded-array schema, without a per-cell Python loop."""
    adjacency, labels, n_vertices = check_arrays(adjacency, labels, n_vertices)
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
