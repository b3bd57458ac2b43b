"""Custom Ray metrics (``ray.util.metrics``) so the dashboard's Metrics view shows how a search is going.

Gauges, tagged with the run name: ``seminas_round``, ``seminas_queries``, ``seminas_best_score``,
``seminas_pseudo_labels_per_second``, ``seminas_controller_loss``, ``seminas_controller_seconds``.
They are exported by Ray's metrics agent (Prometheus format; the dashboard's Metrics tab shows them when
Prometheus/Grafana are set up, see docs/cluster.md).
"""
from __future__ import annotations

import logging
from typing import Any

from ray.util.metrics import Gauge

logger = logging.getLogger(__name__)

_GAUGES = {
    "seminas_round": "current SemiNAS controller round (0 = seed round)",
    "seminas_queries": "distinct architectures queried so far",
    "seminas_best_score": "best search metric found so far",
    "seminas_pseudo_labels_per_second": "pseudo-labelling throughput of the last round",
    "seminas_controller_loss": "controller training loss at the end of the last round",
    "seminas_controller_seconds": "wall time of the last controller round",
}


class SearchMetrics:
    """Publishes a searcher's progress as Ray gauges (a no-op when Ray's metrics are unavailable)."""

    def __init__(self, run: str) -> None:
        self.run = run
        self._gauges: dict[str, Any] | None = None  # created lazily in the process that reports

    def __getstate__(self) -> dict[str, Any]:
        return {"run": self.run, "_gauges": None}  # gauges are process-local (Tune pickles the searcher)

    def _ensure(self) -> dict[str, Any]:
        if self._gauges is not None:
            return self._gauges
        self._gauges = {}
        try:
            for name, doc in _GAUGES.items():
                self._gauges[name] = Gauge(name, description=doc, tag_keys=("run",))
        except Exception as exc:  # metrics are a convenience: never fail a search over them
            logger.warning("Ray metrics unavailable (%s); the search runs without them", exc)
        return self._gauges

    def set(self, name: str, value: float | None) -> None:
        gauge = self._ensure().get(name)
        if gauge is not None and value is not None:
            gauge.set(float(value), tags={"run": self.run})

    def __call__(self, searcher: Any, event: str) -> None:
        """Searcher callback: ``event`` is ``"trial"`` (a result arrived) or ``"round"`` (a round was applied)."""
        opt = searcher.optimizer
        self.set("seminas_round", opt.round)
        self.set("seminas_queries", opt.n_asked)
        self.set("seminas_best_score", searcher.best_value)
        log = opt.rounds_log
        if event == "round" and log:
            last = log[-1]
            self.set("seminas_pseudo_labels_per_second", last.get("pseudo_labels_per_s"))
            self.set("seminas_controller_loss", last.get("train_loss", last.get("pretrain_loss")))
            self.set("seminas_controller_seconds", last.get("controller_seconds"))
