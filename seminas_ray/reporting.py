"""Results folder helpers shared by every task: tables people open with pandas, and plots."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any
from typing import Iterable

import pandas as pd
import yaml


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file and ``os.replace`` (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    return obj


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(_clean(data), indent=2) + "\n")


def write_yaml(path: Path, data: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(_clean(data), sort_keys=False))


def write_csv(path: Path, rows: Iterable[dict[str, Any]], columns: list[str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=columns)
    atomic_write_text(path, frame.to_csv(index=False))
    return frame


def best_so_far(values: list[float | None]) -> list[float | None]:
    """Running maximum, ignoring ``None`` (failed or filtered evaluations)."""
    out: list[float | None] = []
    best: float | None = None
    for value in values:
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            best = value if best is None else max(best, value)
        out.append(best)
    return out


def plot_search_curve(path: Path, curves: dict[str, tuple[list[int], list[float | None]]], *, ylabel: str,
                      title: str, optimum: float | None = None, logx: bool = False) -> None:
    """Best-so-far vs queries, one line per curve (``name -> (queries, best values)``)."""
    # matplotlib only when plotting (~0.4 s): every run imports this module, most never plot. The object API renders
    # through Agg without pyplot, so no process-wide backend is switched (safe beside a user's interactive session).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=120)
    ax = fig.subplots()
    for name, (xs, ys) in curves.items():
        ax.step(xs, [float("nan") if y is None else y for y in ys], where="post", label=name)
    if optimum is not None:
        ax.axhline(optimum, color="grey", linestyle="--", linewidth=1, label="table optimum")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel("queries")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def round_or_none(value: Any, digits: int) -> float | None:
    """``round(float(value), digits)``, or ``None`` for a missing value (progress lines)."""
    return None if value is None else round(float(value), digits)


def flatten_row(row: dict[str, Any]) -> dict[str, Any]:
    """One level of nested dicts flattened to ``outer_inner`` columns (round logs -> ``rounds.csv``)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update({f"{k}_{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out
