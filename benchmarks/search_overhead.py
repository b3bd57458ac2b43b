"""Where the time of a NAS-Bench search goes: the CLI (Ray Tune) beside the direct ask/tell loop, phase by phase.

For one preset and seed it runs, each in a fresh subprocess:

- ``cli``: ``experiments/run.py --task nasbench ...`` (Ray, Tune trials, controller rounds as Ray tasks, pseudo-labelling
  as Ray tasks), timed from outside; the phases come from its own ``report.json``, ``rounds.csv`` and
  ``evaluations.csv``;
- ``direct``: the same optimizer through ``seminas_ray.algorithm.run_direct`` (no Ray, no Tune), the controller
  rounds inline and pseudo-labelling in the same process, with one thread as a one-CPU Ray task has.

Phases (seconds): ``process`` (the whole command), ``startup_and_report`` (process minus the search itself: imports,
``ray.init``, table loading, writing results), ``search`` (``report.json`` ``wall_seconds``: Tune's ``fit``, or the
direct loop), ``controller`` (sum of the rounds' ``controller_seconds``), of which ``pretrain``, ``pseudo_label``,
``self_train`` and ``generation``; ``round_dispatch`` (a round's wall time from submission to result minus its
``controller_seconds``: scheduling the Ray task, its worker, moving state), ``lookups`` (the table lookups
themselves), and ``tune_bookkeeping`` (the rest of the search: suggesting, trial actors, results, checkpoints).
``per_query_overhead_s`` is the issue's figure, ``(search - controller) / n_queries``. The architectures asked must
be the same on both paths (checked: ``same_queries``). Prints a table and writes ``DIR/search_overhead.csv``.

    SEMINAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/search_overhead.py \
        [--benchmark nb101] [--preset paper-300] [--seed 0] [--out bench_out/overhead]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PHASES = ["process", "startup_and_report", "search", "controller", "pretrain", "pseudo_label", "self_train",
          "generation", "round_dispatch", "lookups", "tune_bookkeeping"]
# the direct loop's controller gets what a one-CPU Ray task gets: one thread, passive OpenMP waits
ROUND_ENV = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
COLUMNS = ["path", "benchmark", "preset", "seed", "n_queries", *PHASES, "per_query_overhead_s", "same_queries"]

DIRECT = r"""
import json, sys, time
from seminas_ray.algorithm import ask_tell_loop, config_for_table, make_method, search_space
from seminas_ray.benchmarks.oracle import Oracle
from seminas_ray.algorithm.pseudo_label import LocalPseudoLabeler
from seminas_ray.tasks.nasbench import load_benchmark
benchmark, dataset, preset, seed, method = sys.argv[1], sys.argv[2] or None, sys.argv[3], int(sys.argv[4]), sys.argv[5]
table = load_benchmark(None, benchmark, dataset)
cfg = config_for_table(table, preset)
opt = make_method(method, search_space(table), seed, cfg, pseudo_labeler=LocalPseudoLabeler())
oracle = Oracle(table, budget=opt.budget, seed=seed)
keys, lookups = [], [0.0]

def lookup(arch):
    t1 = time.perf_counter()
    value = oracle.query(arch).search_value
    lookups[0] += time.perf_counter() - t1
    keys.append(opt.space.key(arch))
    return value

t0 = time.perf_counter()
ask_tell_loop(opt, lookup)
print("RESULT " + json.dumps({"search": time.perf_counter() - t0, "lookups": lookups[0], "keys": keys,
                             "rounds": opt.rounds_log}))
"""


def round_phases(rounds: list[dict[str, Any]]) -> dict[str, float]:
    """Controller time and its parts, summed over the rounds."""
    def total(key: str) -> float:
        return float(sum(float(r.get(key) or 0.0) for r in rounds))

    out = {"controller": total("controller_seconds"), "pretrain": total("pretrain_seconds"),
           "pseudo_label": total("pseudo_label_seconds"), "self_train": total("train_seconds"),
           "generation": total("generate_seconds")}
    walls = [r for r in rounds if r.get("wall_seconds") is not None]
    out["round_dispatch"] = float(sum(float(r["wall_seconds"]) - float(r["controller_seconds"]) for r in walls))
    return out


def run_cli(args: argparse.Namespace, out: Path) -> tuple[dict[str, Any], list[str]]:
    import pandas as pd

    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, str(REPO / "experiments" / "run.py"), "--task", "nasbench", "--benchmark", args.benchmark,
           "--preset", args.preset, "--seed", str(args.seed), "--method", args.method, "--out", str(out),
           "--num-cpus", str(args.num_cpus)] + (["--dataset", args.dataset] if args.dataset else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    process = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the CLI run failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    report = json.loads((out / "report.json").read_text())
    evals = pd.read_csv(out / "evaluations.csv")
    rounds = pd.read_csv(out / "rounds.csv").to_dict("records") if (out / "rounds.csv").stat().st_size else []
    row = {"process": process, "search": float(report["wall_seconds"]), "n_queries": int(report["n_queries"]),
           "lookups": float(evals["eval_seconds"].fillna(0).sum()) if "eval_seconds" in evals else 0.0,
           **round_phases(rounds)}
    row["tune_bookkeeping"] = row["search"] - row["controller"] - row["round_dispatch"] - row["lookups"]
    keys = list(evals.sort_values(["round", "query"])["key"])
    return row, keys


def run_direct(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", DIRECT, args.benchmark, args.dataset or "", args.preset,
                           str(args.seed), args.method], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO), **ROUND_ENV))
    process = time.perf_counter() - t0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"the direct run failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    data = json.loads(line[len("RESULT "):])
    row = {"process": process, "search": data["search"], "n_queries": len(data["keys"]), "lookups": data["lookups"],
           **round_phases(data["rounds"])}
    row["round_dispatch"] = 0.0
    row["tune_bookkeeping"] = 0.0
    return row, data["keys"]


def finish(row: dict[str, Any], args: argparse.Namespace, path: str, same: bool) -> dict[str, Any]:
    row.update(path=path, benchmark=args.benchmark if not args.dataset else f"{args.benchmark}-{args.dataset}",
               preset=args.preset, seed=args.seed, same_queries=same)
    row["startup_and_report"] = row["process"] - row["search"]
    row["per_query_overhead_s"] = (row["search"] - row["controller"]) / max(1, row["n_queries"])
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", default="nb101", choices=("nb101", "nb201"))
    parser.add_argument("--dataset", default=None, help="NB201 dataset")
    parser.add_argument("--preset", default="paper-300")
    parser.add_argument("--method", default="seminas")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench_out" / "overhead")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cli, cli_keys = run_cli(args, args.out / "cli_run")
    direct, direct_keys = run_direct(args)
    # within a round the CLI logs in completion order: compare per-round sets through the sorted key lists
    same = sorted(cli_keys) == sorted(direct_keys) and len(cli_keys) == len(direct_keys)
    rows = [finish(cli, args, "cli (Ray Tune)", same), finish(direct, args, "direct ask/tell", same)]
    with open(args.out / "search_overhead.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    width = max(len(p) for p in PHASES + ["per_query_overhead_s", "n_queries"])
    print(f"{'phase':<{width}}  {'cli (Ray Tune)':>15}  {'direct ask/tell':>15}")
    for key in ["n_queries", *PHASES, "per_query_overhead_s"]:
        print(f"{key:<{width}}  {rows[0][key]:>15}  {rows[1][key]:>15}")
    print(f"same architectures on both paths: {same}; CSV: {args.out / 'search_overhead.csv'}")


if __name__ == "__main__":
    main()
