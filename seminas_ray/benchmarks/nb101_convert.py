"""One-time conversion of a ``nasbench_*.tfrecord`` file into a compact columnar npz table (numpy + stdlib).

Why: decoding 1.27 M (only108) or ~5 M (full) JSON + protobuf records takes a minute or more; the table loads in
well under a second with plain ``np.load`` (no pickle) and is what the benchmark layer queries.

Table schema (one row per unique module hash, sorted by hash). It is a superset of the shared
``nb101_subset20k.npz`` so consumers of that file work on a converted table unchanged:

* ``hash`` S32, ``n_vertices`` uint8, ``adjacency`` uint8 [N,7,7] (zero-padded), ``labels`` int8 [N,7]
  (-1 input, -2 output, 0 conv3x3-bn-relu, 1 conv1x1-bn-relu, 2 maxpool3x3, -3 padding),
  ``trainable_parameters`` int64.
* for every epoch budget E present: ``val_acc_{E}`` float32 [N] = final validation accuracy of the FIRST repeat
  (file order), and float32 [N, R] repeat arrays (R = the largest repeat count over all budgets; NaN where a
  repeat is missing, or where a record has fewer than the API's 3 evaluations): ``val_acc_{E}_runs``,
  ``test_acc_{E}_runs``, ``train_acc_{E}_runs``, ``train_time_{E}_runs`` (final = ``evaluation_data[2]``) and
  ``halfway_val_acc_{E}_runs``, ``halfway_test_acc_{E}_runs``, ``halfway_train_acc_{E}_runs``,
  ``halfway_train_time_{E}_runs`` (halfway = ``evaluation_data[1]``).
* ``final_training_time`` float32 [N]: mean over repeats of the final training time at the largest budget.
* ``schema`` and ``source``: 0-d unicode arrays holding JSON (format name/version and column notes; the source
  file's name, size, mtime, SHA-256, record count, budgets and repeats). Read them with :func:`read_table_metadata`.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from seminas_ray.benchmarks.tfrecord import DEFAULT_CHUNK_BYTES
from seminas_ray.benchmarks.tfrecord import NB101RecordError
from seminas_ray.benchmarks.tfrecord import _adjacency_size
from seminas_ray.benchmarks.tfrecord import _b64
from seminas_ray.benchmarks.tfrecord import _decode_metrics
from seminas_ray.benchmarks.tfrecord import _Malformed
from seminas_ray.benchmarks.tfrecord import _split_payload
from seminas_ray.benchmarks.tfrecord import _temp_path_beside
from seminas_ray.benchmarks.tfrecord import _where
from seminas_ray.benchmarks.tfrecord import iter_tfrecord
from seminas_ray.settings import cache_dir

__all__ = ["TABLE_FORMAT", "MAX_VERTICES", "OP_LABELS", "convert_tfrecord", "load_or_convert", "read_table_metadata"]

TABLE_FORMAT = "seminas_ray.nb101_table"
TABLE_VERSION = 1
MAX_VERTICES = 7
OP_LABELS = {"input": -1, "output": -2, "conv3x3-bn-relu": 0, "conv1x1-bn-relu": 1, "maxpool3x3": 2}
PAD_LABEL = -3
# Per-record metric columns collected while reading, in this order (halfway = evaluation 1, final = evaluation 2).
_METRICS = (
    "halfway_train_time", "halfway_train_acc", "halfway_val_acc", "halfway_test_acc",
    "train_time", "train_acc", "val_acc", "test_acc",
)
_FLUSH = 65_536  # records per numpy block: bounds the Python-object overhead of the pending tuples


def _default_dst(src: Path) -> Path:
    # one cache file per name; whether it may be reused is decided by the source's SHA-256 recorded inside it
    return cache_dir("nasbench101") / f"{src.stem}.npz"


def source_digest(src: str | os.PathLike[str]) -> str:
    """SHA-256 of the source file's bytes (one sequential read: about a second per GB, next to minutes of
    conversion), the key of its converted table."""
    digest = hashlib.sha256()
    with open(src, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def convert_tfrecord(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
    verify_crc: bool = True,
) -> Path:
    """Convert a NAS-Bench-101 tfrecord file into the columnar npz table described in the module docstring.

    Records sharing a module hash must share adjacency and operations (checked); their repeats are numbered in
    file order. ``dst`` defaults to ``cache_dir("nasbench101")/<src stem>.npz``. The table is written atomically:
    on any error (corrupt or truncated input, malformed record) no output and no temp file remain.
    """
    src = Path(src)
    digest = source_digest(src)
    dst = Path(dst) if dst is not None else _default_dst(src)
    stat = src.stat()
    columns, info = _read_columns(src, stat.st_size, progress=progress, verify_crc=verify_crc)
    info.update({"name": src.name, "path": str(src.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                 "sha256": digest})
    columns["schema"] = np.array(json.dumps(_schema()))
    columns["source"] = np.array(json.dumps(info, sort_keys=True))
    _save_atomic(dst, columns)
    return dst


def load_or_convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
) -> Path:
    """Path of the converted table for ``src``, converting only when no up-to-date table exists.

    A table is reused when it has this module's format version and records the SHA-256 of ``src``'s bytes: a
    changed, corrupt or different file with the same name, size and mtime is converted (and checked) again, never
    served another file's table.
    """
    src = Path(src)
    digest = source_digest(src)
    dst = Path(dst) if dst is not None else _default_dst(src)
    if dst.exists():
        try:
            meta = read_table_metadata(dst)
        except (OSError, ValueError, KeyError):
            meta = None  # unreadable or foreign file: convert again
        if (
            meta is not None
            and meta["schema"].get("format") == TABLE_FORMAT
            and meta["schema"].get("version") == TABLE_VERSION
            and meta["source"].get("sha256") == digest
        ):
            return dst
    return convert_tfrecord(src, dst, progress=progress)


def read_table_metadata(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The ``schema`` and ``source`` JSON entries of a converted table (loads only those two arrays)."""
    with np.load(path, allow_pickle=False) as data:
        return {"schema": json.loads(str(data["schema"])), "source": json.loads(str(data["source"]))}


# ---------------------------------------------------------------------------------------------------------------
def _schema() -> dict[str, Any]:
    return {
        "format": TABLE_FORMAT,
        "version": TABLE_VERSION,
        "rows": "one per unique module hash, sorted by hash",
        "labels": {**OP_LABELS, "padding": PAD_LABEL},
        "val_acc_{E}": "final validation accuracy of the first repeat (file order) at E epochs",
        "{metric}_{E}_runs": "float32 [N, R] per repeat, NaN where missing; final = evaluation_data[2]",
        "halfway_{metric}_{E}_runs": "float32 [N, R] per repeat at evaluation_data[1]",
        "final_training_time": "mean over repeats of the final training time at the largest budget",
    }


class _Accumulator:
    """Appendable per-record columns: row index, epochs and the 8 metrics, kept as numpy blocks."""

    def __init__(self) -> None:
        self.pending: list[tuple[Any, ...]] = []
        self.rows: list[np.ndarray] = []
        self.epochs: list[np.ndarray] = []
        self.metrics: list[np.ndarray] = []

    def append(self, item: tuple[Any, ...]) -> None:
        self.pending.append(item)
        if len(self.pending) >= _FLUSH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        block = np.array(self.pending, dtype=np.float64)
        self.rows.append(block[:, 0].astype(np.int32))
        self.epochs.append(block[:, 1].astype(np.int32))
        self.metrics.append(block[:, 2:].astype(np.float32))
        self.pending = []

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.flush()
        if not self.rows:
            return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, len(_METRICS)), np.float32)
        return np.concatenate(self.rows), np.concatenate(self.epochs), np.concatenate(self.metrics)


def _read_columns(
    src: Path, size: int, *, progress: bool, verify_crc: bool
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read every record of ``src`` into the table's columns (raises before anything is written)."""
    row_of: dict[str, int] = {}
    hashes: list[str] = []
    adjacencies: list[str] = []
    operations: list[str] = []
    params: list[int] = []
    labels: list[np.ndarray] = []
    label_cache: dict[str, np.ndarray] = {}
    acc = _Accumulator()
    nan = float("nan")
    nan4 = (nan, nan, nan, nan)
    count = 0
    with tqdm(total=size, unit="B", unit_scale=True, desc=f"converting {src.name}", disable=not progress) as bar:
        for offset, payload in iter_tfrecord(src, verify_crc=verify_crc, chunk_bytes=DEFAULT_CHUNK_BYTES,
                                             on_progress=bar.update):
            try:
                module_hash, epochs, adjacency, ops, metrics = _split_payload(payload)
                row = row_of.get(module_hash)
                if row is None:
                    row = len(hashes)
                    labels.append(_check_cell(adjacency, ops, label_cache))
                    row_of[module_hash] = row
                    hashes.append(module_hash)
                    adjacencies.append(adjacency)
                    operations.append(sys.intern(ops))  # a few hundred distinct strings for 423k cells
                    evaluations, n_params, _ = _decode_metrics(_b64(metrics))
                    params.append(n_params)
                else:
                    if adjacency != adjacencies[row] or ops != operations[row]:
                        raise _Malformed(f"module hash {module_hash} was stored earlier with a different "
                                         "adjacency or operations")
                    evaluations, _, _ = _decode_metrics(_b64(metrics))
                halfway = evaluations[1][1:] if len(evaluations) > 1 else nan4
                final = evaluations[2][1:] if len(evaluations) > 2 else nan4
            except _Malformed as exc:
                raise NB101RecordError(f"{_where(src, offset)}: {exc}") from None
            acc.append((row, epochs, *halfway, *final))
            count += 1
    adjacency, label_array, n_vertices = _structure(adjacencies, labels)
    rows, epochs, metrics = acc.arrays()

    hash_array = np.array(hashes, dtype="S32")
    order = np.argsort(hash_array, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    n_rows = len(hashes)
    columns: dict[str, np.ndarray] = {
        "hash": hash_array[order],
        "n_vertices": n_vertices[order],
        "adjacency": adjacency[order],
        "labels": label_array[order],
        "trainable_parameters": np.array(params, dtype=np.int64)[order],
    }
    budgets = sorted(int(e) for e in np.unique(epochs))
    sorted_rows = rank[rows]
    repeat = np.zeros(len(rows), dtype=np.int64)
    for e in budgets:
        idx = np.flatnonzero(epochs == e)
        repeat[idx] = _repeat_index(sorted_rows[idx])
    n_repeats = int(repeat.max()) + 1 if len(repeat) else 0
    for e in budgets:
        idx = np.flatnonzero(epochs == e)
        for k, name in enumerate(_METRICS):
            runs = np.full((n_rows, n_repeats), np.nan, dtype=np.float32)
            runs[sorted_rows[idx], repeat[idx]] = metrics[idx, k]
            columns[f"{name}_{e}_runs"] = runs
        columns[f"val_acc_{e}"] = columns[f"val_acc_{e}_runs"][:, 0].copy()
    if budgets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a hash without runs at the top budget gets NaN
            mean_time = np.nanmean(columns[f"train_time_{budgets[-1]}_runs"].astype(np.float64), axis=1)
        columns["final_training_time"] = mean_time.astype(np.float32)
    else:
        columns["final_training_time"] = np.zeros(0, dtype=np.float32)
    info = {"records": count, "rows": n_rows, "epochs": budgets, "repeats": n_repeats}
    return columns, info


def _repeat_index(rows: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... for successive occurrences of each row value, in the given (file) order."""
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    starts = np.r_[True, sorted_rows[1:] != sorted_rows[:-1]] if len(rows) else np.zeros(0, bool)
    first = np.maximum.accumulate(np.where(starts, np.arange(len(rows)), 0)) if len(rows) else np.zeros(0, np.int64)
    out = np.empty(len(rows), dtype=np.int64)
    out[order] = np.arange(len(rows)) - first
    return out


def _check_cell(adjacency: str, ops: str, label_cache: dict[str, np.ndarray]) -> np.ndarray:
    """Validate a new hash's cell (2..7 vertices, '0'/'1' matrix, known ops) and return its label row."""
    n = _adjacency_size(adjacency)
    if not 2 <= n <= MAX_VERTICES:
        raise _Malformed(f"adjacency of {n} vertices (NAS-Bench-101 cells have 2..{MAX_VERTICES})")
    if adjacency.strip("01"):
        raise _Malformed(f"adjacency {adjacency!r} has characters other than '0' and '1'")
    row = label_cache.get(ops)
    if row is None:
        names = ops.split(",")
        unknown = [o for o in names if o not in OP_LABELS]
        if unknown:
            raise _Malformed(f"unknown operation(s) {unknown} in {ops!r}")
        row = np.array([OP_LABELS[o] for o in names], dtype=np.int8)
        label_cache[ops] = row
    if len(row) != n:
        raise _Malformed(f"{len(row)} operations {ops!r} for a {n}-vertex adjacency matrix")
    return row


def _structure(adjacencies: list[str], label_rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded adjacency [N,7,7], labels [N,7] and vertex counts, vectorised per vertex count."""
    n_rows = len(adjacencies)
    adjacency = np.zeros((n_rows, MAX_VERTICES, MAX_VERTICES), dtype=np.uint8)
    labels = np.full((n_rows, MAX_VERTICES), PAD_LABEL, dtype=np.int8)
    n_vertices = np.zeros(n_rows, dtype=np.uint8)
    by_size: dict[int, list[int]] = {}
    for i, text in enumerate(adjacencies):
        by_size.setdefault(len(text), []).append(i)
    for members in by_size.values():
        n = _adjacency_size(adjacencies[members[0]])  # validated per record already
        joined = "".join(adjacencies[i] for i in members).encode("ascii")
        values = np.frombuffer(joined, dtype=np.uint8).reshape(len(members), n, n) - np.uint8(ord("0"))
        index = np.asarray(members)
        adjacency[index, :n, :n] = values
        n_vertices[index] = n
        labels[index, :n] = np.stack([label_rows[i] for i in members])
    return adjacency, labels, n_vertices


def _save_atomic(dst: Path, columns: dict[str, np.ndarray]) -> None:
    """``np.savez`` to a temp file beside ``dst``, then ``os.replace`` (no half-written table on any error)."""
    tmp_name = _temp_path_beside(dst)
    try:
        with open(tmp_name, "xb") as fh:
            np.savez(fh, **columns)
        os.replace(tmp_name, dst)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
