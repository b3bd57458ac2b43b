"""Benchmark tables: architecture key -> recorded metrics. Pure data with lookups; counting lives in ``oracle.py``.

Every table stores its numbers columnar (numpy), with one row per architecture and one column per training
repeat, so loading the 20,001-row NAS-Bench-101 slice is a few ``np.load`` calls (tens of milliseconds): stored
keys are trusted on load, and :meth:`Table.verify` recomputes them (the ``verify`` CLI command).

Conventions shared by all tables:

- The *search metric* (validation accuracy) is what a search may select by; the *test metric* is only reported.
- Tables with several training repeats answer a query with ONE repeat (as the NAS-Bench-101 API does) and
  report the test metric as the mean over repeats (as SemiNAS does). ``rank``/``best``/``regret`` use the
  per-architecture mean of the search metric over repeats (for single-repeat tables that is the value itself).
- ``rank`` is the competition ("min") rank: 1 + the number of architectures with a strictly better mean search
  value, so tied architectures share the best of their ranks.
- Units are those of the file (``units``): NB101 accuracies are fractions in [0, 1]; NB201 accuracies are
  percentages, as the NB201 CSV stores them (and as published NB201 numbers are quoted).
- A table that does not cover its whole space (``is_subset``, e.g. the 20k slice of NB101) cannot answer
  architectures outside it; :meth:`Table.restricted_space` gives a space that only proposes members.
"""
from __future__ import annotations

import csv
import json
import math
import time
import warnings
import zipfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Iterator

import numpy as np
from tqdm import tqdm

from seminas_ray.spaces.base import InvalidArchitecture
from seminas_ray.spaces.base import SearchSpace
from seminas_ray.spaces.nasbench101 import NB101Space
from seminas_ray.spaces.nasbench201 import N_CELLS as NB201_N_CELLS
from seminas_ray.spaces.nasbench201 import NB201Space
from seminas_ray.spaces.nasbench201 import parse_cell
from seminas_ray.spaces.nb101_arrays import specs_from_arrays
from seminas_ray.spaces.nb101_cell import CellSpec
from seminas_ray.spaces.nb101_cell import validate
from seminas_ray.spaces.nb101_hash import nb101_hash
from seminas_ray.spaces.nb101_hash import nb101_hash_arrays
from seminas_ray.spaces.restricted import RestrictedSpace

#: Unique cells of the complete NAS-Bench-101 space (Ying et al. 2019).
NB101_N_CELLS = 423_624
#: NB201 datasets as named in the CSV's column prefixes.
NB201_DATASETS = ("cifar10", "cifar100", "imagenet")
#: Columns the 20k-subset npz schema needs (``val_acc_108`` or its per-repeat ``val_acc_108_runs``).
NB101_NPZ_REQUIRED = ("hash", "n_vertices", "adjacency", "labels")
_NB101_STRUCTURE = ("hash", "n_vertices", "adjacency", "labels")


class TableFormatError(ValueError):
    """A benchmark file has the wrong schema, missing columns or unreadable content (message names the file)."""


def _check_finite(source: str, metric: str, values: np.ndarray, keys: list[str], padded: bool) -> None:
    """``TableFormatError`` naming the first row whose metric value is not a finite number."""
    bad = np.isinf(values).any(axis=1) | (np.isnan(values).all(axis=1) if padded else np.isnan(values).any(axis=1))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = [float(v) for v in values[row]]
        raise TableFormatError(f"{source}: {metric} of {keys[row]!r} (data row {row + 1}) is {shown}: metric values "
                               f"must be finite numbers; fix or remove that row")


@dataclass
class VerifyReport:
    """What :meth:`Table.verify` found. ``ok`` when nothing is wrong."""

    n: int
    mismatches: int = 0  # stored key differs from the key recomputed from the stored architecture
    invalid: int = 0  # stored architecture is not a valid member of the space
    nonfinite: int = 0  # rows whose search metric has no finite repeat
    seconds: float = 0.0
    examples: list[dict[str, Any]] = field(default_factory=list)  # a few offending rows, for the message

    @property
    def ok(self) -> bool:
        return self.mismatches == 0 and self.invalid == 0 and self.nonfinite == 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


class Table:
    """Base class: columnar search/test metrics per architecture key, with lookups and rank statistics.

    Subclasses fill ``_keys``, ``_search`` ``[N, R]``, ``_test`` ``[N, R]`` or ``None`` and ``_columns`` (extra
    per-row columns reported by :meth:`record`) via :meth:`_finish_init`, and implement ``space``, :meth:`arch`
    and :meth:`_verify_row` (or :meth:`_verify_problems` for a vectorised check).
    """

    benchmark: str = ""  # "nb101" | "nb201"
    kind: str = ""  # registry name, see ``loading.TABLE_KINDS``
    units: str = "fraction"
    search_metric: str = ""
    test_metric: str | None = None
    space_size: int = 0  # unique cells in the complete space

    name: str
    path: Path | None
    _bad_cells: list[tuple[int, str]] = []  # (row, why): malformed architectures, see check_cells
    _keys: list[str]
    _index: dict[str, int]
    _search: np.ndarray
    _test: np.ndarray | None
    _columns: dict[str, np.ndarray]

    # -- construction -----------------------------------------------------------------------------------
    def _finish_init(
        self,
        *,
        keys: list[str],
        search: np.ndarray,
        test: np.ndarray | None,
        columns: dict[str, np.ndarray],
        source: str,
        padded: bool = False,
    ) -> None:
        """Index the keys and precompute means and the sorted search values (for ranks).

        Metric values must be finite (an ``inf`` would become the "best" architecture); ``padded`` tables (fewer
        repeats for some rows, filled with NaN by the loader) may hold NaN beside at least one finite repeat.
        """
        n = len(keys)
        if n == 0:
            raise TableFormatError(f"{source}: the table has no rows")
        search = np.asarray(search, dtype=np.float64)
        if search.ndim == 1:
            search = search[:, None]
        if search.shape[0] != n:
            raise TableFormatError(f"{source}: {search.shape[0]} search values for {n} keys")
        if test is not None:
            test = np.asarray(test, dtype=np.float64)
            if test.ndim == 1:
                test = test[:, None]
            if test.shape[0] != n:
                raise TableFormatError(f"{source}: {test.shape[0]} test values for {n} keys")
        _check_finite(source, self.search_metric, search, keys, padded)
        if test is not None:
            _check_finite(source, self.test_metric or "test", test, keys, padded)
        index = {k: i for i, k in enumerate(keys)}
        if len(index) != n:
            dup = next(k for k, count in Counter(keys).items() if count > 1)
            raise TableFormatError(f"{source}: duplicate key {dup!r} ({n - len(index)} duplicate rows)")
        self._keys = keys
        self._index = index
        self._search = search
        self._test = test
        self._columns = columns
        with _quiet_nanmean():
            self._search_mean = np.nanmean(search, axis=1)
            self._test_mean = None if test is None else np.nanmean(test, axis=1)
        finite = np.isfinite(self._search_mean)
        if not finite.any():
            raise TableFormatError(f"{source}: no finite value in the search metric {self.search_metric!r}")
        self._sorted_search = np.sort(self._search_mean[finite])
        self._best_index = int(np.nanargmax(self._search_mean))
        self._best_test_index = (
            None
            if self._test_mean is None or not np.isfinite(self._test_mean).any()
            else int(np.nanargmax(self._test_mean))
        )

    def check_cells(self) -> None:
        """``TableFormatError`` naming the first row whose architecture is malformed.

        Why: a search (or ``info``) on such a table fails later naming no file; ``verify`` counts them instead.
        """
        if self._bad_cells:
            row, why = self._bad_cells[0]
            more = f" ({len(self._bad_cells)} such rows)" if len(self._bad_cells) > 1 else ""
            raise TableFormatError(f"{self.path or self.name}: data row {row + 1} ({self._keys[row]!r}): {why}{more}; "
                                   f"fix or remove that row")

    # -- basic container protocol -------------------------------------------------------------------------
    @property
    def space(self) -> SearchSpace:
        """The complete search space the table's architectures belong to."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def keys(self) -> list[str]:
        """All keys, in file order (a copy; use :meth:`key_at` or iteration in loops)."""
        return list(self._keys)

    def key_at(self, row: int) -> str:
        """The key of row ``row`` (file order), without copying the key list like :meth:`keys`."""
        return self._keys[row]

    def index_of(self, key: str) -> int:
        """Row of ``key``; ``KeyError`` naming the table when absent."""
        try:
            return self._index[key]
        except KeyError:
            raise KeyError(f"{key!r} is not in table {self.name!r}") from None

    def arch(self, key: str) -> Any:
        """The architecture stored under ``key`` (an object of ``space``)."""
        raise NotImplementedError

    @property
    def n_repeats(self) -> int:
        """Training repeats per architecture (columns of the search metric)."""
        return int(self._search.shape[1])

    @property
    def is_subset(self) -> bool:
        """True when the table does not cover its whole space (archs outside are "not in this benchmark")."""
        return len(self._keys) < self.space_size

    def restricted_space(self) -> SearchSpace:
        """A space proposing only this table's architectures when it is a subset, else the plain space."""
        if not self.is_subset:
            return self.space
        if getattr(self, "_restricted", None) is None:
            self._restricted = RestrictedSpace(self.space, self._keys, self.arch)
        return self._restricted

    def __getstate__(self) -> dict[str, Any]:
        # Tables travel to Tune workers by pickle: drop the derived spaces (an NB101 space may hold the 423k-cell
        # enumeration once sampled); they are rebuilt on first use.
        state = dict(self.__dict__)
        state["_restricted"] = None
        if "_space" in state:
            state["_space"] = None
        return state

    # -- values -------------------------------------------------------------------------------------------
    def search_value(self, key: str, repeat: int = 0) -> float:
        """Search metric of ``key`` in training repeat ``repeat`` (NaN when that repeat is missing)."""
        row = self.index_of(key)
        if not 0 <= repeat < self.n_repeats:
            raise IndexError(f"repeat {repeat} outside 0..{self.n_repeats - 1} for table {self.name!r}")
        return float(self._search[row, repeat])

    def search_value_mean(self, key: str) -> float:
        """Mean search metric over the repeats of ``key``."""
        return float(self._search_mean[self.index_of(key)])

    def test_value(self, key: str, repeat: int = 0) -> float | None:
        """Test metric of ``key`` in repeat ``repeat``; ``None`` when the table has no test metric."""
        row = self.index_of(key)
        if self._test is None:
            return None
        if not 0 <= repeat < self._test.shape[1]:
            raise IndexError(f"repeat {repeat} outside 0..{self._test.shape[1] - 1} for table {self.name!r}")
        return _finite_or_none(self._test[row, repeat])

    def test_value_mean(self, key: str) -> float | None:
        """Mean test metric over the repeats of ``key``; ``None`` when the table has no test metric."""
        row = self.index_of(key)
        return None if self._test_mean is None else _finite_or_none(self._test_mean[row])

    def valid_repeats(self, key: str) -> list[int]:
        """Repeats of ``key`` with a finite search value (all of them in the published benchmarks)."""
        return [int(r) for r in np.flatnonzero(np.isfinite(self._search[self.index_of(key)]))]

    def sample_repeat(self, key: str, rng: np.random.Generator) -> int:
        """A uniformly drawn repeat of ``key`` among those with a finite search value."""
        repeats = self.valid_repeats(key)
        if not repeats:
            raise ValueError(f"{key!r} has no finite {self.search_metric} in table {self.name!r}")
        return repeats[int(rng.integers(len(repeats)))]

    def search_values_mean(self) -> np.ndarray:
        """Mean search metric of every row, aligned with :meth:`keys` (a copy)."""
        return self._search_mean.copy()

    def test_values_mean(self) -> np.ndarray | None:
        """Mean test metric of every row, aligned with :meth:`keys` (a copy), or ``None``."""
        return None if self._test_mean is None else self._test_mean.copy()

    def record(self, key: str) -> dict[str, Any]:
        """Everything the table holds for ``key``: every column; per-repeat columns as lists plus their means."""
        row = self.index_of(key)
        out: dict[str, Any] = {"key": key}
        for name, column in self._columns.items():
            value = column[row]
            if isinstance(value, np.ndarray):
                out[name] = value.tolist()
                if value.dtype.kind == "f":
                    base = name[: -len("_runs")] if name.endswith("_runs") else name
                    with _quiet_nanmean():
                        out[f"{base}_mean"] = _finite_or_none(np.nanmean(value)) if value.size else None
            elif isinstance(value, np.generic):
                out[name] = value.item()
            else:
                out[name] = value
        out["search_value_mean"] = self.search_value_mean(key)
        out["test_value_mean"] = self.test_value_mean(key)
        return out

    # -- ranks and the optimum ----------------------------------------------------------------------------
    def best(self, by: str = "search") -> tuple[str, float, float | None]:
        """``(key, mean search value, mean test value or None)`` of the best row by ``by`` ("search"|"test").

        ``by="test"`` is the test-metric oracle (e.g. NB101's "best mean test accuracy"), for reports only.
        """
        if by == "search":
            row = self._best_index
        elif by == "test":
            if self._best_test_index is None:
                raise ValueError(f"table {self.name!r} has no test metric")
            row = self._best_test_index
        else:
            raise ValueError(f"by must be 'search' or 'test', got {by!r}")
        key = self._keys[row]
        return key, float(self._search_mean[row]), self.test_value_mean(key)

    def rank_of_value(self, value: float) -> int:
        """Competition rank a mean search value would have: 1 + the number of rows strictly better."""
        n_better = len(self._sorted_search) - int(np.searchsorted(self._sorted_search, value, side="right"))
        return 1 + n_better

    def rank(self, key: str) -> int:
        """Rank of ``key`` by mean search value (1 = best; ties share the smallest rank)."""
        return self.rank_of_value(self.search_value_mean(key))

    def regret(self, value: float, metric: str = "search") -> float:
        """Table optimum minus ``value`` for ``metric`` ("search" or "test"), in the table's units."""
        if metric == "search":
            return float(self._search_mean[self._best_index]) - float(value)
        if metric == "test":
            if self._best_test_index is None or self._test_mean is None:
                raise ValueError(f"table {self.name!r} has no test metric")
            return float(self._test_mean[self._best_test_index]) - float(value)
        raise ValueError(f"metric must be 'search' or 'test', got {metric!r}")

    # -- summaries and checks -----------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """A JSON-able summary: size, metrics, repeats, units and the best architecture."""
        self.check_cells()
        key, search, test = self.best()
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "benchmark": self.benchmark,
            "path": None if self.path is None else str(self.path),
            "n": len(self),
            "space_size": self.space_size,
            "is_subset": self.is_subset,
            "n_repeats": self.n_repeats,
            "search_metric": self.search_metric,
            "test_metric": self.test_metric,
            "units": self.units,
            "columns": list(self._columns),
            "best_key": key,
            "best_search": search,
            "best_test": test,
            "best_arch": self.space.describe(self.arch(key)),
        }
        source = getattr(self, "metadata", {}).get("source")
        if isinstance(source, dict) and source.get("path"):
            out["source"] = source["path"]  # the tfrecord a converted table came from
        if self._best_test_index is not None:
            tkey, _, tval = self.best(by="test")
            out["best_test_key"] = tkey
            out["best_test_value"] = tval
        return out

    def verify(self, progress: bool = False) -> VerifyReport:
        """Recompute every stored key from its stored architecture; count mismatches and invalid cells.

        Also counts rows without any finite search value. ``progress`` shows a tqdm bar (on stderr).
        """
        start = time.perf_counter()
        report = VerifyReport(n=len(self))
        with tqdm(total=len(self), desc=f"verify {self.name}", unit="arch", disable=not progress,
                  mininterval=0.5) as bar:
            problems = sorted(self._verify_problems(bar))
        for row, kind, detail in problems:
            if kind == "invalid":
                report.invalid += 1
            else:
                report.mismatches += 1
            if len(report.examples) < 5:
                report.examples.append({"row": row, "key": self._keys[row], "problem": kind, "detail": detail})
        report.nonfinite = int((~np.isfinite(self._search).any(axis=1)).sum())
        report.seconds = time.perf_counter() - start
        return report

    def _verify_problems(self, bar: Any) -> list[tuple[int, str, str]]:
        """``(row, "invalid"|"mismatch", detail)`` for every bad row; calls ``bar.update`` as rows are done."""
        problems = []
        for row in range(len(self)):
            problem = self._verify_row(row)
            if problem is not None:
                problems.append((row, *problem))
            bar.update(1)
        return problems

    def _verify_row(self, row: int) -> tuple[str, str] | None:
        """``None`` when row ``row`` is fine, else ``("invalid"|"mismatch", detail)``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n={len(self)}, repeats={self.n_repeats})"


@contextmanager
def _quiet_nanmean() -> Iterator[None]:
    """Silence numpy's "Mean of empty slice" warning: an all-NaN row legitimately has a NaN mean."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


# =====================================================================================================
# NAS-Bench-101
# =====================================================================================================
def _nb101_space() -> SearchSpace:
    return NB101Space()


class _NB101Base(Table):
    benchmark = "nb101"
    units = "fraction"
    space_size = NB101_N_CELLS

    @property
    def space(self) -> SearchSpace:
        # Built on first use: tables that are only read for numbers never pay for the space.
        if getattr(self, "_space", None) is None:
            self._space = _nb101_space()
        return self._space


class NB101Table(_NB101Base):
    """NAS-Bench-101 from an npz of the ``nb101_subset20k.npz`` schema, or the converted-tfrecord superset.

    - Subset schema: ``hash`` S32, ``n_vertices``, ``adjacency`` [N,7,7], ``labels`` [N,7] and ``val_acc_108``
      (ONE training repeat); optional ``val_acc_{4,12,36}``, ``final_training_time``, ``trainable_parameters``.
      Single repeat, no test metric.
    - Converted schema (``nb101_convert``): additionally ``val_acc_108_runs`` / ``test_acc_108_runs`` (and other
      ``*_runs``) float [N, R]. The search metric is then the validation accuracy of one repeat at 108 epochs and
      the test metric is the mean ``test_acc_108_runs`` over repeats.
    - ``epochs`` selects another budget present in the file (``val_acc_{E}`` / ``val_acc_{E}_runs``), e.g. 4 for
      the EC-NAS-Bench fixture that has 4-epoch results only.

    Keys are the stored ``hash`` values, trusted on load (:meth:`verify` recomputes them).
    """

    kind = "nb101-npz"
    search_metric = "val_acc_108"

    def __init__(self, path: str | Path, name: str | None = None, *, epochs: int | None = None) -> None:
        """Load ``path``; ``epochs`` picks the training budget of the metrics (default 108)."""
        self.path = Path(path)
        self.name = name or self.path.stem
        self._space = None
        arrays = _read_npz(self.path)
        # 0-d arrays are metadata (the converter's JSON ``schema``/``source``), not columns.
        self.metadata: dict[str, Any] = {}
        for meta in [k for k, v in arrays.items() if v.ndim == 0]:
            value = arrays.pop(meta)
            try:
                self.metadata[meta] = json.loads(str(value))
            except (json.JSONDecodeError, TypeError):
                self.metadata[meta] = value.item()
        budgets = sorted(
            {int(k.split("_")[2]) for k in arrays if k.startswith("val_acc_") and k.split("_")[2].isdigit()}
        )
        # 108 epochs unless asked otherwise, never a silent fallback: SemiNAS searches on 108-epoch results.
        self.epochs = 108 if epochs is None else int(epochs)
        metric = f"val_acc_{self.epochs}"
        missing = [c for c in NB101_NPZ_REQUIRED if c not in arrays]
        if metric not in arrays and f"{metric}_runs" not in arrays:
            hint = f"; epoch budgets in the file: {budgets} (choose one with epochs=... / --epochs)" if budgets else ""
            missing.append(f"{metric} (or {metric}_runs){hint}")
        if missing:
            raise TableFormatError(
                f"{self.path}: not an NB101 table: missing array(s) {', '.join(missing)} "
                f"(found: {', '.join(sorted(arrays)) or 'none'})"
            )
        self.search_metric = metric
        hashes = arrays["hash"]
        n = int(hashes.shape[0]) if hashes.ndim == 1 else -1
        if n < 0 or hashes.dtype.kind not in "SU":
            raise TableFormatError(f"{self.path}: 'hash' must be a 1-D string array, got {hashes.dtype} {hashes.shape}")
        _check_shape(self.path, arrays, "n_vertices", (n,))
        _check_shape(self.path, arrays, "adjacency", (n, 7, 7))
        _check_shape(self.path, arrays, "labels", (n, 7))
        lengths = np.char.str_len(hashes)
        if n == 0 or int(lengths.min()) != 32 or int(lengths.max()) != 32:
            raise TableFormatError(f"{self.path}: 'hash' entries must be 32-character module hashes")
        keys = hashes.astype("U32").tolist()

        # Per-repeat columns win when present (converted schema); the 1-D column is the subset schema's
        # single repeat (in a converted file it duplicates repeat 0).
        if f"{metric}_runs" in arrays:
            search = _check_2d(self.path, arrays, f"{metric}_runs", n)
        else:
            search = _check_1d(self.path, arrays, metric, n)
        test_name = f"test_acc_{self.epochs}_runs"
        test = _check_2d(self.path, arrays, test_name, n) if test_name in arrays else None
        if test is not None:
            self.test_metric = f"test_acc_{self.epochs}"  # reported as the mean over repeats

        columns: dict[str, np.ndarray] = {"n_vertices": arrays["n_vertices"]}
        for col, values in arrays.items():
            if col in _NB101_STRUCTURE:
                continue
            if values.shape[:1] != (n,) or values.ndim > 2:
                raise TableFormatError(f"{self.path}: array {col!r} has shape {values.shape}, expected ({n}, ...)")
            columns[col] = values
        self._adjacency = arrays["adjacency"]
        self._labels = arrays["labels"]
        self._n_vertices = arrays["n_vertices"]
        self._finish_init(keys=keys, search=search, test=test, columns=columns, source=str(self.path))

    def arch(self, key: str) -> Any:
        """The stored cell of ``key`` as a ``CellSpec`` (the stored, pruned matrix and op names)."""
        return self._spec(self.index_of(key))

    def _spec(self, row: int) -> Any:
        sl = slice(row, row + 1)
        return specs_from_arrays(self._adjacency[sl], self._labels[sl], self._n_vertices[sl])[0]

    def _verify_problems(self, bar: Any) -> list[tuple[int, str, str]]:
        """Validate (prune) every stored cell in Python, then hash the valid ones vectorised.

        The stored cells should be pruned already; a row whose pruning changes it is hashed from its pruned form
        (its key is still the pruned cell's hash), one by one.
        """
        problems: list[tuple[int, str, str]] = []
        as_stored: list[int] = []  # valid rows whose stored cell is already pruned
        for row in range(len(self)):
            try:
                spec = self._spec(row)
                pruned = validate(spec)
            except (InvalidArchitecture, ValueError, IndexError, KeyError) as exc:
                problems.append((row, "invalid", str(exc)))
                bar.update(1)
                continue
            if pruned is spec:
                as_stored.append(row)
                continue
            key = nb101_hash(pruned.matrix, pruned.ops)
            if key != self._keys[row]:
                problems.append((row, "mismatch", f"stored {self._keys[row]}, recomputed {key} (after pruning)"))
            bar.update(1)
        idx = np.asarray(as_stored, dtype=np.intp)
        if idx.size:
            hashes = nb101_hash_arrays(self._adjacency[idx], self._labels[idx], self._n_vertices[idx], progress=bar)
            stored = np.asarray(self._keys, dtype="U32")[idx]
            for pos in np.flatnonzero(hashes.astype("U32") != stored).tolist():
                row = int(idx[pos])
                problems.append((row, "mismatch", f"stored {self._keys[row]}, recomputed {hashes[pos].decode()}"))
        return problems


class NB101ApiSampleTable(_NB101Base):
    """NAS-Bench-101 records in the NB101-API JSON form of ``nasbench_api_sample30.json``.

    ``{hash: {module_adjacency, module_operations, trainable_parameters, runs_108: [per-repeat dicts with
    final_validation_accuracy, final_test_accuracy, ...]}}``. Search metric: ``final_validation_accuracy`` of
    one repeat; test metric: mean ``final_test_accuracy`` over repeats.
    """

    kind = "nb101-api-json"
    search_metric = "final_validation_accuracy"
    test_metric = "final_test_accuracy"

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem
        self._space = None
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TableFormatError(f"{self.path}: not a JSON file ({exc})") from None
        if not isinstance(data, dict) or not data:
            raise TableFormatError(f"{self.path}: expected a non-empty JSON object keyed by module hash")
        keys: list[str] = []
        self._bad_cells = []
        self._specs: list[tuple[list[list[int]], list[str]]] = []
        runs_per_key: list[list[dict[str, Any]]] = []
        params: list[float] = []
        for key, rec in data.items():
            if not isinstance(rec, dict):
                raise TableFormatError(f"{self.path}: record {key!r} is not an object")
            missing = [c for c in ("module_adjacency", "module_operations", "runs_108") if c not in rec]
            if missing:
                raise TableFormatError(f"{self.path}: record {key!r} lacks {', '.join(missing)}")
            runs = rec["runs_108"]
            if not isinstance(runs, list) or not runs:
                raise TableFormatError(f"{self.path}: record {key!r}: 'runs_108' must be a non-empty list")
            for r, run in enumerate(runs):
                if not isinstance(run, dict):
                    raise TableFormatError(f"{self.path}: record {key!r}: runs_108[{r}] must be an object with "
                                           f"final_validation_accuracy and final_test_accuracy, got {run!r}")
                lacking = [m for m in ("final_validation_accuracy", "final_test_accuracy") if m not in run]
                if lacking:
                    raise TableFormatError(f"{self.path}: record {key!r} run {r} lacks {', '.join(lacking)}")
            keys.append(str(key))
            self._specs.append(self._checked_spec(len(keys) - 1, rec["module_adjacency"], rec["module_operations"]))
            runs_per_key.append(runs)
            params.append(float(rec.get("trainable_parameters", float("nan"))))
        n_rep = max(len(r) for r in runs_per_key)
        # Pad with NaN where a record has fewer repeats: the repeat rule only picks finite ones.
        run_fields = sorted({f for runs in runs_per_key for run in runs for f in run})
        columns: dict[str, np.ndarray] = {"trainable_parameters": np.asarray(params)}
        for f in run_fields:
            col = np.full((len(keys), n_rep), np.nan)
            for i, runs in enumerate(runs_per_key):
                for r, run in enumerate(runs):
                    if f in run:
                        try:
                            col[i, r] = float(run[f])
                        except (TypeError, ValueError):
                            raise TableFormatError(f"{self.path}: record {keys[i]!r} run {r}: {f} is not a number")
                        if f in (self.search_metric, self.test_metric) and not math.isfinite(col[i, r]):
                            raise TableFormatError(f"{self.path}: record {keys[i]!r} run {r}: {f} is {run[f]!r}: "
                                                   f"metric values must be finite numbers")
            columns[f"{f}_runs"] = col
        self._finish_init(
            keys=keys,
            search=columns["final_validation_accuracy_runs"],
            test=columns["final_test_accuracy_runs"],
            columns=columns,
            source=str(self.path),
            padded=True,
        )

    def _checked_spec(self, row: int, matrix: Any, ops: Any) -> tuple[Any, list[str]]:
        """A record's cell; a malformed one is noted for :meth:`check_cells` (``verify`` counts it instead)."""
        try:
            validate(CellSpec(np.asarray(matrix, dtype=np.int64), [str(o) for o in ops]))
        except (TypeError, ValueError) as exc:  # InvalidArchitecture is a ValueError
            self._bad_cells.append((row, f"module_adjacency/module_operations is not a valid NB101 cell "
                                         f"({' '.join(str(exc).split())})"))
        return matrix, list(ops) if isinstance(ops, list) else ops

    def arch(self, key: str) -> Any:
        """The stored cell of ``key`` as a ``CellSpec``."""
        return self._spec(self.index_of(key))

    def _spec(self, row: int) -> Any:
        matrix, ops = self._specs[row]
        return CellSpec(np.asarray(matrix, dtype=np.int64), list(ops))

    def record(self, key: str) -> dict[str, Any]:
        out = super().record(key)
        matrix, ops = self._specs[self.index_of(key)]
        out["module_adjacency"] = [list(map(int, r)) for r in matrix]
        out["module_operations"] = list(ops)
        return out

    def _verify_row(self, row: int) -> tuple[str, str] | None:
        try:
            spec = self._spec(row)
            if not self.space.is_valid(spec):
                return ("invalid", "not a valid NB101 cell")
            key = self.space.key(spec)
        except (InvalidArchitecture, ValueError, IndexError, KeyError, TypeError) as exc:
            return ("invalid", str(exc))
        stored = self._keys[row]
        return None if key == stored else ("mismatch", f"stored {stored}, recomputed {key}")


# =====================================================================================================
# NAS-Bench-201
# =====================================================================================================
class NB201Table(Table):
    """NAS-Bench-201 from a CSV of the ``nb201_all15625_12epoch.csv`` schema, for one dataset.

    Columns: ``cellstr`` (the key), ``<dataset>-val`` (search metric) and ``<dataset>-test`` (test metric,
    optional) for ``dataset`` in cifar10 / cifar100 / imagenet (ImageNet16-120); other numeric columns (``arch``
    index, the other datasets) are kept for :meth:`record`. Values are percentages, as in the file. One repeat.
    """

    benchmark = "nb201"
    kind = "nb201-csv"
    units = "percent"
    space_size = NB201_N_CELLS

    def __init__(self, path: str | Path, dataset: str = "cifar10", name: str | None = None) -> None:
        if dataset not in NB201_DATASETS:
            raise ValueError(f"unknown NB201 dataset {dataset!r} (choose from {', '.join(NB201_DATASETS)})")
        self.path = Path(path)
        self.dataset = dataset
        self.name = name or f"{self.path.stem}[{dataset}]"
        self.search_metric = f"{dataset}-val"
        self.test_metric = f"{dataset}-test"
        self._space_obj = NB201Space()
        self._bad_cells = []
        header, rows = _read_csv(self.path)
        missing = [c for c in ("cellstr", self.search_metric) if c not in header]
        if missing:
            raise TableFormatError(
                f"{self.path}: not an NB201 table for {dataset}: missing column(s) {', '.join(missing)} "
                f"(found: {', '.join(header) or 'none'})"
            )
        if self.test_metric not in header:
            self.test_metric = None
        columns_text = list(zip(*rows)) if rows else [() for _ in header]
        keys = [s.strip() for s in columns_text[header.index("cellstr")]]
        numeric: dict[str, np.ndarray] = {}
        for col, texts in zip(header, columns_text):
            if col == "cellstr":
                continue
            try:
                values = np.asarray(texts, dtype=np.float64)
            except ValueError:
                if col in (self.search_metric, self.test_metric):
                    bad = next(i for i, t in enumerate(texts) if not _is_float(t))
                    raise TableFormatError(
                        f"{self.path}: column {col!r} has a non-numeric value {texts[bad]!r} in data row {bad + 1}"
                    ) from None
                continue  # a foreign text column is not a metric: leave it out of records
            if col == "arch" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
                values = values.astype(np.int64)
            numeric[col] = values
        for row, key in enumerate(keys):
            try:
                parse_cell(key)
            except InvalidArchitecture as exc:
                self._bad_cells.append((row, str(exc)))
        self._finish_init(
            keys=keys,
            search=numeric[self.search_metric],
            test=None if self.test_metric is None else numeric[self.test_metric],
            columns=numeric,
            source=str(self.path),
        )

    @property
    def space(self) -> SearchSpace:
        return self._space_obj

    def arch(self, key: str) -> Any:
        """The :class:`~seminas_ray.spaces.nasbench201.NB201Cell` of ``key`` (parsed from the stored string)."""
        self.index_of(key)
        return parse_cell(key)

    def _verify_row(self, row: int) -> tuple[str, str] | None:
        stored = self._keys[row]
        try:
            key = self._space_obj.key(parse_cell(stored))
        except InvalidArchitecture as exc:
            return ("invalid", str(exc))
        return None if key == stored else ("mismatch", f"stored {stored}, canonical {key}")


# =====================================================================================================
# helpers
# =====================================================================================================
def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an npz (no pickles); ``TableFormatError`` for anything unreadable."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise TableFormatError(f"{path}: not a readable npz file ({type(exc).__name__}: {exc})") from None


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV (stdlib ``csv``: ~10x faster to start than importing pandas)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            rows = [row for row in reader if row]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TableFormatError(f"{path}: not a readable CSV file ({exc})") from None
    if not header:
        raise TableFormatError(f"{path}: empty CSV file")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise TableFormatError(f"{path}: data row {i + 1} has {len(row)} fields, the header has {len(header)}")
    return header, rows


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_shape(path: Path, arrays: dict[str, np.ndarray], name: str, shape: tuple[int, ...]) -> None:
    if arrays[name].shape != shape:
        raise TableFormatError(f"{path}: array {name!r} has shape {arrays[name].shape}, expected {shape}")


def _check_1d(path: Path, arrays: dict[str, np.ndarray], name: str, n: int) -> np.ndarray:
    values = arrays[name]
    if values.shape != (n,) or values.dtype.kind not in "fiu":
        raise TableFormatError(f"{path}: array {name!r} must be numeric of shape ({n},), got {values.dtype} {values.shape}")
    return values


def _check_2d(path: Path, arrays: dict[str, np.ndarray], name: str, n: int) -> np.ndarray:
    values = arrays[name]
    if values.ndim != 2 or values.shape[0] != n or values.shape[1] < 1 or values.dtype.kind not in "fiu":
        raise TableFormatError(
            f"{path}: array {name!r} must be numeric of shape ({n}, repeats), got {values.dtype} {values.shape}"
        )
    return values
