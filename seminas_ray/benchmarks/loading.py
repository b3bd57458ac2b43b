"""Open any supported benchmark file as a :class:`~seminas_ray.benchmarks.tables.Table` (format sniffed).

Supported: NB101 ``.npz`` (the 20k-subset schema or a converted tfrecord), the NB101-API ``.json`` record form,
a NAS-Bench-101 ``.tfrecord`` (converted once to a cached npz, then loaded), and the NB201 ``.csv``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from typing import Callable

from seminas_ray.benchmarks.nb101_convert import load_or_convert
from seminas_ray.benchmarks.tables import NB201_DATASETS
from seminas_ray.benchmarks.tables import NB101ApiSampleTable
from seminas_ray.benchmarks.tables import NB101Table
from seminas_ray.benchmarks.tables import NB201Table
from seminas_ray.benchmarks.tables import Table
from seminas_ray.benchmarks.tables import TableFormatError
from seminas_ray.settings import data_dir

BENCHMARKS = ("nb101", "nb201")


def _load_tfrecord(path: Path, epochs: int | None = None, **_: Any) -> Table:
    # Converting the real only108 file takes minutes; load_or_convert caches the npz by the source's SHA-256.
    return NB101Table(load_or_convert(path), name=path.stem, epochs=epochs)


#: Table kinds: name -> (benchmark, file suffix, loader(path, dataset=...)).
TABLE_KINDS: dict[str, tuple[str, str, Callable[..., Table]]] = {
    "nb101-npz": ("nb101", ".npz", lambda path, epochs=None, **_: NB101Table(path, epochs=epochs)),
    "nb101-api-json": ("nb101", ".json", lambda path, **_: NB101ApiSampleTable(path)),
    "nb101-tfrecord": ("nb101", ".tfrecord", _load_tfrecord),
    "nb201-csv": ("nb201", ".csv", lambda path, dataset="cifar10", **_: NB201Table(path, dataset=dataset)),
}


def resolve_data_path(path: str | Path) -> Path:
    """``path`` as given when it exists; otherwise relative to ``SEMINAS_DATA_DIR`` (e.g. ``nb101/x.npz``)."""
    candidate = Path(path).expanduser()
    if candidate.exists():
        return candidate
    root = data_dir()
    if root is not None and not candidate.is_absolute() and (root / candidate).exists():
        return root / candidate
    raise FileNotFoundError(
        f"{path} does not exist" + ("" if root is None else f" (nor under SEMINAS_DATA_DIR={root})")
    )


def sniff_kind(path: Path) -> str:
    """The table kind of ``path``: by suffix, else by the first bytes (zip = npz, '{' = JSON)."""
    suffix = path.suffix.lower()
    for kind, (_, kind_suffix, _) in TABLE_KINDS.items():
        if suffix == kind_suffix:
            return kind
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head.startswith(b"PK"):
        return "nb101-npz"
    if head.lstrip().startswith(b"{"):
        return "nb101-api-json"
    if head.lstrip().startswith((b"arch,", b"cellstr", b",cellstr")) or b"cellstr" in head:
        return "nb201-csv"
    raise TableFormatError(
        f"{path}: cannot tell the table format (expected .npz, .json, .tfrecord or .csv; got {suffix or 'no suffix'})"
    )


def load_table(
    path: str | Path, *, benchmark: str | None = None, dataset: str | None = None, epochs: int | None = None,
    check_cells: bool = True,
) -> Table:
    """Open ``path`` as a table.

    Args:
        path: the file (or a path relative to ``SEMINAS_DATA_DIR``).
        benchmark: "nb101" or "nb201" to assert what the file must be (clear error on mismatch).
        dataset: NB201 dataset (cifar10 | cifar100 | imagenet; default cifar10). For NB101 only ``cifar10`` (or
            ``None``) is accepted: the benchmark was trained on CIFAR-10 only.
        epochs: NB101 npz/tfrecord only: the training budget of the metrics (default 108).
        check_cells: refuse a table with a malformed architecture (``verify`` passes False: it counts them).

    Raises:
        FileNotFoundError: no such file.
        TableFormatError: unreadable content, wrong schema or missing columns.
        ValueError: ``benchmark``/``dataset`` do not fit the file.
    """
    if benchmark is not None and benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r} (choose from {', '.join(BENCHMARKS)})")
    resolved = resolve_data_path(path)
    if resolved.is_dir():
        raise TableFormatError(f"{resolved} is a folder, not a table file")
    kind = sniff_kind(resolved)
    file_benchmark, _, loader = TABLE_KINDS[kind]
    if benchmark is not None and benchmark != file_benchmark:
        raise ValueError(f"{resolved} is a {file_benchmark} table ({kind}), not {benchmark}")
    if epochs is not None and kind not in ("nb101-npz", "nb101-tfrecord"):
        raise ValueError(f"{resolved}: epochs={epochs} applies to NB101 npz/tfrecord tables only ({kind})")
    if file_benchmark == "nb201":
        dataset = dataset or "cifar10"
        if dataset not in NB201_DATASETS:
            raise ValueError(f"unknown NB201 dataset {dataset!r} (choose from {', '.join(NB201_DATASETS)})")
        table = loader(resolved, dataset=dataset)
    else:
        if dataset not in (None, "cifar10"):
            raise ValueError(f"NAS-Bench-101 has CIFAR-10 results only; dataset {dataset!r} is not available")
        table = loader(resolved, epochs=epochs)
    if check_cells:
        table.check_cells()
    return table
