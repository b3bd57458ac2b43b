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
        umask = os.umask(0)  # mkstemp makes the file private (0600): results get the umask's usual permissions
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
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


def best_so_far(values: list[float | None], mode: str = "max") -> list[float | None]:
    """Running maximum (``mode="min"``: minimum), ignoring ``None`` (failed or filtered evaluations)."""
    pick = max if mode == "max" else min
    out: list[float | None] = []
    best: float | None = None
    for value in values:
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            best = value if best is None else pick(best, value)
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
    _save_figure(fig, ax, path, xlabel="queries", ylabel=ylabel, title=title, legend="lower right")


def _save_figure(fig: Any, ax: Any, path: Path, *, xlabel: str, ylabel: str, title: str, legend: str,
                 fontsize: int = 8) -> None:
    """Labels, grid and legend of a one-axes figure, then write it to ``path`` (the folder is created)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc=legend, fontsize=fontsize)
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


def _finite_pairs(xs: Iterable[Any], ys: Iterable[Any]) -> list[tuple[float, float]]:
    pairs = []
    for x, y in zip(xs, ys):
        try:
            fx, fy = float(x), float(y)
        except (TypeError, ValueError):
            continue
        if math.isfinite(fx) and math.isfinite(fy):
            pairs.append((fx, fy))
    return pairs


def plot_predicted_vs_true(path: Path, evaluations: pd.DataFrame, *, value: str, label: str, title: str) -> bool:
    """Scatter of the predictor's score at query time against the measured ``value``, one colour per round, with
    each round's Kendall tau in the legend. ``predicted`` is a normalised score (the controller's output on its
    target scale), so only its order means something. Returns False (and draws nothing) without predictions."""
    from matplotlib.figure import Figure
    from scipy.stats import kendalltau

    if "predicted" not in evaluations or value not in evaluations:
        return False
    rows = evaluations[["round", "predicted", value]].apply(pd.to_numeric, errors="coerce").dropna()
    if rows.empty:
        return False
    fig = Figure(figsize=(6.0, 4.6), dpi=120)
    ax = fig.subplots()
    for rnd, group in rows.groupby("round"):
        tau = kendalltau(group["predicted"], group[value]).statistic if len(group) > 1 else float("nan")
        ax.scatter(group["predicted"], group[value], s=10, alpha=0.7,
                   label=f"round {int(rnd)} (n={len(group)}, tau={tau:.2f})")
    _save_figure(fig, ax, path, xlabel="predicted score at query time (normalised)", ylabel=label, title=title,
                 legend="best", fontsize=7)
    return True


def plot_kendall_tau(path: Path, rounds: pd.DataFrame, *, title: str) -> bool:
    """Every ``*kendall_tau`` column of ``rounds.csv`` against the round (train: the controller's fit on its
    labelled data; held-out: its ranking of the round's new architectures before they were measured). Returns
    False (and draws nothing) when the round log has no tau."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = [c for c in rounds.columns if c.endswith("kendall_tau")] if "round" in rounds else []
    curves = {c: _finite_pairs(rounds["round"], rounds[c]) for c in columns}
    curves = {c: pts for c, pts in curves.items() if pts}
    if not curves:
        return False
    fig = Figure(figsize=(6.0, 4.0), dpi=120)
    ax = fig.subplots()
    for name, pts in curves.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name.replace("_", " "))
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(-1.0, 1.0)
    _save_figure(fig, ax, path, xlabel="controller round", ylabel="Kendall tau", title=title, legend="lower right")
    return True


def write_search_plots(out: Path, evaluations: pd.DataFrame, rounds: pd.DataFrame, *, value: str, label: str,
                       title: str) -> list[str]:
    """The per-run plots beside ``search_curve.png``: ``predicted_vs_true.png`` and ``kendall_tau.png`` (each only
    when the run has what it shows: random search and evolution predict nothing). Returns the files written."""
    written = []
    if plot_predicted_vs_true(out / "predicted_vs_true.png", evaluations, value=value, label=label, title=title):
        written.append("predicted_vs_true.png")
    if plot_kendall_tau(out / "kendall_tau.png", rounds, title=title):
        written.append("kendall_tau.png")
    return written
