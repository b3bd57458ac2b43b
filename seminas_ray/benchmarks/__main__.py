"""``python -m seminas_ray.benchmarks {info,verify} --data PATH [--dataset D]``: inspect or check a table file.

Both commands print a human-readable table, then a one-line JSON summary as the LAST line of stdout (for
scripts and tests). Exit codes: 0 fine, 1 ``verify`` found problems, 2 the file could not be read as a table
(one-line error on stderr).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any
from typing import Sequence

from seminas_ray.benchmarks.loading import load_table
from seminas_ray.benchmarks.tables import NB201_DATASETS
from seminas_ray.benchmarks.tables import Table

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_BAD_FILE = 2
_PROGRESS_MIN_ROWS = 2_000  # below this a verify is instant and a bar is noise


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _print_rows(rows: list[tuple[str, Any]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {_fmt(value)}")


def _arch_json(table: Table, key: str) -> str:
    try:
        return json.dumps(table.space.to_config(table.arch(key)), separators=(",", ":"))
    except Exception as exc:  # a broken row must not hide the rest of the summary
        return f"<cannot describe: {exc}>"


def cmd_info(table: Table, load_s: float) -> int:
    """Print size, metrics, repeats and the best architecture."""
    info = table.info()
    pct = 100.0 * len(table) / table.space_size
    share = f" ({pct:.2f}% of {table.space_size:,})" if pct >= 0.1 else f" ({pct:.2g}% of {table.space_size:,})"
    share = share if table.is_subset else ""
    rows: list[tuple[str, Any]] = [
        ("table", info["name"]),
        ("file", info["path"]),
        *([("converted from", info["source"])] if "source" in info else []),
        ("kind", f"{info['kind']} ({info['benchmark']})"),
        ("architectures", f"{len(table):,}{share}"),
        ("subset", "yes: archs outside are 'not in this benchmark'" if table.is_subset else "no: complete space"),
        ("repeats", info["n_repeats"]),
        ("search metric", f"{info['search_metric']} ({info['units']}; one repeat per query)"),
        ("test metric", f"{info['test_metric']} ({info['units']}; mean over repeats)" if info["test_metric"] else None),
        ("columns", ", ".join(info["columns"])),
        ("best key", info["best_key"]),
        ("best search (mean)", info["best_search"]),
        ("best test (mean)", info["best_test"]),
        ("best arch", _arch_json(table, info["best_key"])),
    ]
    if "best_test_key" in info:
        rows += [("best by test", f"{info['best_test_key']} = {_fmt(info['best_test_value'])}")]
    rows += [("load time (s)", round(load_s, 3))]
    _print_rows(rows)
    summary = {k: info[k] for k in ("name", "kind", "benchmark", "n", "n_repeats", "search_metric", "test_metric",
                                    "units", "is_subset", "best_key", "best_search", "best_test")}
    summary["load_s"] = round(load_s, 4)
    print(json.dumps(summary))
    return EXIT_OK


def cmd_verify(table: Table, load_s: float, progress: bool) -> int:
    """Recompute every key; count mismatches, invalid cells and rows without a finite search value."""
    report = table.verify(progress=progress and len(table) >= _PROGRESS_MIN_ROWS)
    rows: list[tuple[str, Any]] = [
        ("table", table.name),
        ("file", str(table.path)),
        ("architectures", len(table)),
        ("key mismatches", report.mismatches),
        ("invalid cells", report.invalid),
        ("no finite value", report.nonfinite),
        ("verify time (s)", round(report.seconds, 3)),
        ("result", "OK" if report.ok else "PROBLEMS"),
    ]
    _print_rows(rows)
    for ex in report.examples:
        print(f"  row {ex['row']}: {ex['problem']}: {ex['detail']}")
    summary = {
        "name": table.name,
        "n": report.n,
        "mismatches": report.mismatches,
        "invalid": report.invalid,
        "nonfinite": report.nonfinite,
        "ok": report.ok,
        "load_s": round(load_s, 4),
        "verify_s": round(report.seconds, 4),
    }
    print(json.dumps(summary))
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m seminas_ray.benchmarks",
        description="Inspect (info) or check (verify) a benchmark table file (.npz, .json, .csv, .tfrecord).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("info", "size, metrics, repeats and the best architecture"),
        ("verify", "recompute every key; non-zero exit on mismatches or invalid cells"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--data", required=True, help="table file (or a path relative to SEMINAS_DATA_DIR)")
        p.add_argument("--dataset", choices=NB201_DATASETS, default=None, help="NB201 dataset (default cifar10)")
        p.add_argument("--benchmark", choices=("nb101", "nb201"), default=None, help="assert the file's benchmark")
        p.add_argument("--epochs", type=int, default=None, help="NB101 npz/tfrecord: training budget (default 108)")
        if name == "verify":
            p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        table = load_table(args.data, benchmark=args.benchmark, dataset=args.dataset, epochs=args.epochs,
                           check_cells=args.command != "verify")  # verify counts malformed rows instead
        load_s = time.perf_counter() - start
        if args.command == "info":
            return cmd_info(table, load_s)
        return cmd_verify(table, load_s, progress=not args.no_progress)
    except (OSError, ValueError) as exc:  # TableFormatError and TFRecordError are ValueErrors
        message = " ".join(str(exc).split())  # one line
        if str(args.data) not in message and Path(args.data).name not in message:
            message = f"{args.data}: {message}"
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_FILE


if __name__ == "__main__":
    sys.exit(main())
