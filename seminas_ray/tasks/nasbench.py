"""The NAS-Bench task: SemiNAS (or a baseline) searching a tabular benchmark, each query a Tune trial.

Trials are table lookups, so Tune's per-trial overhead dominates: the runner uses ``reuse_actors=True`` and several
concurrent trials. Every query is counted: the searcher's evaluation log is replayed through an ``Oracle`` (dedupe by
the canonical key, budget enforced) to produce the report.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ray import tune
from tqdm.auto import tqdm

from seminas_ray.algorithm import METHODS
from seminas_ray.algorithm import PRESETS
from seminas_ray.algorithm import SemiNASConfig
from seminas_ray.algorithm import config_for_table
from seminas_ray.algorithm import make_method
from seminas_ray.algorithm import replay
from seminas_ray.algorithm import search_space
from seminas_ray.algorithm.base import AskTellOptimizer
from seminas_ray.benchmarks.loading import load_table
from seminas_ray.benchmarks.tables import Table
from seminas_ray.distributed.metrics import SearchMetrics
from seminas_ray.distributed.pseudo_label import RayPseudoLabeler
from seminas_ray.distributed.runner import RunSettings
from seminas_ray.distributed.runner import SearchJob
from seminas_ray.distributed.runner import SearchOutcome
from seminas_ray.distributed.runner import SearchPlan
from seminas_ray.distributed.runner import SearchSession
from seminas_ray.distributed.searcher import AskTellSearcher
from seminas_ray.reporting import best_so_far
from seminas_ray.reporting import flatten_row
from seminas_ray.reporting import plot_search_curve
from seminas_ray.reporting import round_or_none
from seminas_ray.reporting import write_csv
from seminas_ray.reporting import write_json
from seminas_ray.reporting import write_search_plots
from seminas_ray.tasks.base import Task
from seminas_ray.tasks.nasbench_trial import METRIC
from seminas_ray.tasks.nasbench_trial import nasbench_trainable

LOOKUP_BATCH = 256  # lookups per Tune trial at most (only architectures already fixed: the search is unchanged)
DEFAULT_DATA = {"nb101": "nb101/nb101_subset20k.npz", "nb201": "nb201/nb201_all15625_12epoch.csv"}


# ------------------------------------------------------------------------------------------------------------
# Building blocks (used by the task, the benchmarks and the tests)
# ------------------------------------------------------------------------------------------------------------
def load_benchmark(data: str | os.PathLike[str] | None, benchmark: str | None = None,
                   dataset: str | None = None) -> Table:
    """The table to search: ``data`` (any supported schema) or the default file for ``benchmark``."""
    if data is None:
        data = DEFAULT_DATA[benchmark or "nb101"]  # resolved against SEMINAS_DATA_DIR by load_table
    return load_table(data, benchmark=benchmark, dataset=dataset)


class RoundPrinter:
    """Searcher callback: one progress line per controller round, and rounds.csv kept current."""

    def __init__(self, out_dir: Path, table: Table) -> None:
        self.out_dir, self.table = out_dir, table

    def __call__(self, searcher: AskTellSearcher, event: str) -> None:
        if event != "round":
            return
        opt = searcher.optimizer
        log = opt.rounds_log
        last = log[-1] if log else {}
        tau = last.get("train_kendall_tau")
        prev_tau = log[-2].get("heldout_kendall_tau") if len(log) > 1 else None
        loss = last.get("train_loss", last.get("pretrain_loss"))
        best = searcher.best_value
        # through tqdm, so the query bar (distributed/search_views.py) is redrawn below the line
        tqdm.write(f"[round {opt.round}] queries {opt.n_told}/{searcher.budget} "
                   f"best {self.table.search_metric}={None if best is None else round(best, 5)} "
                   f"controller loss={round_or_none(loss, 4)} tau(train)={round_or_none(tau, 3)} "
                   f"tau(last round, held-out)={round_or_none(prev_tau, 3)} "
                   f"pseudo-labels/s={last.get('pseudo_labels_per_s', '-')} "
                   f"controller {last.get('controller_seconds')}s")
        write_csv(self.out_dir / "rounds.csv", [flatten_row(r) for r in log])


# ------------------------------------------------------------------------------------------------------------
# The task
# ------------------------------------------------------------------------------------------------------------
class NasbenchTask(Task):
    """``--task nasbench``: NAS-Bench-101 / NAS-Bench-201 tables."""

    name = "nasbench"
    presets = tuple(sorted(PRESETS))
    # the variant we recommend (SemiNAS with predictor-screened evolution and pool, docs/results.md issue #14);
    # --preset paper-300 / paper-2000 reproduce the paper's NAO SemiNAS exactly
    default_preset = "recommended"
    description = "SemiNAS on a NAS-Bench-101 or NAS-Bench-201 table (each query a table lookup)"

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--benchmark", choices=("nb101", "nb201"), default=None,
                           help="which benchmark (default: nb101, or what --data is)")
        group.add_argument("--data", default=None, help="table file: NB101 tfrecord / converted npz / subset npz / "
                           "API-sample json, or an NB201 csv (default: the 20k NB101 slice in $SEMINAS_DATA_DIR)")
        group.add_argument("--dataset", default=None, help="NB201 dataset: cifar10 | cifar100 | imagenet")
        group.add_argument("--method", choices=tuple(METHODS), default="seminas", help="search method (default seminas)")

    def prepare(self, settings: RunSettings) -> "NasbenchJob":
        self.check_preset(settings.preset)
        table = load_benchmark(settings.option("data"), settings.option("benchmark"), settings.option("dataset"))
        config = config_for_table(table, settings.preset, config_file=settings.config,
                                  overrides=list(settings.overrides), budget=settings.budget,
                                  exact_schedule=settings.exact_paper_schedule)
        return NasbenchJob(settings, table, config)


class NasbenchJob(SearchJob):
    """One prepared NAS-Bench search."""

    task = "nasbench"

    def __init__(self, settings: RunSettings, table: Table, config: SemiNASConfig) -> None:
        self.settings, self.table, self.config = settings, table, config
        self.method = settings.option("method")
        self.space = search_space(table)
        self.budget = config.total_queries

    def describe(self) -> dict[str, Any]:
        return {"seminas": self.config.to_dict(), "table": self.table.info()}

    def headline(self) -> str:
        return (f"table {self.table.name}: {len(self.table):,} architectures, search metric "
                f"{self.table.search_metric}, budget {self.budget} queries, method {self.method}, "
                f"seed {self.settings.seed}")

    def make_optimizer(self) -> AskTellOptimizer:
        return make_method(self.method, self.space, self.settings.seed, self.config,
                           pseudo_labeler=RayPseudoLabeler(), budget=self.budget)

    def plan(self, session: SearchSession) -> SearchPlan:
        trainable = tune.with_parameters(nasbench_trainable, table=self.table, seed=self.settings.seed)
        return SearchPlan(make_optimizer=self.make_optimizer, trainable=trainable, metric=METRIC, mode="max",
                          extra_result_keys=("test_metric", "repeat", "in_benchmark", "eval_seconds"),
                          batch_size=LOOKUP_BATCH,
                          callbacks=[RoundPrinter(session.out, self.table), SearchMetrics(session.out.name)])

    def write_results(self, session: SearchSession, outcome: SearchOutcome) -> dict[str, Any]:
        return write_results(session.out, self.table, outcome.searcher, seed=self.settings.seed, budget=self.budget,
                             wall_seconds=outcome.wall_seconds, method=self.method)


def write_results(out: Path, table: Table, searcher: AskTellSearcher, *, seed: int, budget: int,
                  wall_seconds: float, method: str) -> dict[str, Any]:
    """evaluations.csv, rounds.csv, report.json and search_curve.png; returns the report."""
    evaluations = list(searcher.evaluations)
    oracle = replay(table, [e["key"] for e in evaluations], budget, seed)
    report = oracle.report()
    running = best_so_far([e.get(METRIC) for e in evaluations])
    rows = []
    for e, best in zip(evaluations, running):
        key = e["key"]
        rows.append({"query": e["query"], "round": e["round"], "key": key, METRIC: e.get(METRIC),
                     "test_value": e.get("test_metric"), "repeat": e.get("repeat"), "predicted": e.get("predicted"),
                     "best_so_far": best, "rank": table.rank(key) if key in table else None,
                     "arch": table.space.describe(table.arch(key)) if key in table else None,
                     "trial_id": e["trial_id"], "time": e["time"]})
    frame = write_csv(out / "evaluations.csv", rows)
    log = searcher.optimizer.rounds_log
    rounds = write_csv(out / "rounds.csv", [flatten_row(r) for r in log], columns=None if log else ["round"])
    # one place for the best architecture: the nested "best" (the oracle's flat best_* keys are folded into it)
    best = {name[len("best_"):]: report.pop(name) for name in [n for n in report if n.startswith("best_")]}
    best.update(rank=report.pop("rank", None), rank_text=report.pop("rank_text", None))
    report.update(method=method, wall_seconds=round(wall_seconds, 2), n_rounds=len(log),
                  controller_seconds=[r.get("controller_seconds") for r in log], best=best)
    title = f"{method} on {table.name} (seed {seed})"
    plot_search_curve(out / "search_curve.png", {method: (list(range(1, len(running) + 1)), running)},
                      ylabel=f"best {table.search_metric} so far", title=title, optimum=table.best()[1])
    report["plots"] = ["search_curve.png", *write_search_plots(out, frame, rounds, value=METRIC,
                                                               label=table.search_metric, title=title)]
    write_json(out / "report.json", report)
    print(f"done in {wall_seconds:.1f}s: {report['n_queries']} queries, best {table.search_metric}="
          f"{best['search_value']} ({best['rank_text']}); results in {out}", flush=True)
    return report


__all__ = ["NasbenchJob", "NasbenchTask", "RoundPrinter", "load_benchmark", "write_results"]
