"""The NAS-Bench-201 cell space: 4 nodes, 6 edges, 5 candidate operations per edge (5^6 = 15,625 cells).

An architecture is an :class:`NB201Cell`, the 6 edge operations in the canonical edge order of the benchmark's
cell string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (edges 0->1; 0->2, 1->2; 0->3, 1->3, 2->3). Every one of the
15,625 cells is part of the benchmark (including disconnected ones such as all-``none``), so there is no
pruning or isomorphism to handle and the canonical cell string itself is the key.

Token encoding for the controller: one token per edge, op ``i`` (index into :data:`OPS`) -> token ``i + 1``;
token 0 is SOS/pad as in every space.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any
from typing import Iterator
from typing import Sequence

import numpy as np

from seminas_ray.spaces.base import InvalidArchitecture
from seminas_ray.spaces.base import SearchSpace

#: Candidate operations, in the order of the NAS-Bench-201 API (``none`` first).
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
_OP_INDEX = {op: i for i, op in enumerate(OPS)}

#: Edges as (to-node, from-node), in the order they appear in the cell string.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
N_EDGES = len(EDGES)
N_OPS = len(OPS)
N_CELLS = N_OPS**N_EDGES  # 15,625


@dataclass(frozen=True)
class NB201Cell:
    """One NAS-Bench-201 cell: ``ops[e]`` is the operation on edge ``EDGES[e]``.

    Construction checks the ops, so an ``NB201Cell`` is always a member of the space.
    """

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        ops = tuple(self.ops)
        if len(ops) != N_EDGES:
            raise InvalidArchitecture(f"an NB201 cell has {N_EDGES} edges, got {len(ops)} ops: {ops!r}")
        for edge, op in enumerate(ops):
            if op not in _OP_INDEX:
                raise InvalidArchitecture(f"unknown NB201 op {op!r} on edge {edge} (allowed: {', '.join(OPS)})")
        object.__setattr__(self, "ops", ops)

    def __str__(self) -> str:
        return format_cell(self.ops)

    @property
    def op_indices(self) -> tuple[int, ...]:
        """Op index (into :data:`OPS`) per edge."""
        return tuple(_OP_INDEX[op] for op in self.ops)

    @property
    def index(self) -> int:
        """Position of the cell in :func:`all_cells` order (base-5 number, edge 0 most significant)."""
        value = 0
        for i in self.op_indices:
            value = value * N_OPS + i
        return value


def format_cell(ops: Sequence[str]) -> str:
    """The canonical cell string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` for the 6 edge ops."""
    ops = tuple(ops)
    if len(ops) != N_EDGES:
        raise InvalidArchitecture(f"an NB201 cell has {N_EDGES} edges, got {len(ops)} ops: {ops!r}")
    nodes = []
    edge = 0
    for node in range(1, 4):
        parts = []
        for source in range(node):
            op = ops[edge]
            if op not in _OP_INDEX:
                raise InvalidArchitecture(f"unknown NB201 op {op!r} on edge {edge} (allowed: {', '.join(OPS)})")
            parts.append(f"{op}~{source}")
            edge += 1
        nodes.append("|" + "|".join(parts) + "|")
    return "+".join(nodes)


def parse_cell(text: str) -> NB201Cell:
    """Parse a cell string; raises ``InvalidArchitecture`` naming the offending part.

    Strict: node ``k`` must list exactly its inputs ``~0 .. ~k-1`` in that order, as the benchmark writes them, so
    that a parsed-then-formatted string equals its input (the round trip ``verify`` relies on).
    """
    if not isinstance(text, str):
        raise InvalidArchitecture(f"an NB201 cell string must be a str, got {type(text).__name__}")
    node_strs = text.strip().split("+")
    if len(node_strs) != 3:
        raise InvalidArchitecture(f"NB201 cell string {text!r}: expected 3 nodes separated by '+', got {len(node_strs)}")
    ops: list[str] = []
    for node, node_str in enumerate(node_strs, start=1):
        if not (node_str.startswith("|") and node_str.endswith("|") and len(node_str) >= 2):
            raise InvalidArchitecture(f"NB201 cell string {text!r}: node {node} part {node_str!r} must be '|...|'")
        parts = node_str[1:-1].split("|")
        if len(parts) != node:
            raise InvalidArchitecture(
                f"NB201 cell string {text!r}: node {node} part {node_str!r} needs {node} inputs, got {len(parts)}"
            )
        for source, part in enumerate(parts):
            op, sep, src = part.partition("~")
            if not sep or src != str(source):
                raise InvalidArchitecture(
                    f"NB201 cell string {text!r}: node {node} input {part!r} should be 'op~{source}'"
                )
            if op not in _OP_INDEX:
                raise InvalidArchitecture(
                    f"NB201 cell string {text!r}: unknown op {op!r} in {part!r} (allowed: {', '.join(OPS)})"
                )
            ops.append(op)
    return NB201Cell(tuple(ops))


def cell_from_index(index: int) -> NB201Cell:
    """Inverse of :attr:`NB201Cell.index`."""
    if not 0 <= int(index) < N_CELLS:
        raise InvalidArchitecture(f"NB201 cell index {index} outside 0..{N_CELLS - 1}")
    digits = []
    value = int(index)
    for _ in range(N_EDGES):
        value, digit = divmod(value, N_OPS)
        digits.append(digit)
    return NB201Cell(tuple(OPS[d] for d in reversed(digits)))


def all_cells() -> Iterator[NB201Cell]:
    """All 15,625 cells, in :attr:`NB201Cell.index` order."""
    for ops in itertools.product(OPS, repeat=N_EDGES):
        yield NB201Cell(ops)


class NB201Space(SearchSpace[NB201Cell]):
    """NAS-Bench-201 as a :class:`SearchSpace`.

    Methods that take an architecture also accept the cell string or a sequence of 6 op names (converted with
    :meth:`coerce`), which keeps table and config code short.
    """

    name = "nasbench201"
    vocab_size = N_OPS + 1  # token 0 = SOS/pad
    seq_len = N_EDGES
    size = N_CELLS

    # -- conversions --------------------------------------------------------------------------------------
    @staticmethod
    def coerce(arch: NB201Cell | str | Sequence[str]) -> NB201Cell:
        """An :class:`NB201Cell` from a cell, a cell string or 6 op names; ``InvalidArchitecture`` otherwise."""
        if isinstance(arch, NB201Cell):
            return arch
        if isinstance(arch, str):
            return parse_cell(arch)
        if isinstance(arch, (tuple, list)):
            return NB201Cell(tuple(arch))
        raise InvalidArchitecture(f"not an NB201 architecture: {arch!r}")

    def parse(self, text: str) -> NB201Cell:
        """Parse a cell string (see :func:`parse_cell`)."""
        return parse_cell(text)

    def format(self, arch: NB201Cell | Sequence[str]) -> str:
        """The canonical cell string of ``arch``."""
        return format_cell(self.coerce(arch).ops)

    def all_cells(self) -> list[NB201Cell]:
        """All 15,625 cells (see :func:`all_cells`)."""
        return list(all_cells())

    # -- sampling -------------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, n: int) -> list[NB201Cell]:
        """``n`` cells drawn uniformly from all 15,625: distinct when ``n <= 15,625`` (like ``NB101Space.sample``),
        with replacement beyond that."""
        n = int(n)
        idx = rng.choice(N_CELLS, size=n, replace=n > N_CELLS)
        return [cell_from_index(i) for i in idx.tolist()]

    def mutate(self, arch: NB201Cell | str | Sequence[str], rng: np.random.Generator) -> NB201Cell:
        """Change the op of one uniformly chosen edge to a different op (so the key always changes)."""
        cell = self.coerce(arch)
        ops = list(cell.ops)
        edge = int(rng.integers(N_EDGES))
        current = _OP_INDEX[ops[edge]]
        new = int(rng.integers(N_OPS - 1))
        ops[edge] = OPS[new if new < current else new + 1]
        return NB201Cell(tuple(ops))

    # -- encoding -------------------------------------------------------------------------------------------
    def encode(self, arch: NB201Cell | str | Sequence[str]) -> np.ndarray:
        """Tokens ``op_index + 1`` per edge (int64, length 6)."""
        cell = self.coerce(arch)
        return np.asarray([i + 1 for i in cell.op_indices], dtype=np.int64)

    def decode(self, tokens: Sequence[int] | np.ndarray) -> NB201Cell | None:
        """Inverse of :meth:`encode`; ``None`` for a wrong length or a token outside 1..5."""
        toks = np.asarray(tokens).reshape(-1)
        if toks.shape[0] != N_EDGES:
            return None
        ops = []
        for t in toks.tolist():
            if not 1 <= int(t) <= N_OPS:
                return None
            ops.append(OPS[int(t) - 1])
        return NB201Cell(tuple(ops))

    # -- validity and identity --------------------------------------------------------------------------
    def is_valid(self, arch: Any) -> bool:
        """True for any well-formed cell: all 15,625 cells are in the benchmark."""
        try:
            self.coerce(arch)
        except InvalidArchitecture:
            return False
        return True

    def key(self, arch: NB201Cell | str | Sequence[str]) -> str:
        """The canonical cell string (what the benchmark's ``cellstr`` column holds)."""
        return format_cell(self.coerce(arch).ops)

    def allowed_tokens(self, position: int) -> tuple[int, ...]:
        """Every op token (1..5) at every position."""
        if not 0 <= position < self.seq_len:
            raise IndexError(f"position {position} outside 0..{self.seq_len - 1}")
        return tuple(range(1, N_OPS + 1))

    # -- (de)serialisation ------------------------------------------------------------------------------
    def to_config(self, arch: NB201Cell | str | Sequence[str]) -> dict[str, Any]:
        """``{"cell": <cell string>}``."""
        return {"cell": self.key(arch)}

    def from_config(self, config: dict[str, Any]) -> NB201Cell:
        """Inverse of :meth:`to_config`."""
        if not isinstance(config, dict) or "cell" not in config:
            raise InvalidArchitecture(f"NB201 config needs a 'cell' entry, got {config!r}")
        return parse_cell(config["cell"])
