"""The NAS-Bench task: SemiNAS (or a baseline) searching a tabular benchmark, each query a Tune trial.

Trials are table lookups, so Tune's per-trial overhead dominates: we use ``reuse_actors=True`` and several
concurrent trials. Every query is counted: the searcher's evaluation log is replayed through an ``Oracle``
(dedupe by the canonical key, budget enforced) to produce the report.
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any

from seminas_ray.algorithm import SemiNAS
from seminas_ray.algorithm import build_config
from seminas_ray.algorithm import make_optimizer
from seminas_ray.algorithm.base import AskTellOptimizer
from seminas_ray.algorithm.config import SemiNASConfig
from seminas_ray.benchmarks.loading import load_table
from seminas_ray.benchmarks.oracle import Oracle
from seminas_ray.benchmarks.tables import Table
from seminas_ray.reporting import best_so_far
from seminas_ray.reporting import flatten_row
from seminas_ray.reporting import plot_search_curve
from seminas_ray.reporting import round_or_none
from seminas_ray.reporting import write_csv
from seminas_ray.reporting import write_json
from seminas_ray.reporting import write_yaml
from seminas_ray.spaces.base import SearchSpace
from seminas_ray.tasks.run_folder import load_run_settings
from seminas_ray.tasks.run_folder import prepare_out_dir
from seminas_ray.tasks.nasbench_trial import METRIC
from seminas_ray.tasks.nasbench_trial import nasbench_trainable

logger = logging.getLogger(__name__)

METHODS = ("seminas", "supervised", "random", "evolution")
DEFAULT_DATA = {"nb101": "nb101/nb101_subset20k.npz", "nb201": "nb201/nb201_all15625_12epoch.csv"}


# ------------------------------------------------------------------------------------------------------------
# Building blocks (used by the CLI, the benchmarks and the tests)
# ------------------------------------------------------------------------------------------------------------
def load_benchmark(data: str | os.PathLike[str] | None, benchmark: str | None = None,
                   dataset: str | None = None) -> Table:
    """The table to search: ``data`` (any supported schema) or the default file for ``benchmark``."""
    if data is None:
        data = DEFAULT_DATA[benchmark or "nb101"]  # resolved against SEMINAS_DATA_DIR by load_table
    return load_table(data, benchmark=benchmark, dataset=dataset)


def search_space(table: Table) -> SearchSpace:
    """A subset table is searched within its members, so every proposal can be answered."""
    return table.restricted_space() if table.is_subset else table.space


def seminas_config(table: Table, preset: str = "paper-300", *, config_file: str | None = None,
                   overrides: list[str] | None = None, budget: int | None = None,
                   exact_schedule: bool = False) -> SemiNASConfig:
    """Resolve a SemiNAS config for ``table`` (budget and table size checked, units adapted)."""
    overrides = list(overrides or [])
    cfg = build_config(preset, config_file, overrides, budget=budget, schedule="exact" if exact_schedule else None)
    user_set_norm = any(o.split("=", 1)[0].strip() == "target_norm" for o in overrides)
    if table.units != "fraction" and cfg.target_norm == "zscore-fixed" and not user_set_norm:
        # the authors' fixed mean/std are NB101 validation accuracies as fractions; other tables get pool z-scores
        cfg.target_norm = "zscore"
    if cfg.total_queries > len(table):
        raise ValueError(f"budget {cfg.total_queries} exceeds the {len(table):,} architectures in {table.name}")
    return cfg


def make_method(method: str, space: SearchSpace, seed: int, config: SemiNASConfig | None = None,
                pseudo_labeler: Any = None) -> AskTellOptimizer:
    """``seminas``/``supervised`` (SemiNAS without self-training) or a baseline, by name."""
    if method in ("seminas", "supervised"):
        cfg = config or SemiNASConfig()
        if method == "supervised":
            cfg = SemiNASConfig.from_dict({**cfg.to_dict(), "self_training": False, "up_sample": 1})
        return SemiNAS(space, cfg, seed=seed, pseudo_labeler=pseudo_labeler)
    if method in ("random", "evolution"):
        return make_optimizer(method, space, seed=seed)
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


def run_direct(table: Table, optimizer: AskTellOptimizer, budget: int, seed: int,
               batch: int = 1) -> Oracle:
    """Run ``optimizer`` against ``table`` without Ray or Tune; returns the oracle (log, counts, report)."""
    oracle = Oracle(table, budget=budget, seed=seed)
    while oracle.n_queries < budget and not optimizer.finished:
        archs = optimizer.ask(min(batch, budget - oracle.n_queries))
        if not archs:
            if optimizer.needs_work():
                optimizer.do_work()
                continue
            break
        for arch in archs:
            result = oracle.query(arch)
            optimizer.tell(arch, result.search_value)
    return oracle


def replay(table: Table, keys: list[str], budget: int | None, seed: int) -> Oracle:
    """Rebuild the counting oracle from an evaluation log (the Tune path evaluates in worker processes)."""
    oracle = Oracle(table, budget=budget, seed=seed)
    for key in keys:
        oracle.query_key(key)
    return oracle


# ------------------------------------------------------------------------------------------------------------
# Tune path
# ------------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("nasbench")
    g.add_argument("--benchmark", choices=("nb101", "nb201"), default=None,
                   help="which benchmark (default: nb101, or what --data is)")
    g.add_argument("--data", default=None, help="table file: NB101 tfrecord / converted npz / subset npz / "
                   "API-sample json, or an NB201 csv (default: the 20k NB101 slice in $SEMINAS_DATA_DIR)")
    g.add_argument("--dataset", default=None, help="NB201 dataset: cifar10 | cifar100 | imagenet")
    g.add_argument("--method", choices=METHODS, default="seminas", help="search method (default seminas)")


class RoundPrinter:
    """Searcher callback: one progress line per controller round, and rounds.csv kept current."""

    def __init__(self, out_dir: Path, table: Table) -> None:
        self.out_dir, self.table = out_dir, table

    def __call__(self, searcher: Any, event: str) -> None:
        if event != "round":
            return
        opt = searcher.optimizer
        log = getattr(opt, "rounds_log", [])
        last = log[-1] if log else {}
        tau = last.get("train_kendall_tau")
        prev_tau = log[-2].get("heldout_kendall_tau") if len(log) > 1 else None
        loss = last.get("train_loss", last.get("pretrain_loss"))
        best = searcher.best_value
        print(f"[round {getattr(opt, 'round', 0)}] queries {opt.n_told}/{searcher.budget} "
              f"best {self.table.search_metric}={None if best is None else round(best, 5)} "
              f"controller loss={round_or_none(loss, 4)} tau(train)={round_or_none(tau, 3)} "
              f"tau(last round, held-out)={round_or_none(prev_tau, 3)} "
              f"pseudo-labels/s={last.get('pseudo_labels_per_s', '-')} controller {last.get('controller_seconds')}s",
              flush=True)
        write_csv(self.out_dir / "rounds.csv", [flatten_row(r) for r in log])


def run(args: argparse.Namespace) -> Path:
    """``experiments/run.py --task nasbench``: search through Tune, then write the results folder."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune

    from seminas_ray.distributed.metrics import SearchMetrics
    from seminas_ray.distributed.pseudo_label import RayPseudoLabeler
    from seminas_ray.distributed.searcher import AskTellSearcher

    resume = args.resume is not None
    out = Path(args.resume or args.out).resolve()
    if resume:
        settings = load_run_settings(out, "nasbench")
        for k, v in settings.items():
            setattr(args, k, v)

    # everything that can be wrong with the input is checked before the results folder is touched
    table = load_benchmark(args.data, args.benchmark, args.dataset)
    space = search_space(table)
    cfg = seminas_config(table, args.preset or "paper-300", config_file=args.config, overrides=args.set,
                         budget=args.budget, exact_schedule=args.exact_paper_schedule)
    budget = cfg.total_queries
    if not resume:
        prepare_out_dir(out, overwrite=args.overwrite)
        write_yaml(out / "config.yaml", {"task": "nasbench", "run": _run_settings(args), "seminas": cfg.to_dict(),
                                         "table": table.info()})
    print(f"table {table.name}: {len(table):,} architectures, search metric {table.search_metric}, "
          f"budget {budget} queries, method {args.method}, seed {args.seed}", flush=True)

    if not ray.is_initialized():
        ray.init(address=args.address, num_cpus=args.num_cpus if args.address is None else None,
                 include_dashboard=args.dashboard, configure_logging=False, log_to_driver=False)
    work_cpus = 1.0
    work_pg = reserve_work_cpus(work_cpus)
    trial_cpus = trial_resources(args.concurrency, args.trial_cpus, reserved=work_cpus)
    trainable = tune.with_resources(tune.with_parameters(nasbench_trainable, table=table, seed=args.seed),
                                    {"cpu": trial_cpus})
    storage = str(out)
    if resume:
        tuner = tune.Tuner.restore(str(out / "tune"), trainable=trainable, resume_unfinished=True,
                                   resume_errored=True)
        searcher = _find_searcher(tuner)
        searcher.work_placement_group = work_pg
    else:
        optimizer = make_method(args.method, space, args.seed, cfg, pseudo_labeler=RayPseudoLabeler())
        searcher = AskTellSearcher(optimizer, metric=METRIC, mode="max", budget=budget, work_num_cpus=work_cpus,
                                   callbacks=[RoundPrinter(out, table), SearchMetrics(out.name)],
                                   work_placement_group=work_pg)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1, max_concurrent_trials=args.concurrency,
                                        reuse_actors=True),
            run_config=tune.RunConfig(name="tune", storage_path=storage, verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=2)),
        )
    t0 = time.perf_counter()
    tuner.fit()
    wall = time.perf_counter() - t0
    if searcher.n_queries < budget and not searcher.optimizer.finished:
        # Tune returns from fit() on Ctrl-C after saving its state: the search is not over, say how to resume
        raise KeyboardInterrupt(f"stopped after {searcher.n_queries} of {budget} queries")
    return write_results(out, table, searcher, seed=args.seed, budget=budget, wall_seconds=wall, method=args.method)


def trial_resources(concurrency: int, wanted: float, reserved: float) -> float:
    """CPUs per lookup trial: ``concurrency`` running plus as many staged trials fit beside ``reserved`` CPUs."""
    import ray

    total = ray.cluster_resources().get("CPU", 1.0)
    return max(0.001, min(wanted, (total - reserved) / (2 * max(1, concurrency))))


def reserve_work_cpus(num_cpus: float) -> Any:
    """A placement group holding the CPUs of controller rounds and their pseudo-labelling tasks.

    Tune keeps placement groups for running, staged and cached trial actors even while the searcher waits for a
    round; reserving the round's CPUs before Tune starts keeps it from waiting forever on a small machine.
    """
    import ray
    from ray.util.placement_group import placement_group

    pg = placement_group([{"CPU": num_cpus}], name="seminas-controller")
    ray.get(pg.ready(), timeout=120)
    return pg


def _run_settings(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("benchmark", "data", "dataset", "method", "preset", "config", "set", "budget", "seed",
            "exact_paper_schedule", "concurrency", "trial_cpus")
    return {k: getattr(args, k) for k in keys}


def _find_searcher(tuner: Any) -> Any:
    # the restored Tuner holds our searcher inside Tune's wrappers
    alg = tuner._local_tuner._tune_config.search_alg
    while hasattr(alg, "searcher"):
        alg = alg.searcher
    return alg


def write_results(out: Path, table: Table, searcher: Any, *, seed: int, budget: int, wall_seconds: float,
                  method: str) -> Path:
    """evaluations.csv, rounds.csv, report.json/md and search_curve.png."""
    evaluations = list(searcher.evaluations)
    oracle = replay(table, [e["key"] for e in evaluations], budget, seed)
    report = oracle.report()
    values = [e.get(METRIC) for e in evaluations]
    running = best_so_far(values)
    rows = []
    for e, best in zip(evaluations, running):
        key = e["key"]
        rows.append({"query": e["query"], "round": e["round"], "key": key, METRIC: e.get(METRIC),
                     "test_value": e.get("test_metric"), "repeat": e.get("repeat"), "predicted": e.get("predicted"),
                     "best_so_far": best, "rank": table.rank(key) if key in table else None,
                     "arch": table.space.describe(table.arch(key)) if key in table else None,
                     "trial_id": e["trial_id"], "time": e["time"]})
    write_csv(out / "evaluations.csv", rows)
    log = getattr(searcher.optimizer, "rounds_log", [])
    write_csv(out / "rounds.csv", [flatten_row(r) for r in log], columns=None if log else ["round"])
    report.update(method=method, wall_seconds=round(wall_seconds, 2), n_rounds=len(log),
                  controller_seconds=[r.get("controller_seconds") for r in log])
    report["best"] = {"key": report.get("best_key"), "search_value": report.get("best_search_value"),
                      "test_value": report.get("best_test_value"), "rank": report.get("rank"),
                      "rank_text": report.get("rank_text"), "arch": report.get("best_arch")}
    write_json(out / "report.json", report)
    plot_search_curve(out / "search_curve.png", {method: (list(range(1, len(running) + 1)), running)},
                      ylabel=f"best {table.search_metric} so far", title=f"{method} on {table.name} (seed {seed})",
                      optimum=table.best()[1])
    print(f"done in {wall_seconds:.1f}s: {report['n_queries']} queries, best {table.search_metric}="
          f"{report.get('best_search_value')} ({report.get('rank_text')}); results in {out}", flush=True)
    return out
