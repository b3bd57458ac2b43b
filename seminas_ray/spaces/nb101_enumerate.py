"""Enumeration of the 423,624 unique NAS-Bench-101 cells, and its validated on-disk cache.

``nasbench/scripts/generate_graphs.py`` walks every upper-triangular graph of 2..7 vertices (as a bit string),
keeps those with at most 9 edges whose pruning is a no-op ("full DAGs": every vertex but the output has an
out-edge, every vertex but the input an in-edge), tries every op labelling (1,293,208 labelled graphs) and
deduplicates them by module hash, keeping the first graph it meets per hash. Hashing all 1.3 M graphs in Python
takes minutes, so this module first groups the labelled graphs into isomorphism classes with numpy and hashes
one graph per class (the first one in the script's order, so the stored representative is the script's):

* an isomorphism of labelled cells fixes input and output (unique labels), so it is a permutation of the
  ``n - 2`` interior vertices (at most 5! = 120);
* a complete invariant of a labelled graph is the minimum over those permutations of the code
  (permuted adjacency bits, permuted labels); the adjacency part alone is minimised by a set of permutations
  per matrix, and the label part is then minimised over that set only;
* the 423,624 representatives are hashed with the vectorised WL hash (one MD5 call per vertex and round), and
  the result is deduplicated by hash (a no-op when the hash has no collisions, as NAS-Bench-101 verified) and
  sorted by hash.

The cache is an npz in the schema of ``nb101_subset20k.npz`` (``hash``, ``n_vertices``, ``adjacency``,
``labels``) plus ``format_version``, written atomically and fully checked when loaded. :func:`enumerate_nb101`
is the entry point.
"""
from __future__ import annotations

import itertools
import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
from tqdm.auto import tqdm

from seminas_ray.settings import cache_dir
from seminas_ray.spaces.nb101_arrays import NB101Arrays
from seminas_ray.spaces.nb101_cell import LABEL_INPUT
from seminas_ray.spaces.nb101_cell import LABEL_OUTPUT
from seminas_ray.spaces.nb101_cell import LABEL_PAD
from seminas_ray.spaces.nb101_cell import MAX_EDGES
from seminas_ray.spaces.nb101_cell import MAX_VERTICES
from seminas_ray.spaces.nb101_cell import N_CELLS
from seminas_ray.spaces.nb101_cell import N_CELLS_BY_SIZE
from seminas_ray.spaces.nb101_hash import nb101_hash_arrays

FORMAT_VERSION = 1
CACHE_NAME = f"nb101_enumeration_v{FORMAT_VERSION}.npz"
N_OPS = 3
#: Labelled full DAGs the generate_graphs script hashes (before deduplication).
N_LABELLED_GRAPHS = 1_293_208
#: Rows whose hash is recomputed when a cache file is loaded.
N_SPOT_CHECKS = 256


#: Which 2-byte pairs (as native uint16) are two lower-case hex digits: one lookup per pair of characters.
_HEX_PAIR = np.zeros(1 << 16, dtype=bool)
_HEX_PAIR[np.frombuffer("".join(a + b for a in "0123456789abcdef" for b in "0123456789abcdef").encode(), "=u2")] = True
#: Adjacency-code bits of row 0 (edges 0 -> w) and of column 0 (edges v -> 0); shift by 7*v / by w.
_ROW_BITS = np.uint64((1 << MAX_VERTICES) - 1)
_COL_BITS = np.uint64(sum(1 << (MAX_VERTICES * v) for v in range(MAX_VERTICES)))


class EnumerationCacheError(ValueError):
    """The enumeration file is unreadable or does not hold the NAS-Bench-101 enumeration."""


def default_cache_path() -> Path:
    """``cache_dir("nasbench101")/nb101_enumeration_v1.npz``."""
    return cache_dir("nasbench101") / CACHE_NAME


# ---------------------------------------------------------------------------------------------------------
# building
def _edge_pairs(n: int) -> list[tuple[int, int]]:
    """Upper-triangular (row, col) pairs in bit order: edge (x, y) is bit ``y*(y-1)/2 + x`` (``gen_is_edge_fn``)."""
    return [(x, y) for y in range(1, n) for x in range(y)]


def full_dag_bits(n: int, max_edges: int = MAX_EDGES) -> np.ndarray:
    """Bit strings (ascending) of the n-vertex graphs with <= ``max_edges`` edges that pruning leaves intact."""
    pairs = _edge_pairs(n)
    bits = np.arange(1 << len(pairs), dtype=np.int64)
    popcount = np.zeros(bits.shape, dtype=np.int64)
    for e in range(len(pairs)):
        popcount += (bits >> e) & 1
    ok = popcount <= max_edges
    for v in range(n):
        out_mask = sum(1 << i for i, (x, _) in enumerate(pairs) if x == v)
        in_mask = sum(1 << i for i, (_, y) in enumerate(pairs) if y == v)
        if v < n - 1:
            ok &= (bits & out_mask) != 0
        if v > 0:
            ok &= (bits & in_mask) != 0
    return bits[ok]


def class_representatives(n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """One labelled full DAG of ``n`` vertices per isomorphism class, the first in generate_graphs order.

    Returns ``(adjacency [K,n,n] uint8, labels [K,n] int8, n_labelled)`` with the representatives in that order
    and the number of labelled graphs considered.
    """
    bits = full_dag_bits(n)
    pairs = _edge_pairs(n)
    n_inner = n - 2
    n_labellings = N_OPS**n_inner
    edges = ((bits[:, None] >> np.arange(len(pairs))) & 1).astype(np.int64)  # [K, E]
    # perms[p, i] = new position of vertex i; input and output stay put.
    perms = np.array([(0, *p, n - 1) for p in itertools.permutations(range(1, n - 1))], dtype=np.int64)
    rows = np.array([x for x, _ in pairs])
    cols = np.array([y for _, y in pairs])
    # Permuted adjacency as bits over all ordered pairs (n*n <= 49 bits).
    structure = edges @ (np.int64(1) << (perms[:, rows] * n + perms[:, cols])).T  # [K, P]
    best = structure.min(axis=1)
    # Labellings in itertools.product order (first interior vertex slowest), and their permuted codes.
    labellings = np.array(list(itertools.product(range(N_OPS), repeat=n_inner)), dtype=np.int64)
    labellings = labellings.reshape(n_labellings, n_inner)
    label_codes = labellings @ (N_OPS ** (n_inner - perms[:, 1 : n - 1])).T  # [L, P]
    min_labels = np.empty((bits.shape[0], n_labellings), dtype=np.int64)
    for k in range(bits.shape[0]):
        optimal = np.flatnonzero(structure[k] == best[k])  # the permutations minimising the adjacency code
        min_labels[k] = label_codes[:, optimal].min(axis=1)
    codes = (best[:, None] * n_labellings + min_labels).reshape(-1)
    _, first = np.unique(codes, return_index=True)
    first.sort()  # generate_graphs order: bit string, then labelling
    matrix_idx, labelling_idx = np.divmod(first, n_labellings)
    adjacency = np.zeros((first.shape[0], n, n), dtype=np.uint8)
    for e, (x, y) in enumerate(pairs):
        adjacency[:, x, y] = (bits[matrix_idx] >> e) & 1
    labels = np.empty((first.shape[0], n), dtype=np.int8)
    labels[:, 0] = LABEL_INPUT
    labels[:, -1] = LABEL_OUTPUT
    labels[:, 1:-1] = labellings[labelling_idx]
    return adjacency, labels, int(codes.shape[0])


def build_enumeration(progress: bool = True) -> NB101Arrays:
    """Enumerate and hash all unique cells (about 20-30 s on one core), sorted by hash."""
    adjacency_parts, label_parts, size_parts = [], [], []
    n_labelled = 0
    for n in range(2, MAX_VERTICES + 1):
        adj, lab, count = class_representatives(n)
        n_labelled += count
        padded_adj = np.zeros((adj.shape[0], MAX_VERTICES, MAX_VERTICES), dtype=np.uint8)
        padded_adj[:, :n, :n] = adj
        padded_lab = np.full((adj.shape[0], MAX_VERTICES), LABEL_PAD, dtype=np.int8)
        padded_lab[:, :n] = lab
        adjacency_parts.append(padded_adj)
        label_parts.append(padded_lab)
        size_parts.append(np.full(adj.shape[0], n, dtype=np.uint8))
    if n_labelled != N_LABELLED_GRAPHS:
        raise RuntimeError(f"enumerated {n_labelled} labelled graphs, expected {N_LABELLED_GRAPHS}")
    adjacency = np.concatenate(adjacency_parts)
    labels = np.concatenate(label_parts)
    n_vertices = np.concatenate(size_parts)
    bar = tqdm(total=adjacency.shape[0], desc="NB101 enumeration (hashing)", unit="cell") if progress else None
    try:
        hashes = nb101_hash_arrays(adjacency, labels, n_vertices, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    # Dedup by hash keeping the first in generation order; np.unique also sorts by hash.
    _, first = np.unique(hashes, return_index=True)
    result = NB101Arrays(hashes[first], n_vertices[first], adjacency[first], labels[first])
    check_enumeration(result, spot_checks=0)
    return result


# ---------------------------------------------------------------------------------------------------------
# checking, saving, loading
def check_enumeration(arrays: NB101Arrays, *, spot_checks: int = N_SPOT_CHECKS) -> None:
    """Raise ``EnumerationCacheError`` unless ``arrays`` is the full enumeration in the expected schema.

    Checks dtypes and shapes, the 423,624 rows and per-size counts, sorted unique hex hashes, the label layout,
    that every adjacency is a zero-padded, upper-triangular, full DAG with at most 9 edges, and recomputes the
    hash of ``spot_checks`` rows spread over the file.
    """

    def fail(reason: str) -> NoReturn:
        raise EnumerationCacheError(reason)

    h, nv, adj, lab = arrays.hash, arrays.n_vertices, arrays.adjacency, arrays.labels
    if h.dtype != np.dtype("S32") or h.ndim != 1:
        fail(f"'hash' must be 1-D S32, got {h.dtype} {h.shape}")
    total = h.shape[0]
    if total != N_CELLS:
        fail(f"{total} cells, expected {N_CELLS}")
    for name, arr, dtype, shape in (
        ("n_vertices", nv, np.uint8, (total,)),
        ("adjacency", adj, np.uint8, (total, MAX_VERTICES, MAX_VERTICES)),
        ("labels", lab, np.int8, (total, MAX_VERTICES)),
    ):
        if arr.dtype != dtype or arr.shape != shape:
            fail(f"'{name}' must be {np.dtype(dtype)} {shape}, got {arr.dtype} {arr.shape}")
    counts = np.bincount(nv, minlength=MAX_VERTICES + 1)
    expected = np.zeros(MAX_VERTICES + 1, dtype=np.int64)
    for n, c in N_CELLS_BY_SIZE.items():
        expected[n] = c
    if not np.array_equal(counts[: MAX_VERTICES + 1], expected) or counts.shape[0] > MAX_VERTICES + 1:
        fail(f"cells per vertex count {counts.tolist()} differ from {expected.tolist()}")
    if not _HEX_PAIR[h.view(np.uint16)].all():
        fail("'hash' holds non-hex characters")
    if not (h[1:] > h[:-1]).all():
        fail("'hash' is not strictly increasing (unsorted or duplicated)")
    # Whole-array checks on one 64-bit code per cell: small-axis reductions are slow in numpy.
    layout = _layouts()
    n = nv.astype(np.intp)
    labels64 = np.zeros((total, 8), dtype=np.uint8)
    labels64[:, :MAX_VERTICES] = lab.view(np.uint8)
    labels64 = labels64.view("<u8").reshape(total)
    if ((labels64 & layout.fixed_mask[n]) != layout.fixed_value[n]).any():
        fail("bad label layout: input must be -1 at 0, output -2 at n_vertices-1, padding -3 after it")
    # An interior byte b is an op label iff b <= 2: its high bit is set after b | ((b & 0x7f) + 0x7d) iff b >= 3.
    low7 = np.uint64(0x7F7F7F7F7F7F7F7F)
    high = (labels64 | ((labels64 & low7) + np.uint64(0x7D7D7D7D7D7D7D7D))) & np.uint64(0x8080808080808080)
    if (high & layout.interior_mask[n]).any():
        fail("an interior label is not an op (0, 1 or 2)")
    if adj.size and int(adj.max()) > 1:
        fail("adjacency entries must be 0 or 1")
    bits = np.zeros((total, 8), dtype=np.uint8)
    bits[:, :MAX_VERTICES] = np.packbits(adj.reshape(total, -1), axis=1, bitorder="little")
    code = bits.view("<u8").reshape(total)  # bit 7*v + w = edge v -> w
    if (code & layout.forbidden[n]).any():
        fail("adjacency must be strictly upper-triangular and zero past n_vertices")
    if (np.bitwise_count(code) > MAX_EDGES).any():
        fail(f"a cell has more than {MAX_EDGES} edges")
    for v in range(MAX_VERTICES):
        row, col = _ROW_BITS << np.uint64(MAX_VERTICES * v), _COL_BITS << np.uint64(v)
        if ((code & row) == 0)[n - 1 > v].any() or ((code & col) == 0)[(v > 0) & (n > v)].any():
            fail(f"a cell has a vertex ({v}) off every input->output path (not pruned)")
    if spot_checks > 0:
        rows = np.unique(np.linspace(0, total - 1, spot_checks).astype(np.intp))
        recomputed = nb101_hash_arrays(adj[rows], lab[rows], nv[rows])
        bad = np.flatnonzero(recomputed != h[rows])
        if bad.size:
            r = int(rows[bad[0]])
            fail(f"row {r}: stored hash {h[r].decode()} != recomputed {recomputed[bad[0]].decode()}")


@dataclass(frozen=True)
class _Layout:
    """64-bit masks per vertex count n (index 0..7) for the padded schema (byte i of a label code = labels[i];
    bit 7*v + w of an adjacency code = edge v -> w)."""

    fixed_mask: np.ndarray  # label bytes with a fixed value (input, output, padding)
    fixed_value: np.ndarray
    interior_mask: np.ndarray  # high bits of the interior label bytes
    forbidden: np.ndarray  # adjacency bits that must be 0


def _layouts() -> _Layout:
    size = MAX_VERTICES + 1
    fixed_mask = np.zeros(size, dtype=np.uint64)
    fixed_value = np.zeros(size, dtype=np.uint64)
    interior_mask = np.zeros(size, dtype=np.uint64)
    forbidden = np.full(size, (1 << 64) - 1, dtype=np.uint64)
    for n in range(2, size):
        labels = [LABEL_INPUT] + [0] * (n - 2) + [LABEL_OUTPUT] + [LABEL_PAD] * (MAX_VERTICES - n)
        fixed = [i for i in range(MAX_VERTICES) if not 0 < i < n - 1]
        fixed_mask[n] = sum(0xFF << (8 * i) for i in fixed)
        fixed_value[n] = sum((labels[i] & 0xFF) << (8 * i) for i in fixed)
        interior_mask[n] = sum(0x80 << (8 * i) for i in range(1, n - 1))
        allowed = sum(1 << (MAX_VERTICES * v + w) for v in range(n) for w in range(v + 1, n))
        forbidden[n] = ((1 << 64) - 1) ^ allowed
    return _Layout(fixed_mask, fixed_value, interior_mask, forbidden)


def save_enumeration(arrays: NB101Arrays, path: str | Path) -> Path:
    """Write ``arrays`` as a compressed npz, atomically (temporary file in the same folder, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            # np.savez_compressed's zlib level 6 takes seconds here; level 1 is ~3x faster and barely larger.
            with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                for name, value in (
                    ("hash", arrays.hash),
                    ("n_vertices", arrays.n_vertices),
                    ("adjacency", arrays.adjacency),
                    ("labels", arrays.labels),
                    ("format_version", np.asarray(FORMAT_VERSION, dtype=np.int64)),
                ):
                    with zf.open(f"{name}.npy", mode="w", force_zip64=True) as member:
                        np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache is ordinary data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_enumeration(path: str | Path, *, spot_checks: int = N_SPOT_CHECKS) -> NB101Arrays:
    """Read and check an enumeration file; ``EnumerationCacheError`` names the file and the problem."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = set(npz.files)
            missing = {"hash", "n_vertices", "adjacency", "labels", "format_version"} - files
            if missing:
                raise EnumerationCacheError(f"missing array(s) {', '.join(sorted(missing))}")
            version = int(npz["format_version"])
            if version != FORMAT_VERSION:
                raise EnumerationCacheError(f"format_version {version}, expected {FORMAT_VERSION}")
            arrays = NB101Arrays(npz["hash"], npz["n_vertices"], npz["adjacency"], npz["labels"])
        check_enumeration(arrays, spot_checks=spot_checks)
    except EnumerationCacheError as exc:
        raise EnumerationCacheError(f"{path}: {exc}") from None
    except Exception as exc:  # truncated zip, not an npz, object arrays, ...
        raise EnumerationCacheError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    return arrays


#: Enumerations already loaded in this process, by (path, mtime, size): spaces share one read-only copy.
_LOADED: dict[tuple[str, int, int], NB101Arrays] = {}


def _read_only(arrays: NB101Arrays) -> NB101Arrays:
    """Freeze the arrays in place: one copy is shared by every space in the process."""
    for value in (arrays.hash, arrays.n_vertices, arrays.adjacency, arrays.labels):
        value.setflags(write=False)
    return arrays


def _file_id(path: Path) -> tuple[str, int, int]:
    """Identity of a file's current contents for the in-process memo: (resolved path, mtime, size)."""
    stat = path.stat()
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def load_or_build(path: str | Path | None = None, *, progress: bool = True) -> NB101Arrays:
    """The enumeration from ``path`` (default :func:`default_cache_path`); built and cached when the file is
    missing, and rebuilt with a warning when it is corrupt. The arrays are read-only and shared within the
    process (a second call for the unchanged file returns the same object)."""
    path = Path(path) if path is not None else default_cache_path()
    if path.exists():
        file_id = _file_id(path)
        if file_id in _LOADED:
            return _LOADED[file_id]
        try:
            arrays = _read_only(load_enumeration(path))
        except EnumerationCacheError as exc:
            warnings.warn(f"ignoring the NB101 enumeration cache and rebuilding it: {exc}", RuntimeWarning)
        else:
            _LOADED[file_id] = arrays
            return arrays
    arrays = _read_only(build_enumeration(progress=progress))
    save_enumeration(arrays, path)
    _LOADED[_file_id(path)] = arrays
    return arrays


def enumerate_nb101(
    progress: bool = True, *, use_cache: bool = True, cache_path: str | Path | None = None
) -> NB101Arrays:
    """All 423,624 unique NAS-Bench-101 cells (sorted by module hash), from the cache or built and cached.

    Follows ``nasbench/scripts/generate_graphs.py``: every upper-triangular graph of 2..7 vertices with at most 9
    edges whose pruning is a no-op, every op labelling, deduplicated by module hash; each hash keeps the first
    (matrix, labelling) in that script's iteration order. The cache
    (``cache_dir("nasbench101")/nb101_enumeration_v1.npz``) is validated on load and rebuilt with a warning if
    it is corrupt.
    """
    if not use_cache:
        return build_enumeration(progress=progress)
    return load_or_build(cache_path, progress=progress)
