"""What a researcher watches while a search runs: a progress bar over the budget's queries and search-level
TensorBoard scalars. Both are searcher callbacks (``callback(searcher, "trial" | "round")``) that the runner adds
to every task's search, beside Tune's own per-trial logs.

TensorBoard (``tensorboard --logdir runs/``), in ``<run>/tensorboard/``:

- ``search/value``, ``search/best_so_far``, ``search/predicted`` per query (step = query number);
- ``round/<field>`` per controller round (step = round): every numeric field of the optimizer's round log, e.g.
  ``round/train_kendall_tau``, ``round/heldout_kendall_tau``, ``round/train_loss``, ``round/pseudo_labels_per_s``,
  ``round/controller_seconds``, and ``round/best_so_far``.

Both are conveniences: a failure to draw or write never stops a search (the searcher logs and goes on).
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from seminas_ray.reporting import flatten_row

#: set to 1 to draw the query bar when stderr is not a terminal (logs, CI), 0 to never draw it
PROGRESS_ENV = "SEMINAS_PROGRESS"
TENSORBOARD_DIR = "tensorboard"


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None (strings, missing values, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def progress_enabled() -> bool:
    """Draw the query bar? ``SEMINAS_PROGRESS`` decides when set, else whether stderr is a terminal."""
    forced = os.environ.get(PROGRESS_ENV)
    if forced is not None:
        return forced.strip() not in ("", "0", "false", "no")
    return sys.stderr.isatty()


class QueryProgress:
    """A tqdm bar over the budget's queries, with the incumbent and the controller round."""

    def __init__(self, metric: str, enabled: bool | None = None) -> None:
        self.metric = metric
        self.enabled = enabled
        self._bar: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"metric": self.metric, "enabled": self.enabled, "_bar": None}  # Tune pickles the searcher

    def __call__(self, searcher: Any, event: str) -> None:
        if self._bar is None:
            if not (progress_enabled() if self.enabled is None else self.enabled):
                return
            self._bar = tqdm(total=int(searcher.budget), desc="queries", unit="query", dynamic_ncols=True)
        best = searcher.best_value
        self._bar.n = min(len(searcher.evaluations), self._bar.total)
        self._bar.set_postfix_str(f"round {searcher.optimizer.round}, best {self.metric} "
                                  f"{'-' if best is None else f'{best:.5g}'}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class SearchTensorBoard:
    """Search-level TensorBoard scalars (see the module docstring), written by the driver that runs the searcher."""

    def __init__(self, logdir: Path | str, metric: str) -> None:
        self.logdir, self.metric = str(logdir), metric
        self._writer: Any = None
        self._written = 0       # evaluations already written (a resumed run rewrites them into a new event file)
        self._rounds = 0        # round-log entries already written
        self._best: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"logdir": self.logdir, "metric": self.metric, "_writer": None, "_written": 0, "_rounds": 0,
                "_best": None}

    def _ensure(self) -> Any:
        if self._writer is None:
            # tensorboardX comes with ray[tune]; imported here so a run that never reports loads nothing extra
            from tensorboardX import SummaryWriter
            self._writer = SummaryWriter(logdir=self.logdir, flush_secs=30)
        return self._writer

    def __call__(self, searcher: Any, event: str) -> None:
        writer = self._ensure()
        evaluations = searcher.evaluations
        for i in range(self._written, len(evaluations)):
            record = evaluations[i]
            step = int(record.get("query", i + 1))
            value = _number(record.get(self.metric))
            if value is not None:
                writer.add_scalar("search/value", value, step)
                self._best = value if self._best is None else searcher_better(searcher, value, self._best)
            predicted = _number(record.get("predicted"))
            if predicted is not None:
                writer.add_scalar("search/predicted", predicted, step)
            if self._best is not None:
                writer.add_scalar("search/best_so_far", self._best, step)
        self._written = len(evaluations)
        log = searcher.optimizer.rounds_log
        for entry in log[self._rounds:]:
            step = int(entry.get("round", self._rounds))
            for name, value in flatten_row(entry).items():
                number = _number(value)
                if number is not None and name != "round":
                    writer.add_scalar(f"round/{name}", number, step)
            if searcher.best_value is not None:
                writer.add_scalar("round/best_so_far", float(searcher.best_value), step)
            self._rounds += 1
        if event == "round":
            writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def searcher_better(searcher: Any, value: float, best: float) -> float:
    """The better of two metric values in the searcher's mode (``max`` unless it says ``min``)."""
    return min(value, best) if getattr(searcher, "mode", "max") == "min" else max(value, best)


def search_views(out: Path, metric: str) -> list[Any]:
    """The callbacks the runner adds to every search: the query bar and TensorBoard in ``out/tensorboard``."""
    return [QueryProgress(metric), SearchTensorBoard(out / TENSORBOARD_DIR, metric)]


def close_views(callbacks: list[Any]) -> None:
    """Close every callback that holds a bar or a file (end of the search, or Ctrl-C)."""
    for callback in callbacks:
        close = getattr(callback, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # a view never fails the run
                pass


__all__ = ["PROGRESS_ENV", "QueryProgress", "SearchTensorBoard", "TENSORBOARD_DIR", "close_views",
           "progress_enabled", "search_views"]
