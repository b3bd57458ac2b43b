"""The NAS-Bench-101 cell space as a SemiNAS :class:`SearchSpace` (framework-free: numpy and the stdlib only).

The parts live in modules by concern, each depending only on the ones above it:

* :mod:`~seminas_ray.spaces.nb101_cell` - :class:`CellSpec`, pruning and validity, the padded-array schema;
* :mod:`~seminas_ray.spaces.nb101_hash` - the exact isomorphism-invariant module hash (scalar and vectorised);
* :mod:`~seminas_ray.spaces.nb101_encoding` - the 27-token controller encoding and constrained decoding rules;
* :mod:`~seminas_ray.spaces.nb101_arrays` - cells in the padded-array schema (:class:`NB101Arrays`);
* :mod:`~seminas_ray.spaces.nb101_enumerate` - the 423,624 unique cells and their on-disk cache.

This module only ties them together: :class:`NB101Space` samples from the enumeration, mutates like the
nasbench example notebook, and keys cells by the module hash of their pruned graph.
"""
from __future__ import annotations

from typing import Any
from typing import Sequence

import numpy as np

from seminas_ray.spaces.base import InvalidArchitecture
from seminas_ray.spaces.base import SearchSpace
from seminas_ray.spaces.nb101_arrays import NB101Arrays
from seminas_ray.spaces.nb101_arrays import arrays_from_specs
from seminas_ray.spaces.nb101_cell import CONV1X1
from seminas_ray.spaces.nb101_cell import CONV3X3
from seminas_ray.spaces.nb101_cell import INPUT
from seminas_ray.spaces.nb101_cell import MAX_VERTICES
from seminas_ray.spaces.nb101_cell import MAXPOOL3X3
from seminas_ray.spaces.nb101_cell import OPS
from seminas_ray.spaces.nb101_cell import CellSpec
from seminas_ray.spaces.nb101_cell import as_spec
from seminas_ray.spaces.nb101_cell import is_valid
from seminas_ray.spaces.nb101_cell import prune
from seminas_ray.spaces.nb101_cell import validate
from seminas_ray.spaces.nb101_encoding import SEQ_LEN
from seminas_ray.spaces.nb101_encoding import VOCAB_SIZE
from seminas_ray.spaces.nb101_encoding import allowed_tokens
from seminas_ray.spaces.nb101_encoding import decode
from seminas_ray.spaces.nb101_encoding import encode
from seminas_ray.spaces.nb101_encoding import encode_arrays
from seminas_ray.spaces.nb101_enumerate import enumerate_nb101
from seminas_ray.spaces.nb101_hash import nb101_hash
from seminas_ray.spaces.nb101_hash import nb101_hash_arrays

#: the strictly upper-triangular entries of a 7-vertex matrix (the edges mutation may flip).
_UPPER = np.triu(np.ones((MAX_VERTICES, MAX_VERTICES), dtype=bool), 1)


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
        return validate(as_spec(config))

    def cost(self, arch: CellSpec) -> dict[str, float]:
        """Empty: NAS-Bench-101's parameter counts live in the benchmark table, not in the space."""
        return {}

    def describe(self, arch: CellSpec) -> str:
        """``<hash> <n>v/<e>e: op,op,...`` with short op names."""
        pruned = validate(arch)
        short = {CONV3X3: "c3", CONV1X1: "c1", MAXPOOL3X3: "mp"}
        inner = ",".join(short[o] for o in pruned.ops[1:-1]) or "-"
        return f"{self.key(pruned)} {pruned.n_vertices}v/{pruned.n_edges}e: {inner}"
