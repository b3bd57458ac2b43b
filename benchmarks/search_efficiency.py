"""Search efficiency: SemiNAS against its supervised ablation and three baselines, over many seeds, on a real table.

SemiNAS claims (1) the accuracy of the supervised NAO controller with far fewer measured architectures, and (2) a
better architecture than regularized evolution and random search at the same number of queries. This benchmark runs,
on one table and over ``--seeds`` seeds:

- ``seminas``: the SemiNAS the CLI recommends (``--preset recommended``: SemiNAS (RE), the semi-supervised predictor
  screening regularized evolution's children and a random pool, ``seminas_ray/algorithm/screened.py``); one anytime
  run of ``--budget`` queries per seed (its round sizes grow with the labelled set, not with the budget).
- ``supervised``: its ablation, the same search whose predictor never trains on pseudo-labels (and no up-sampling).
- ``seminas-re`` / ``seminas-random`` (and ``supervised-re`` / ``supervised-random``): the predictor screening only
  evolution's mutations / only the random pool, same settings.
- ``seminas-nao`` / ``supervised-nao``: the paper's NAO-generation SemiNAS and its supervised ablation, sized for each
  checkpoint budget ``Q`` in ``--checkpoints`` (up to ``--budget``): budgets up to 300 use the ``paper-300`` preset
  (Apr-2020 code: N=100, 2 rounds of 100, hidden 16), larger ones ``paper-2000`` (Dec-2020 code: N=1100, 3 rounds
  of 300, hidden 64); a budget other than the preset's own scales N and the round size in proportion, keeping the
  number of rounds. They spend their first N queries on random seeds, so the run sized for 2,000 says nothing about
  1,000 queries: each checkpoint gets its own run, as in the paper's table. Plain NAO tops up a round that gradient
  ascent cannot fill with the predictor's best of M unlabelled archs (see ``SemiNASConfig.self_training``).
- ``random``, ``evolution`` (regularized evolution, population 100, sample 10) and ``tpe``: Ray Tune's own
  ``OptunaSearch`` (Optuna's TPE) over the controller's token encoding (``seminas_ray/distributed/
  tune_searcher_optimizer.py``), each one anytime run of ``--budget`` queries.

The default ``--methods`` are ``seminas,supervised,random,evolution,tpe``.

For the NAO runs the pseudo-labelled pool M is 10,000 (capped at what the table has left). Their controller training
uses the fast schedule (early stopping on a held-out tenth of the labelled archs) with at most ``--controller-passes`` (25,000)
architecture passes per training phase, a quarter of the search CLI's default. The reason is cost: 10 seeds x 4
checkpoint budgets x 2 variants are 80 controller searches, and the paper-2000 controller (hidden 64) trains at
~1,300-1,400 passes/s on one CPU core (compute-bound: ~16 MFLOP per pass; the LSTMs are 60% of it). With 25,000
passes the whole NB101 run takes 42 min on a quiet 2-core machine (docs/results.md); the paper's own epochs would
be ~10M passes per round. Raise it where you have the cores: ``--controller-passes 100000``.
Every run uses the ask/tell optimizers
directly against the counting oracle (no Tune: a lookup trial would cost more than the lookup); a test shows that
for one seed the Tune path evaluates the same architectures. Queries are deduplicated by graph hash and counted; on a
subset table every method proposes members only.

Outputs in ``--out``:

- ``search_efficiency.csv``: one row per method, seed, run and query count at which the incumbent (best search
  value so far) changed or a checkpoint was reached; columns ``method, seed, run_budget, queries, best_val,
  best_test, regret, rank, ...``. ``regret`` is the table optimum minus the incumbent's mean test metric where the
  table has one (NB201), else minus its mean validation metric (the NB101 slice has no test accuracies);
  ``regret_on`` says which. ``rank`` is the incumbent's rank in the table by mean validation metric (1 = best).
- ``rounds.csv``: every SemiNAS/supervised controller round with its timings (``controller_seconds``,
  ``pretrain_seconds``, ``train_seconds``, ``pseudo_label_seconds``, ``generate_seconds``).
- ``runs.csv``: one row per run with its wall time and query counters. A SemiNAS run ends before its budget when
  gradient ascent decodes no new architecture and there is no pseudo-labelled pool to fill from (possible for
  ``supervised``); its incumbent then stands at the later checkpoints, and ``n_queries < run_budget`` shows it.
- ``search_efficiency.png``: mean regret vs queries (log x) with a 95% bootstrap confidence band of the mean over
  seeds (2,000 resamples, seeded: the same CSV gives the same plot); ``search_efficiency.md``: the tables at the
  checkpoints, a win/tie/loss test of the recommended SemiNAS (``seminas``) against each other method (Mann-Whitney
  U, two-sided, 5%, with its p-value), the machine and the command.

Run (2 worker processes, one PyTorch thread each)::

    make bench-efficiency                       # = the NB101 command below
    SEMINAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/search_efficiency.py --seeds 10 \
        --out bench_out/efficiency_nb101
    # NB201 has 15,625 cells: 2,000 queries would be 13% of it, so the NB201 runs stop at 1,000
    SEMINAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/search_efficiency.py --benchmark nb201 \
        --dataset cifar100 --seeds 10 --budget 1000 --out bench_out/efficiency_nb201_cifar100
    # a setting chosen on seeds 0..9, checked on 30 seeds it has never seen
    SEMINAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/search_efficiency.py --benchmark nb201 \
        --dataset cifar10 --seeds 30 --first-seed 10 --budget 100 --checkpoints 100 --out bench_out/fresh_cifar10
"""
from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark_support import add_table_arguments
from benchmark_support import fmt_mean_se
from benchmark_support import load_table_cached
from benchmark_support import machine_line
from benchmark_support import markdown_table
from benchmark_support import mean_se
from benchmark_support import parse_int_list
from benchmark_support import run_jobs

METHODS = ("seminas", "supervised", "seminas-re", "seminas-random", "supervised-re", "supervised-random",
           "seminas-nao", "supervised-nao", "random", "evolution", "tpe")
DEFAULT_METHODS = ("seminas", "supervised", "random", "evolution", "tpe")
SIZED = ("seminas-nao", "supervised-nao")    # one run per checkpoint budget
NAO_METHOD = {"seminas-nao": "seminas", "supervised-nao": "supervised"}  # their names in the registry
PREDICTOR = ("seminas", "supervised", "seminas-re", "seminas-random", "supervised-re", "supervised-random")
RECOMMENDED = "seminas"                      # what the tests of the summary compare with every other method
BOOTSTRAP = 2000                             # resamples of the confidence bands
PAPER_300 = {"n_seed": 100, "n_per_round": 100, "n_rounds": 2, "total": 300}
PAPER_2000 = {"n_seed": 1100, "n_per_round": 300, "n_rounds": 3, "total": 2000}
MAX_PSEUDO = 10_000
COLUMNS = ["benchmark", "table", "method", "seed", "run_budget", "queries", "best_val", "best_test", "regret",
           "regret_on", "rank", "best_key", "checkpoint"]


@dataclass(frozen=True)
class Job:
    """One search: a method, a seed and the budget its run is sized for."""

    method: str
    seed: int
    budget: int
    data: str | None
    benchmark: str | None
    dataset: str | None
    overrides: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------------------------
# One run (in a worker process)
# ------------------------------------------------------------------------------------------------------------
def sized_preset(budget: int) -> tuple[str, dict[str, Any]]:
    """The preset a SemiNAS run of ``budget`` queries uses, and the round sizes scaled to that budget."""
    name, base = ("paper-300", PAPER_300) if budget <= PAPER_300["total"] else ("paper-2000", PAPER_2000)
    if budget == base["total"]:
        return name, {}
    n_seed = max(2, round(base["n_seed"] * budget / base["total"]))
    n_seed = min(n_seed, budget - base["n_rounds"]) if budget > base["n_rounds"] else budget
    per_round = max(1, math.ceil((budget - n_seed) / base["n_rounds"]))
    return name, {"n_seed": n_seed, "n_per_round": per_round}


def method_config(method: str, table: Any, budget: int, overrides: tuple[str, ...] = ()) -> Any:
    """The ``SemiNASConfig`` of a run of ``budget`` queries on ``table``: the ``recommended`` preset for the predictor
    methods, the sized paper preset for ``seminas-nao``/``supervised-nao`` (the registry turns a config into the
    supervised ablation)."""
    from seminas_ray.algorithm import config_for_table

    if method not in SIZED:
        return config_for_table(table, "recommended", overrides=list(overrides), budget=budget)
    preset, sizes = sized_preset(budget)
    pool = len(table)  # the archs a search can propose: the table's members (the whole space when complete)
    n_pseudo = max(0, min(MAX_PSEUDO, pool - budget))
    extra = [f"{k}={v}" for k, v in sizes.items()] + [f"n_unlabelled={n_pseudo}"]
    return config_for_table(table, preset, overrides=extra + list(overrides), budget=budget)


def make_optimizer(job: Job, table: Any) -> Any:
    """The ask/tell optimizer of ``job``: a registered method, or Tune's TPE searcher (it needs the table)."""
    from seminas_ray.algorithm import METHODS as REGISTERED
    from seminas_ray.algorithm import make_method
    from seminas_ray.algorithm import search_space

    space = search_space(table)
    name = NAO_METHOD.get(job.method, job.method)
    if name in REGISTERED:
        uses_config = job.method in SIZED or job.method in PREDICTOR
        config = method_config(job.method, table, job.budget, job.overrides) if uses_config else None
        return make_method(name, space, job.seed, config, budget=job.budget)
    if job.method == "tpe":
        from seminas_ray.distributed.tune_searcher_optimizer import TuneSearcherOptimizer
        from seminas_ray.distributed.tune_searcher_optimizer import optuna_tpe

        members = {k: table.arch(k) for k in table}  # keyed: the table already knows every member's hash
        return TuneSearcherOptimizer(space, optuna_tpe, members, seed=job.seed, budget=job.budget)
    raise ValueError(f"unknown method {job.method!r}; choose from {METHODS}")


def run_job(job: Job) -> dict[str, Any]:
    """Run one search directly against the counting oracle; return its query log, rounds and counters."""
    from seminas_ray.algorithm import run_direct

    table = load_table_cached(job.data, job.benchmark, job.dataset)
    t0 = time.perf_counter()
    optimizer = make_optimizer(job, table)
    oracle = run_direct(table, optimizer, job.budget, job.seed)
    wall = time.perf_counter() - t0
    report = oracle.report()
    log = [(int(e.query_index), e.key, e.search_value) for e in oracle.evaluations() if e.in_benchmark]
    return {
        "log": log,
        "rounds": [dict(r) for r in optimizer.rounds_log],
        "run": {"method": job.method, "seed": job.seed, "run_budget": job.budget, "seconds": round(wall, 2),
                "n_queries": report["n_queries"], "n_evaluated": report["n_evaluated"],
                "n_not_in_benchmark": report["n_not_in_benchmark"], "n_invalid": report["n_invalid"],
                "n_projected": getattr(optimizer, "n_projected", None)},
    }


# ------------------------------------------------------------------------------------------------------------
# From query logs to rows, tables and the plot
# ------------------------------------------------------------------------------------------------------------
def trajectory_rows(table: Any, job: Job, log: list[tuple[int, str, float | None]],
                    checkpoints: list[int]) -> list[dict[str, Any]]:
    """Rows at every change of the incumbent and at each checkpoint up to the run's budget."""
    has_test = table.test_metric is not None
    bench = getattr(table, "benchmark", None) or job.benchmark
    rows: list[dict[str, Any]] = []
    best_val, best_key = None, None
    marks = [c for c in checkpoints if c <= job.budget]

    def row(queries: int, checkpoint: bool) -> dict[str, Any]:
        test = table.test_value_mean(best_key) if best_key is not None and has_test else None
        if best_key is None:
            regret = None
        elif has_test:
            regret = table.regret(test, "test") if test is not None else None
        else:
            regret = table.regret(table.search_value_mean(best_key), "search")
        return {"benchmark": bench, "table": table.name, "method": job.method, "seed": job.seed,
                "run_budget": job.budget, "queries": queries, "best_val": best_val, "best_test": test,
                "regret": regret, "regret_on": "test" if has_test else "val",
                "rank": table.rank(best_key) if best_key is not None else None, "best_key": best_key,
                "checkpoint": checkpoint}

    for q, key, value in log:
        while marks and marks[0] < q:      # checkpoints passed between two logged queries
            rows.append(row(marks.pop(0), True))
        if value is not None and (best_val is None or value > best_val):
            best_val, best_key = value, key
            at_mark = bool(marks) and marks[0] == q
            rows.append(row(q, at_mark))
            if at_mark:
                marks.pop(0)
        elif marks and marks[0] == q:
            rows.append(row(marks.pop(0), True))
    for m in marks:  # a run that ended early (SemiNAS could generate nothing new) keeps its incumbent
        rows.append(row(m, True))
    return rows


def regret_curve(rows: list[dict[str, Any]], budget: int) -> np.ndarray:
    """Regret after each query 1..budget of one run (NaN before the first answer), from its change rows."""
    curve = np.full(budget, np.nan)
    for r in sorted(rows, key=lambda r: r["queries"]):
        if r["regret"] is not None:
            curve[r["queries"] - 1:] = r["regret"]
    return curve


def checkpoint_value(rows: list[dict[str, Any]], method: str, seed: int, q: int, field: str) -> Any:
    """``field`` at checkpoint ``q`` of one seed: from the run sized for ``q`` (sized methods) or the anytime run."""
    cands = [r for r in rows if r["method"] == method and r["seed"] == seed and r["checkpoint"] and r["queries"] == q
             and (method not in SIZED or r["run_budget"] == q)]
    return cands[-1][field] if cands else None


def mann_whitney_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value of samples ``a`` and ``b`` (``None`` with fewer than 2 values in either; 1.0
    when every value is the same, where the test is undefined)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None
    if len(set(a) | set(b)) == 1:
        return 1.0
    return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def bootstrap_band(curves: np.ndarray, seed: int = 0, n_boot: int = BOOTSTRAP,
                   level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (rows of ``curves``, NaN = no value yet) and its ``level`` bootstrap confidence interval per
    column: seeds resampled with replacement ``n_boot`` times with a generator seeded by ``seed``."""
    curves = np.atleast_2d(np.asarray(curves, dtype=float))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, curves.shape[0], size=(n_boot, curves.shape[0]))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before a run's first answer
        mean = np.nanmean(curves, axis=0)
        boots = np.nanmean(curves[idx], axis=1)          # [n_boot, columns]
        lo, hi = np.nanpercentile(boots, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return mean, lo, hi


def summary_markdown(rows: list[dict[str, Any]], runs: list[dict[str, Any]], methods: list[str], seeds: list[int],
                     checkpoints: list[int], table: Any) -> str:
    has_test = table.test_metric is not None
    metric = "best_test" if has_test else "best_val"
    scale = 100.0 if table.units == "fraction" else 1.0
    label = (table.test_metric if has_test else table.search_metric) + (" (%)" if scale == 100.0 or
                                                                        table.units == "percent" else "")
    parts = []
    head = ["method"] + [f"{q} queries" for q in checkpoints]

    def values(method: str, q: int, field: str) -> list[float]:
        vals = [checkpoint_value(rows, method, s, q, field) for s in seeds]
        return [float(v) for v in vals if v is not None]

    body = []
    for m in methods:
        body.append([m] + [fmt_mean_se(*mean_se(values(m, q, metric))[:2], digits=2, scale=scale) for q in checkpoints])
    parts.append(f"Incumbent's {label}, mean ± s.e. over {len(seeds)} seeds (the incumbent is the architecture with "
                 f"the best {table.search_metric} found so far):\n\n" + markdown_table(head, body))
    body = []
    for m in methods:
        body.append([m] + [fmt_mean_se(*mean_se(values(m, q, "regret"))[:2], digits=3, scale=scale)
                           for q in checkpoints])
    parts.append(f"Regret (table optimum − incumbent, {'test' if has_test else 'validation'} metric"
                 f"{', percentage points' if scale == 100.0 or table.units == 'percent' else ''}), mean ± s.e.:\n\n"
                 + markdown_table(head, body))
    body = []
    for m in methods:
        cells = []
        for q in checkpoints:
            ranks = values(m, q, "rank")
            cells.append("–" if not ranks else f"{np.median(ranks):.0f}")
        body.append([m] + cells)
    parts.append(f"Median rank of the incumbent among the table's {len(table):,} architectures:\n\n"
                 + markdown_table(head, body))

    if RECOMMENDED in methods:
        body = []
        for other in methods:
            if other == RECOMMENDED:
                continue
            cells = []
            for q in checkpoints:
                a, b = values(RECOMMENDED, q, "regret"), values(other, q, "regret")
                p = mann_whitney_p(a, b)
                if p is None:
                    cells.append("–")
                    continue
                verdict = "tie" if p >= 0.05 else ("win" if np.mean(a) < np.mean(b) else "loss")
                cells.append(f"{verdict} (p={p:.2g}, n={len(a)}/{len(b)})")
            body.append([f"{RECOMMENDED} vs {other}"] + cells)
        parts.append(f"The recommended SemiNAS (`{RECOMMENDED}`) against each method on regret (Mann-Whitney U, "
                     "two-sided; win/loss at p < 0.05):\n\n" + markdown_table(head, body))

    body = []
    for m in methods:
        secs = [r["seconds"] for r in runs if r["method"] == m]
        n_runs = len(secs)
        body.append([m, n_runs, f"{np.sum(secs):.0f}", f"{np.mean(secs):.1f}" if secs else "–"])
    parts.append("CPU time (one process, one thread each):\n\n"
                 + markdown_table(["method", "runs", "total s", "mean s per run"], body))
    return "\n\n".join(parts)


def plot(path: Path, rows: list[dict[str, Any]], methods: list[str], seeds: list[int], budget: int,
         checkpoints: list[int], table: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = 100.0 if table.units == "fraction" else 1.0
    fig, ax = plt.subplots(figsize=(7.0, 4.4), dpi=120)
    xs = np.arange(1, budget + 1)
    for m in methods:
        if m in SIZED:
            qs = [q for q in checkpoints if q <= budget]
            vals = np.array([[np.nan if (v := checkpoint_value(rows, m, s, q, "regret")) is None else v
                              for q in qs] for s in seeds]) * scale
            mean, lo, hi = bootstrap_band(vals)
            line = ax.errorbar(qs, mean, yerr=[mean - lo, hi - mean], marker="o", capsize=3,
                               label=f"{m} (a run per budget)")
            # the run sized for the whole budget, as a curve
            curves = [regret_curve([r for r in rows if r["method"] == m and r["seed"] == s and r["run_budget"] ==
                                    budget], budget) for s in seeds]
            ax.plot(xs, bootstrap_band(np.array(curves) * scale, n_boot=1)[0], color=line[0].get_color(),
                    linestyle=":", linewidth=1)
            continue
        curves = np.array([regret_curve([r for r in rows if r["method"] == m and r["seed"] == s], budget)
                           for s in seeds]) * scale
        mean, lo, hi = bootstrap_band(curves)
        (line,) = ax.plot(xs, mean, label=m, linewidth=2.0 if m == RECOMMENDED else 1.2)
        ax.fill_between(xs, lo, hi, alpha=0.2, color=line.get_color())
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=0.1)  # regrets span 0.1 to 30 points; 0 (the optimum) must still show
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("queries")
    unit = " (percentage points)" if scale == 100.0 or table.units == "percent" else ""
    ax.set_ylabel(f"regret, {'test' if table.test_metric else 'validation'}{unit}")
    ax.set_title(f"{table.name}: mean regret over {len(seeds)} seeds, 95% bootstrap CI of the mean"
                 + (f"\n(dotted: the run sized for {budget} queries)" if set(methods) & set(SIZED) else ""),
                 fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_table_arguments(p)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma list from {','.join(METHODS)} (default {','.join(DEFAULT_METHODS)})")
    p.add_argument("--seeds", type=int, default=10, help="number of seeds, F..F+N-1 (default 10)")
    p.add_argument("--first-seed", type=int, default=0, metavar="F",
                   help="first seed (default 0): a fresh set of seeds checks a choice made on seeds 0..N-1")
    p.add_argument("--budget", type=int, default=2000, help="queries per anytime run and largest checkpoint")
    p.add_argument("--checkpoints", type=parse_int_list, default=[100, 300, 1000, 2000],
                   help="query counts reported in the tables (SemiNAS runs once per checkpoint; default "
                        "100,300,1000,2000, those above --budget dropped)")
    p.add_argument("--controller-passes", type=int, default=25_000,
                   help="architecture passes per controller training phase of the NAO runs (seminas-nao, "
                        "supervised-nao: their fast_sample_budget; the search CLI's default is 100,000; see the module "
                        "docstring) (default 25,000)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="SemiNAS setting override for every SemiNAS run (repeatable), e.g. fast_sample_budget=50000")
    p.add_argument("--merge", nargs="+", metavar="DIR", default=None,
                   help="do not search: combine the CSVs of earlier runs (e.g. methods or seeds run on different "
                        "machines) into one summary, table and plot in --out")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="worker processes (default 2)")
    p.add_argument("--out", default="bench_out/search_efficiency", help="results folder")
    return p.parse_args(argv)


def seed_range(args: argparse.Namespace) -> range:
    """The seeds a run searches: ``--first-seed`` .. ``--first-seed + --seeds - 1``."""
    return range(args.first_seed, args.first_seed + args.seeds)


def plan(args: argparse.Namespace, table: Any) -> tuple[list[Job], list[str], list[int]]:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {unknown}; choose from {','.join(METHODS)}")
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    if args.first_seed < 0:
        raise ValueError(f"--first-seed must be >= 0, got {args.first_seed}")
    if args.budget < 2:
        raise ValueError(f"--budget must be >= 2, got {args.budget}")
    if args.budget > len(table):
        raise ValueError(f"--budget {args.budget} exceeds the {len(table):,} architectures of {table.name}")
    checkpoints = sorted({c for c in args.checkpoints if 0 < c <= args.budget} | {args.budget})
    jobs: list[Job] = []
    for seed in seed_range(args):
        for m in methods:
            budgets = [c for c in checkpoints if c >= 3] if m in SIZED else [args.budget]
            for b in budgets:
                sets = (f"fast_sample_budget={args.controller_passes}", *args.set) if m in SIZED else tuple(args.set)
                job = Job(m, seed, b, args.data, args.benchmark, args.dataset, sets)
                if (m in SIZED or m in PREDICTOR) and seed == args.first_seed:
                    method_config(m, table, b, job.overrides)  # fail before any work on a bad override or size
                jobs.append(job)
    # longest first: the pool ends with short jobs instead of one long straggler
    jobs.sort(key=lambda j: (-(j.budget * (4 if j.method in SIZED or j.method in PREDICTOR else 1)), j.seed))
    return jobs, methods, checkpoints


def _read_csv(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (is it a search_efficiency.py results folder?)")
    df = pd.read_csv(path)
    df = df.astype(object).where(df.notna(), None)  # NaN -> None, as the rows are built in a run
    return df.to_dict("records")


def merged_results(dirs: list[str], table: Any) -> tuple[list[dict], list[dict], list[dict], str]:
    """Rows, rounds and runs of earlier results folders (all on ``table``), and a note of where they came from."""
    rows, rounds, runs, notes = [], [], [], []
    for d in dirs:
        folder = Path(d)
        part = _read_csv(folder / "search_efficiency.csv")
        names = {r["table"] for r in part}
        if names - {table.name}:
            raise ValueError(f"{folder} holds results on {sorted(names)}, not on {table.name}")
        rows += part
        runs += _read_csv(folder / "runs.csv")
        if (folder / "rounds.csv").is_file():
            rounds += [r for r in _read_csv(folder / "rounds.csv") if r.get("method") is not None]
        md = folder / "search_efficiency.md"
        first = md.read_text().splitlines()[2:5] if md.is_file() else []
        notes.append(f"- `{folder.name}`: " + " ".join(line.strip() for line in first if line.strip()))
    return rows, rounds, runs, "\n".join(notes)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        table = load_table_cached(args.data, args.benchmark, args.dataset)
        if args.merge:
            rows, rounds, runs, origin = merged_results(args.merge, table)
            present = {r["method"] for r in rows}
            jobs, methods = [], [m for m in METHODS if m in present]
            seeds = sorted({int(r["seed"]) for r in rows})
            checkpoints = sorted({int(r["queries"]) for r in rows if r["checkpoint"]})
            args.budget = max(int(r["run_budget"]) for r in rows)
        else:
            jobs, methods, checkpoints = plan(args, table)
            seeds = list(seed_range(args))
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "benchmarks/search_efficiency.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    from seminas_ray.reporting import atomic_write_text
    from seminas_ray.reporting import flatten_row
    from seminas_ray.reporting import write_csv

    t0 = time.perf_counter()
    if not args.merge:
        print(f"{table.name}: {len(table):,} architectures; methods {','.join(methods)}; {args.seeds} seeds; "
              f"budget {args.budget}; checkpoints {checkpoints}; {len(jobs)} runs on {args.workers} worker(s)",
              flush=True)
        rows, rounds, runs = [], [], []
        for job, result in run_jobs(run_job, jobs, args.workers, desc="searches"):
            rows.extend(trajectory_rows(table, job, result["log"], checkpoints))
            for r in result["rounds"]:
                flat = flatten_row(r)
                rounds.append({"method": job.method, "seed": job.seed, "run_budget": job.budget, **flat})
            runs.append(result["run"])
    wall = time.perf_counter() - t0

    key = lambda r: (methods.index(r["method"]), r["seed"], r["run_budget"], r["queries"])  # noqa: E731
    rows.sort(key=key)
    write_csv(out / "search_efficiency.csv", rows, columns=COLUMNS)
    rounds.sort(key=lambda r: (methods.index(r["method"]), r["seed"], r["run_budget"], r.get("round", 0)))
    write_csv(out / "rounds.csv", rounds, columns=None if rounds else ["method", "seed", "run_budget", "round"])
    runs.sort(key=lambda r: (methods.index(r["method"]), r["seed"], r["run_budget"]))
    write_csv(out / "runs.csv", runs)
    plot(out / "search_efficiency.png", rows, methods, seeds, args.budget, checkpoints, table)
    md = summary_markdown(rows, runs, methods, seeds, checkpoints, table)
    if args.merge:
        header = f"# Search efficiency on {table.name}\n\n`{command}`\n\nMerged from:\n{origin}\n\n"
    else:
        header = (f"# Search efficiency on {table.name}\n\n`{command}`\n\n{machine_line()}; wall time "
                  f"{wall / 60:.1f} min for {len(jobs)} runs on {args.workers} worker(s)\n\n")
    atomic_write_text(out / "search_efficiency.md", header + md + "\n")
    print(md)
    print(f"\nwall {wall:.0f} s; results in {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
