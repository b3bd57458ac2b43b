"""Pseudo-labelling of unlabelled pools, split into shards that can run anywhere (here or as Ray tasks).

How the pool is drawn depends on the space:

- **Indexed spaces** (:func:`index_pool`): NAS-Bench-101 over its enumeration, NAS-Bench-201, and any
  ``RestrictedSpace`` (e.g. the 20k-cell NB101 subset). Every architecture is a row of a finite table, so the pool
  of ``n`` is the first ``n`` rows of one seeded permutation of the rows whose keys are not excluded: exactly
  ``min(n, available)`` distinct architectures, a pure function of ``(space, seed, exclude, n)``. Shards are
  contiguous slices of it, so there are no cross-shard duplicates to drop, no oversampling, and the pool does not
  depend on the shard size or the cluster. The token rows are gathered from a per-space table (built once per space
  object and cached), so no Python object exists per architecture: the pool costs its int8 tokens and float32
  predictions (31 bytes per NB101 architecture).
- **Other spaces** (e.g. TTS, 11^12 sequences): shard ``i`` samples its own architectures with seed
  ``(seed, i)`` (a few percent oversampled to make up for cross-shard duplicates) and labels them; shards are merged
  in shard order, repeated sequences dropped (first wins, vectorised) and the pool cut to ``n``.

Either way a shard is a pure function of its inputs, so the local loop here and Ray's remote tasks
(``seminas_ray.distributed.pseudo_label``) produce the same pool, and a retried shard reproduces itself.
Predictions do not depend on how the pool is cut into shards or batches; they equal bit for bit when both sides run
PyTorch with the same number of threads, and to float32 rounding otherwise.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any
from typing import Callable
from typing import Iterable
from typing import Sequence

import numpy as np

from seminas_ray.controller import ControllerConfig
from seminas_ray.controller import predict_with_weights
from seminas_ray.spaces.base import SearchSpace
from seminas_ray.spaces.nasbench101 import NB101Space
from seminas_ray.spaces.nasbench201 import N_CELLS as NB201_N_CELLS
from seminas_ray.spaces.nasbench201 import N_EDGES as NB201_N_EDGES
from seminas_ray.spaces.nasbench201 import N_OPS as NB201_N_OPS
from seminas_ray.spaces.nasbench201 import NB201Space
from seminas_ray.spaces.nasbench201 import all_cells as nb201_all_cells
from seminas_ray.spaces.nasbench201 import cell_from_index as nb201_cell_from_index
from seminas_ray.spaces.nasbench201 import format_cell as nb201_format_cell
from seminas_ray.spaces.nb101_encoding import encode_arrays
from seminas_ray.spaces.restricted import RestrictedSpace

TOKEN_DTYPE = np.int8  # vocabularies are tiny; int8 keeps a 1M pool of NB101 tokens at 27 MB
PRED_DTYPE = np.float32
MAX_DRAW_ROUNDS = 50  # sample_distinct gives up after this many draws (the space ran out of new architectures)


# =====================================================================================================
# Shard plans and seeds
# =====================================================================================================
def shard_plan(n: int, shard_size: int, oversample: float = 0.05) -> list[int]:
    """Sizes of the shards for a pool of ``n`` (``oversample`` extra to make up for cross-shard duplicates when
    shards sample independently; indexed pools use ``oversample=0``)."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if n <= 0:
        return []
    total = int(np.ceil(n * (1.0 + oversample))) if n > shard_size else n
    sizes = [shard_size] * (total // shard_size)
    if total % shard_size:
        sizes.append(total % shard_size)
    return sizes


def shard_bounds(total: int, shard_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the shards of an indexed pool of ``total`` rows."""
    stops = np.cumsum(shard_plan(total, shard_size, oversample=0.0)).tolist()
    return list(zip([0] + stops[:-1], stops))


def shard_seed(seed: int, index: int) -> int:
    """Independent, reproducible seed of shard ``index``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


# =====================================================================================================
# Indexed spaces: a finite table of rows
# =====================================================================================================
class IndexedPool:
    """A finite space seen as a table of rows: row ``i`` is the architecture ``space.sample`` draws at index ``i``.

    Subclasses say how the space draws indices (so :func:`sample_distinct` consumes the RNG exactly as
    ``space.sample`` would), which rows some keys are, and the tokens and architecture objects of rows.
    Instances hold no reference to their space, so the per-space cache can drop them with the space.
    """

    size: int
    seq_len: int
    vocab_size: int

    def draw(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """``k`` row indices drawn as ``space.sample(rng, k)`` draws them (distinct when ``k <= size``)."""
        return rng.choice(self.size, size=int(k), replace=int(k) > self.size)

    def rows_of(self, keys: Iterable[str]) -> np.ndarray:
        """Rows of those ``keys`` that are in the table (others are ignored: they cannot be drawn anyway)."""
        raise NotImplementedError

    def tokens(self, rows: np.ndarray) -> np.ndarray:
        """Token sequences (int8 ``[len(rows), seq_len]``) of ``rows``."""
        raise NotImplementedError

    def archs(self, rows: np.ndarray) -> list[Any]:
        """Architecture objects of ``rows`` (only :func:`sample_distinct` needs them)."""
        raise NotImplementedError

    def excluded(self, exclude: Iterable[str]) -> np.ndarray:
        """Boolean mask ``[size]`` of the rows whose key is in ``exclude``."""
        mask = np.zeros(self.size, dtype=bool)
        keys = list(exclude)
        if keys:
            mask[self.rows_of(keys)] = True
        return mask

    def order(self, seed: int, exclude: Iterable[str], n: int) -> np.ndarray:
        """The pool's rows: the first ``n`` of a ``seed``-permutation of the rows not in ``exclude``."""
        perm = np.random.default_rng(int(seed)).permutation(self.size)
        mask = self.excluded(exclude)
        if mask.any():
            perm = perm[~mask[perm]]
        return perm[: max(int(n), 0)]


class _TokenTablePool(IndexedPool):
    """An indexed pool whose tokens come from a table of all rows, built on first use."""

    def __init__(self, size: int, seq_len: int, vocab_size: int, build_tokens: Callable[[], np.ndarray]) -> None:
        self.size, self.seq_len, self.vocab_size = int(size), int(seq_len), int(vocab_size)
        self._build_tokens = build_tokens
        self._table: np.ndarray | None = None

    def table(self) -> np.ndarray:
        """Tokens of every row (int8 ``[size, seq_len]``), built once."""
        if self._table is None:
            table = np.ascontiguousarray(self._build_tokens(), dtype=TOKEN_DTYPE)
            if table.shape != (self.size, self.seq_len):
                raise ValueError(f"token table has shape {table.shape}, expected {(self.size, self.seq_len)}")
            table.setflags(write=False)
            self._table = table
        return self._table

    def tokens(self, rows: np.ndarray) -> np.ndarray:
        return self.table()[np.asarray(rows, dtype=np.intp)]


class _NB101Pool(_TokenTablePool):
    """NAS-Bench-101 over its enumeration (423,624 cells sorted by module hash; the key of a row is its hash)."""

    def __init__(self, space: NB101Space) -> None:
        cells = space.enumeration
        super().__init__(len(cells), space.seq_len, space.vocab_size, lambda: self._encode_all(cells))
        self._cells = cells

    def _encode_all(self, cells: Any, chunk: int = 50_000) -> np.ndarray:
        # in chunks: encode_arrays works in int64 with bool temporaries, ~150 MB at once for the whole enumeration
        table = np.empty((len(cells), self.seq_len), dtype=TOKEN_DTYPE)
        for start in range(0, len(cells), chunk):
            stop = start + chunk
            table[start:stop] = encode_arrays(cells.adjacency[start:stop], cells.labels[start:stop],
                                              cells.n_vertices[start:stop])
        return table

    def draw(self, rng: np.random.Generator, k: int) -> np.ndarray:
        # NB101Space.sample draws without replacement and cannot draw more than the enumeration holds
        return rng.choice(self.size, size=min(int(k), self.size), replace=False)

    def rows_of(self, keys: Iterable[str]) -> np.ndarray:
        # module hashes are 32 hex characters; anything else is not in the table (and must not be truncated to S32)
        hashes = [k for k in keys if isinstance(k, str) and len(k) == 32 and k.isascii()]
        if not hashes:
            return np.zeros(0, dtype=np.intp)
        rows = self._cells.index_of(np.asarray(hashes, dtype="S32"))
        return rows[rows >= 0].astype(np.intp)

    def archs(self, rows: np.ndarray) -> list[Any]:
        return self._cells.take(rows).specs()


_NB201_POWERS = NB201_N_OPS ** np.arange(NB201_N_EDGES - 1, -1, -1)  # edge 0 is the most significant base-5 digit
_NB201_ROW_OF_KEY: dict[str, int] = {}


class _NB201Pool(_TokenTablePool):
    """NAS-Bench-201: row ``i`` is the cell of index ``i`` (base-5 op digits); the key is the cell string."""

    def __init__(self, space: NB201Space) -> None:
        super().__init__(NB201_N_CELLS, space.seq_len, space.vocab_size,
                         lambda: np.arange(NB201_N_CELLS)[:, None] // _NB201_POWERS % NB201_N_OPS + 1)

    def rows_of(self, keys: Iterable[str]) -> np.ndarray:
        if not _NB201_ROW_OF_KEY:  # 15,625 strings, built once per process
            _NB201_ROW_OF_KEY.update((nb201_format_cell(c.ops), i) for i, c in enumerate(nb201_all_cells()))
        rows = [_NB201_ROW_OF_KEY.get(k, -1) for k in keys]
        return np.asarray([r for r in rows if r >= 0], dtype=np.intp)

    def archs(self, rows: np.ndarray) -> list[Any]:
        return [nb201_cell_from_index(i) for i in np.asarray(rows).tolist()]


class _RestrictedPool(_TokenTablePool):
    """A ``RestrictedSpace``: row ``i`` is its ``i``-th member key (the order its ``sample`` indexes)."""

    def __init__(self, space: RestrictedSpace) -> None:
        keys = space.member_keys()
        # RestrictedSpace has no public key -> architecture accessor; its sample() uses this same callable.
        arch_of = space._arch_of
        super().__init__(len(keys), space.seq_len, space.vocab_size, space.member_tokens)
        self._keys = keys
        self._row_of_key = {k: i for i, k in enumerate(keys)}
        self._arch_of = arch_of

    def rows_of(self, keys: Iterable[str]) -> np.ndarray:
        rows = [self._row_of_key.get(k, -1) for k in keys]
        return np.asarray([r for r in rows if r >= 0], dtype=np.intp)

    def archs(self, rows: np.ndarray) -> list[Any]:
        return [self._arch_of(self._keys[i]) for i in np.asarray(rows).tolist()]


_POOLS: weakref.WeakKeyDictionary[SearchSpace, IndexedPool] = weakref.WeakKeyDictionary()


def index_pool(space: SearchSpace) -> IndexedPool | None:
    """The :class:`IndexedPool` view of ``space`` (cached per space object), or ``None`` for spaces that are not a
    finite table (they take the per-shard sampling path)."""
    try:
        cached = _POOLS.get(space)
    except TypeError:  # an unhashable / non-weakref-able space: no caching
        cached = None
    if cached is not None:
        return cached
    if isinstance(space, RestrictedSpace):
        pool: IndexedPool = _RestrictedPool(space)
    elif isinstance(space, NB101Space):
        pool = _NB101Pool(space)
    elif isinstance(space, NB201Space):
        pool = _NB201Pool(space)
    else:
        return None
    try:
        _POOLS[space] = pool
    except TypeError:
        pass
    return pool


def pool_tokens(space: SearchSpace, n: int, seed: int, exclude: Iterable[str]) -> np.ndarray | None:
    """The tokens (int8 ``[min(n, available), seq_len]``) of the pool of an indexed space, ``None`` for others.

    The driver-side half of indexed pseudo-labelling: one permutation of the rows and one gather, no per-architecture
    Python; the shards then only predict slices of it.
    """
    pool = index_pool(space)
    if pool is None:
        return None
    return pool.tokens(pool.order(seed, exclude, n))


# =====================================================================================================
# Sampling distinct architectures
# =====================================================================================================
def _keys_of(space: SearchSpace, archs: Sequence[Any]) -> list[str]:
    # a space may offer a vectorised keys() (NB101 hashes in bulk); looked up on the class so that wrappers that
    # delegate unknown attributes do not hand us their base's method
    bulk = getattr(type(space), "keys", None)
    return list(bulk(space, archs)) if callable(bulk) else [space.key(a) for a in archs]


def _draw_distinct_rows(pool: IndexedPool, n: int, rng: np.random.Generator, exclude: frozenset[str]) -> np.ndarray:
    """Rows of :func:`sample_distinct`: repeated draws, keeping new, non-excluded rows in draw order."""
    taken = pool.excluded(exclude)
    chosen: list[np.ndarray] = []
    count = 0
    for _ in range(MAX_DRAW_ROUNDS):
        need = n - count
        if need <= 0:
            break
        idx = pool.draw(rng, int(need * 1.1) + 8)
        _, first = np.unique(idx, return_index=True)  # a draw with replacement may repeat a row: keep the first
        idx = idx[np.sort(first)]
        idx = idx[~taken[idx]][:need]
        taken[idx] = True
        chosen.append(idx)
        count += len(idx)
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.intp)


def sample_distinct(space: SearchSpace, n: int, rng: np.random.Generator, exclude: frozenset[str]) -> list[Any]:
    """``n`` distinct architectures from ``space`` whose keys are not in ``exclude`` (fewer if the space runs out).

    Draws ``space.sample``-sized batches until ``n`` new ones are found, consuming ``rng`` exactly as repeated
    ``space.sample`` calls would. Indexed spaces dedupe and exclude by row (vectorised); others by key.
    """
    if n <= 0:
        return []
    pool = index_pool(space)
    if pool is not None:
        return pool.archs(_draw_distinct_rows(pool, n, rng, exclude))
    seen: set[str] = set()
    archs: list[Any] = []
    for _ in range(MAX_DRAW_ROUNDS):
        need = n - len(archs)
        if need <= 0:
            break
        batch = space.sample(rng, int(need * 1.1) + 8)
        for arch, key in zip(batch, _keys_of(space, batch)):
            if key in exclude or key in seen:
                continue
            seen.add(key)
            archs.append(arch)
            if len(archs) == n:
                break
    return archs


def sample_shard(space: SearchSpace, n: int, seed: int, exclude: frozenset[str]) -> np.ndarray:
    """``n`` distinct architectures not in ``exclude`` as int8 tokens, a pure function of ``seed``.

    For an indexed space this is the pool of ``n`` for ``seed`` (see :func:`pool_tokens`); for others ``n`` draws of
    :func:`sample_distinct` with ``default_rng(seed)``.
    """
    tokens = pool_tokens(space, n, seed, exclude)
    if tokens is not None:
        return tokens
    archs = sample_distinct(space, n, np.random.default_rng(seed), exclude)
    if not archs:
        return np.zeros((0, space.seq_len), dtype=TOKEN_DTYPE)
    return space.encode_many(archs).astype(TOKEN_DTYPE)


# =====================================================================================================
# Labelling and merging
# =====================================================================================================
def predict_shard(vocab_size: int, seq_len: int, controller_config: ControllerConfig, weights: dict[str, np.ndarray],
                  seqs: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """Predicted (normalised) scores, float32 ``[len(seqs)]``, of int8/int64 token rows.

    ``batch_size=None`` lets the controller pick (1024 rows on CPU, where larger batches fall out of the cache).
    """
    if len(seqs) == 0:
        return np.zeros(0, dtype=PRED_DTYPE)
    preds = predict_with_weights((vocab_size, seq_len), controller_config, weights, seqs, batch_size=batch_size)
    return np.asarray(preds, dtype=PRED_DTYPE)


def label_shard(space: SearchSpace, controller_config: ControllerConfig, weights: dict[str, np.ndarray],
                n: int, seed: int, exclude: frozenset[str], batch_size: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Sample one shard (:func:`sample_shard`) and predict its scores: ``(int8 tokens, float32 predictions)``."""
    seqs = sample_shard(space, n, seed, exclude)
    return seqs, predict_shard(space.vocab_size, space.seq_len, controller_config, weights, seqs, batch_size)


def first_occurrences(seqs: np.ndarray) -> np.ndarray:
    """Ascending indices of the first occurrence of every distinct row of a non-negative integer token array.

    Rows are packed into a few int64 words (``bits(max token)`` bits per token) and sorted with a stable lexsort,
    far faster than ``np.unique(axis=0)`` (12 s for 1M NB101 rows).
    """
    seqs = np.asarray(seqs)
    if seqs.ndim != 2:
        raise ValueError(f"seqs must be a 2-d token array, got shape {seqs.shape}")
    count, length = seqs.shape
    if count == 0:
        return np.zeros(0, dtype=np.intp)
    if length == 0:
        return np.zeros(1, dtype=np.intp)
    low, high = int(seqs.min()), int(seqs.max())
    if low < 0:
        _, first = np.unique(seqs, axis=0, return_index=True)
        return np.sort(first)
    bits = max(1, high.bit_length())
    per_word = max(1, 63 // bits)
    words = []
    for start in range(0, length, per_word):
        word = np.zeros(count, dtype=np.int64)
        for col in range(start, min(start + per_word, length)):
            word = (word << bits) | seqs[:, col].astype(np.int64)
        words.append(word)
    order = np.lexsort(words[::-1])  # the last key is the primary one; stable, so equal rows keep input order
    new = np.zeros(count, dtype=bool)
    new[0] = True
    for word in words:
        ranked = word[order]
        new[1:] |= ranked[1:] != ranked[:-1]
    return np.sort(order[new])


def merge_shards(parts: list[tuple[np.ndarray, np.ndarray]], n: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate shards in shard order, drop repeated sequences (first wins), keep the first ``n``."""
    if not parts:
        return np.zeros((0, seq_len), dtype=TOKEN_DTYPE), np.zeros((0,), dtype=PRED_DTYPE)
    seqs = np.concatenate([np.asarray(p[0], dtype=TOKEN_DTYPE) for p in parts])
    preds = np.concatenate([np.asarray(p[1], dtype=PRED_DTYPE) for p in parts])
    keep = first_occurrences(seqs)[: max(int(n), 0)]
    return seqs[keep], preds[keep]


@dataclass(frozen=True)
class LocalPseudoLabeler:
    """Pseudo-labels shard after shard in this process (the default; no Ray).

    ``batch_size=None`` lets the controller choose the inference batch for the device. The default ``shard_size``
    matches ``RayPseudoLabeler``'s (same pool for non-indexed spaces too): 2,500 NB101 architectures are ~0.2 s of
    work for one CPU against ~5 ms of fixed cost per shard, and the paper's M = 10,000 splits into 4 tasks.
    """

    shard_size: int = 2_500
    batch_size: int | None = None

    def __call__(self, space: SearchSpace, controller_config: ControllerConfig, weights: dict[str, np.ndarray],
                 n: int, seed: int, exclude: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
        seqs = pool_tokens(space, n, seed, exclude)
        if seqs is not None:
            preds = np.empty(len(seqs), dtype=PRED_DTYPE)
            for start, stop in shard_bounds(len(seqs), self.shard_size):
                preds[start:stop] = predict_shard(space.vocab_size, space.seq_len, controller_config, weights,
                                                  seqs[start:stop], self.batch_size)
            return seqs, preds
        parts = [label_shard(space, controller_config, weights, size, shard_seed(seed, i), exclude, self.batch_size)
                 for i, size in enumerate(shard_plan(n, self.shard_size))]
        return merge_shards(parts, n, space.seq_len)
