"""Does pseudo-labelling make the SemiNAS predictor rank architectures better? (the claim, at the predictor level)

SemiNAS's premise is that a controller trained on N labelled architectures, then used to pseudo-label M unlabelled
ones and retrained on both, predicts better than the same controller trained on the N labels alone. This benchmark
measures that directly, without a search around it:

- per seed, ``--heldout`` table architectures are drawn once (the held-out set) and, disjoint from them, one ordering
  of further table architectures whose first N are the labelled set of size N (so the labelled sets are nested);
- per (seed, N), an ``NAOController`` (the ``--preset``'s controller and training settings) is pretrained on the N
  labels exactly as a SemiNAS round does (``seminas_ray.algorithm.seminas.pretrain_controller``: same epochs, early
  stopping and seeds); scored on the held-out set this is M = 0, the supervised predictor;
- per M > 0, a copy of that pretrained controller pseudo-labels M architectures drawn from the table's FULL space
  (``table.space``; pseudo-labels need no table value), never a labelled or held-out one, with ``LocalPseudoLabeler``
  and is retrained on labelled x ``up_sample`` + pseudo-labelled
  (``seminas_ray.algorithm.seminas.self_train_controller``), then scored on the held-out set. The pools are nested
  too (the first M of one seeded permutation). Where the space holds fewer than M candidates (NB201: 15,625 cells in
  all) the pool is what there is, and ``n_pseudo_actual`` says how many;
- the predictor so trained is ``seminas_ray.algorithm.SemiSupervisedPredictor`` (``fit`` runs exactly these steps
  with these seeds; ``tests/test_predictor_interface.py`` checks it): M = 0 is its supervised ablation, and
  ``--preset recommended`` measures the predictor that screens the recommended ``seminas`` search (SemiNAS (RE):
  hidden 16, at most 20,000 passes per phase, M = 1,000); the job pretrains once per (seed, N) and self-trains a copy
  per M, which ``fit`` would repeat;
- scores on the held-out set: Kendall tau-b and Spearman rho between the predictions and the table's mean search
  metric (validation accuracy), and precision@50 (share of the true top 50 in the predicted top 50).

Labels are the table's mean search value per architecture, normalised as the preset says (``normalise_targets``;
pool z-scores for tables not in fractions, as ``experiments/run.py --task nasbench`` does). M = 0 is always computed
(it is free: the pretrained predictor). The controller of (seed, N) is seeded ``seed * 1_000_003 + N``; everything is
seeded, so the same command gives the same CSV numbers (except the seconds). One job = one (seed, N) with all its M
values; ``--workers`` jobs run in parallel, one PyTorch thread each.

Note the fast schedule's sample budget (``fast_sample_budget``, 100k architecture passes per training phase): with
N = 1000 and up_sample 10, M = 50,000 gets ONE epoch of self-training (60k rows). That is what a SemiNAS round does
with these settings; ``--set fast_sample_budget=...`` or ``--set schedule=exact`` measure other schedules.

Writes to ``--out`` (default ``bench_out/predictor_quality``): ``predictor_quality.csv`` (one row per seed x N x M),
``predictor_quality.md`` (mean ± s.e. over seeds of tau, rho and precision@50 per N x M, the paired tau gain of each M
over M = 0, the machine and the command), ``predictor_quality.png`` (tau vs M, one line per N) and ``config.yaml``
(the resolved SemiNAS settings), and prints the Markdown tables.

    # NAS-Bench-101 (the 20k-cell table; pseudo-labels from all 423,624 cells)
    SEMINAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/predictor_quality.py --out bench_out/pq_nb101
    # NAS-Bench-201 CIFAR-10 (M capped at the 15,625 cells minus the labelled and held-out ones)
    SEMINAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/predictor_quality.py --benchmark nb201 \\
        --dataset cifar10 --out bench_out/pq_nb201
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass
from dataclasses import field
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

TOP_K = 50  # precision@50
CSV_NAME, MD_NAME, PNG_NAME = "predictor_quality.csv", "predictor_quality.md", "predictor_quality.png"
COLUMNS = [
    "benchmark", "dataset", "table", "seed", "n_labelled", "n_pseudo", "n_pseudo_actual", "n_heldout",
    "kendall_tau", "spearman_rho", "precision_at_50", "pretrain_epochs", "train_epochs", "pretrain_seconds",
    "pseudo_label_seconds", "train_seconds",
]


# ------------------------------------------------------------------------------------------------------------
# One job: one (seed, N), all M
# ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One (seed, N): pretrain once, then self-train from the pretrained state for each M. Picklable."""

    seed: int
    n_labelled: int
    pseudo: tuple[int, ...]                      # ascending, starting with 0
    data: str | None
    benchmark: str | None
    dataset: str | None
    config: dict[str, Any] = field(repr=False)   # SemiNASConfig.to_dict()
    labelled_keys: tuple[str, ...] = field(repr=False)
    heldout_keys: tuple[str, ...] = field(repr=False)


def controller_seed(seed: int, n_labelled: int) -> int:
    """The controller seed of (seed, N); pretraining uses +1, pseudo-labelling +2, self-training +3 (as a round)."""
    return int(seed * 1_000_003 + n_labelled)


def score(pred: np.ndarray, true: np.ndarray) -> dict[str, float | None]:
    """Kendall tau-b, Spearman rho and precision@50 of held-out predictions."""
    from seminas_ray.algorithm.metrics import kendall_tau
    from seminas_ray.algorithm.metrics import precision_at_k
    from seminas_ray.algorithm.metrics import spearman_rho

    return {"kendall_tau": kendall_tau(pred, true), "spearman_rho": spearman_rho(pred, true),
            "precision_at_50": precision_at_k(pred, true, TOP_K)}


def run_job(job: Job) -> list[dict[str, Any]]:
    """CSV rows of one (seed, N): M = 0 (pretrained only) and every M > 0 (self-trained from a copy)."""
    from seminas_ray.algorithm.config import SemiNASConfig
    from seminas_ray.algorithm.pseudo_label import LocalPseudoLabeler
    from seminas_ray.algorithm.seminas import normalise_targets
    from seminas_ray.algorithm.seminas import pretrain_controller
    from seminas_ray.algorithm.seminas import self_train_controller
    from seminas_ray.controller import NAOController

    table = load_table_cached(job.data, job.benchmark, job.dataset)
    space = table.space
    cfg = SemiNASConfig.from_dict(job.config)

    def encode(keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        seqs = space.encode_many([table.arch(k) for k in keys]).astype(np.int64)
        return seqs, np.array([table.search_value_mean(k) for k in keys], dtype=np.float64)

    seqs, scores = encode(job.labelled_keys)
    targets, _ = normalise_targets(scores, cfg)
    held_seqs, held_true = encode(job.heldout_keys)

    ctl_seed = controller_seed(job.seed, job.n_labelled)
    controller = NAOController(space, cfg.controller, seed=ctl_seed)
    pre = pretrain_controller(controller, seqs, targets, cfg, ctl_seed)
    pretrained = controller.state_dict()
    weights = controller.get_weights()
    base = {"benchmark": table.benchmark, "dataset": getattr(table, "dataset", None), "table": table.name,
            "seed": job.seed, "n_labelled": job.n_labelled, "n_heldout": len(job.heldout_keys),
            "pretrain_epochs": pre["pretrain_epochs"], "pretrain_seconds": pre["pretrain_seconds"]}

    exclude = frozenset(job.labelled_keys) | frozenset(job.heldout_keys)
    labeler = LocalPseudoLabeler()
    rows: list[dict[str, Any]] = []
    by_actual: dict[int, dict[str, Any]] = {}
    for m in job.pseudo:
        if m == 0:
            rows.append({**base, "n_pseudo": 0, "n_pseudo_actual": 0, **score(controller.predict(held_seqs), held_true),
                         "train_epochs": 0, "pseudo_label_seconds": 0.0, "train_seconds": 0.0})
            continue
        t0 = time.perf_counter()
        pseudo_seqs, pseudo_preds = labeler(space, cfg.controller, weights, m, ctl_seed + 2, exclude)
        pl_seconds = round(time.perf_counter() - t0, 3)
        n_actual = len(pseudo_preds)
        if n_actual in by_actual:
            # the space ran out: a larger M drew the same pool as a smaller one, so training would repeat exactly
            rows.append({**by_actual[n_actual], "n_pseudo": m})
            continue
        student = NAOController(space, cfg.controller, seed=ctl_seed)
        student.load_state_dict(pretrained)  # the pretrained controller, RNG states included
        st = self_train_controller(student, seqs, targets, pseudo_seqs.astype(np.int64),
                                   pseudo_preds.astype(np.float64), cfg, ctl_seed)
        row = {**base, "n_pseudo": m, "n_pseudo_actual": n_actual, **score(student.predict(held_seqs), held_true),
               "train_epochs": st["train_epochs"], "pseudo_label_seconds": pl_seconds,
               "train_seconds": st["train_seconds"]}
        by_actual[n_actual] = row
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_table_arguments(parser)
    parser.add_argument("--labelled", type=parse_int_list, default=[50, 100, 300, 1000], metavar="N,N,...",
                        help="labelled set sizes N (default 50,100,300,1000)")
    parser.add_argument("--pseudo", type=parse_int_list, default=[0, 1000, 10_000, 50_000], metavar="M,M,...",
                        help="pseudo-labelled pool sizes M (default 0,1000,10000,50000; 0 is always included)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..S-1 (default 3)")
    parser.add_argument("--heldout", type=int, default=2000, help="held-out table architectures (default 2000)")
    parser.add_argument("--preset", default="paper-2000",
                        help="SemiNAS preset whose controller and training settings are used (default paper-2000)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a SemiNAS setting, e.g. --set fast_sample_budget=200000 "
                             "--set controller.hidden_size=32 (repeatable)")
    parser.add_argument("--workers", type=int, default=2, help="parallel jobs, one PyTorch thread each (default 2)")
    parser.add_argument("--out", type=Path, default=Path("bench_out/predictor_quality"),
                        help="output folder (default bench_out/predictor_quality)")
    return parser


@dataclass
class Plan:
    """Everything checked and drawn before any training."""

    table: Any
    config: Any
    labelled: list[int]
    pseudo: list[int]
    jobs: list[Job]


def plan(args: argparse.Namespace) -> Plan:
    """Validate the arguments, load the table, resolve the config and draw the key sets (``ValueError`` if wrong)."""
    from seminas_ray.algorithm import config_for_table

    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.heldout < TOP_K:
        raise ValueError(f"--heldout must be >= {TOP_K} (precision@{TOP_K}), got {args.heldout}")
    labelled = sorted(set(args.labelled))
    if labelled[0] < 2:
        raise ValueError(f"--labelled sizes must be >= 2, got {labelled[0]}")
    pseudo = sorted(set(args.pseudo) | {0})
    table = load_table_cached(args.data, args.benchmark, args.dataset)
    # the budget check of config_for_table is about searches; the presets' 2,000 queries fit every shipped table
    cfg = config_for_table(table, args.preset, overrides=args.set)
    finite = np.flatnonzero(np.isfinite(table.search_values_mean()))
    need = labelled[-1] + args.heldout
    if need > len(finite):
        raise ValueError(f"N={labelled[-1]} labelled + {args.heldout} held-out = {need} architectures, but table "
                         f"{table.name} has only {len(finite):,} with a {table.search_metric} value")
    jobs = []
    for seed in range(args.seeds):
        order = finite[np.random.default_rng([seed, 20_201]).permutation(len(finite))]
        keys = [table.key_at(int(r)) for r in order[:need]]
        heldout = tuple(keys[: args.heldout])
        for n in labelled:
            jobs.append(Job(seed=seed, n_labelled=n, pseudo=tuple(pseudo), data=args.data, benchmark=args.benchmark,
                            dataset=args.dataset, config=cfg.to_dict(),
                            labelled_keys=tuple(keys[args.heldout: args.heldout + n]), heldout_keys=heldout))
    jobs.sort(key=lambda j: (-j.n_labelled, j.seed))  # the longest jobs first
    return Plan(table=table, config=cfg, labelled=labelled, pseudo=pseudo, jobs=jobs)


# ------------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------------
def _cell(frame: Any, n: int, m: int, column: str) -> tuple[float | None, float | None, int]:
    sel = frame[(frame.n_labelled == n) & (frame.n_pseudo == m)]
    return mean_se(sel[column].tolist())


def _grid(frame: Any, labelled: list[int], pseudo: list[int], column: str, digits: int = 3) -> str:
    rows = [[f"{n:,}"] + [fmt_mean_se(*_cell(frame, n, m, column)[:2], digits=digits) for m in pseudo]
            for n in labelled]
    return markdown_table(["N \\ M"] + [f"{m:,}" for m in pseudo], rows)


def _finite(value: Any) -> bool:
    return value is not None and bool(np.isfinite(float(value)))


def _gain_grid(frame: Any, labelled: list[int], pseudo: list[int]) -> str:
    rows = []
    for n in labelled:
        sel = frame[frame.n_labelled == n]
        base = sel[sel.n_pseudo == 0].set_index("seed")["kendall_tau"]
        cells = []
        for m in pseudo[1:]:
            tau = sel[sel.n_pseudo == m].set_index("seed")["kendall_tau"]
            diffs = [tau[s] - base[s] for s in base.index
                     if s in tau.index and _finite(base[s]) and _finite(tau[s])]
            mean, se, _ = mean_se(diffs)
            cells.append("–" if mean is None else f"{mean:+.3f}" + ("" if se is None else f" ± {se:.3f}"))
        rows.append([f"{n:,}"] + cells)
    return markdown_table(["N \\ M"] + [f"{m:,}" for m in pseudo[1:]], rows)


def report_markdown(frame: Any, p: Plan, args: argparse.Namespace, machine: str, command: str,
                    wall: float) -> str:
    cfg, table = p.config, p.table
    capped = []
    for m in p.pseudo[1:]:
        for n in p.labelled:
            actual = frame[(frame.n_labelled == n) & (frame.n_pseudo == m)].n_pseudo_actual
            if len(actual) and int(actual.min()) < m:
                capped.append(f"M={m:,} at N={n:,}: {int(actual.min()):,}")
    lines = [
        f"# Predictor quality: {table.name}",
        "",
        f"Held-out: {args.heldout:,} table architectures per seed; {args.seeds} seed(s); mean ± s.e. over seeds. "
        f"Truth: mean {table.search_metric}. Settings: preset `{args.preset}`"
        + (f" with {', '.join(f'`{s}`' for s in args.set)}" if args.set else "")
        + f"; schedule {cfg.schedule}, fast_sample_budget {cfg.fast_sample_budget:,}, pretrain ≤ "
          f"{cfg.pretrain_epochs} / train ≤ {cfg.train_epochs} epochs, up_sample {cfg.up_sample}, target_norm "
          f"{cfg.target_norm}, controller hidden {cfg.controller.hidden_size} / MLP {cfg.controller.mlp_hidden_size}.",
        "",
        "## Kendall τ",
        "",
        _grid(frame, p.labelled, p.pseudo, "kendall_tau"),
        "",
        "## τ gain over M = 0 (paired by seed)",
        "",
        _gain_grid(frame, p.labelled, p.pseudo) if len(p.pseudo) > 1 else "(no M > 0 asked)",
        "",
        "## Spearman ρ",
        "",
        _grid(frame, p.labelled, p.pseudo, "spearman_rho"),
        "",
        f"## Precision@{TOP_K}",
        "",
        _grid(frame, p.labelled, p.pseudo, "precision_at_50"),
        "",
    ]
    if capped:
        lines += [f"Pools capped by the space ({table.space_size:,} cells): " + "; ".join(capped) + ".", ""]
    lines += [f"Machine: {machine}; wall {wall:.0f} s.", "", f"Command: `{command}`", ""]
    return "\n".join(lines)


def plot(path: Path, frame: Any, p: Plan, heldout: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for n in p.labelled:
        stats = [_cell(frame, n, m, "kendall_tau") for m in p.pseudo]
        ys = [float("nan") if s[0] is None else s[0] for s in stats]
        errs = [0.0 if s[1] is None else s[1] for s in stats]
        ax.errorbar(p.pseudo, ys, yerr=errs, marker="o", capsize=3, label=f"N = {n:,}")
    positive = [m for m in p.pseudo if m > 0]
    ax.set_xscale("symlog", linthresh=min(positive) if positive else 1)
    ax.set_xticks(p.pseudo)
    ax.set_xticklabels([f"{m:,}" for m in p.pseudo], fontsize=8)
    ax.set_xlabel("pseudo-labelled architectures M")
    ax.set_ylabel(f"Kendall τ on {heldout:,} held-out")
    ax.set_title(f"SemiNAS predictor: {p.table.name}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    try:
        p = plan(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import pandas as pd

    from seminas_ray.reporting import atomic_write_text
    from seminas_ray.reporting import write_csv
    from seminas_ray.reporting import write_yaml

    command = "python " + shlex.join(["benchmarks/predictor_quality.py", *(sys.argv[1:] if argv is None else argv)])
    machine = machine_line()
    table = p.table
    print(f"table {table.name}: {len(table):,} architectures ({table.space_size:,} in the space); "
          f"N {p.labelled}, M {p.pseudo}, {args.seeds} seed(s), {args.heldout:,} held-out; "
          f"{len(p.jobs)} job(s) on {args.workers} worker(s)", flush=True)
    for m in p.pseudo:
        room = table.space_size - p.labelled[-1] - args.heldout
        if m > room:
            print(f"note: M={m:,} is more than the space has left ({room:,} at N={p.labelled[-1]:,}); "
                  f"the pool is capped (n_pseudo_actual)", flush=True)
            break
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for _, result in run_jobs(run_job, p.jobs, args.workers, desc="(seed, N) jobs"):
        rows.extend(result)
    wall = time.perf_counter() - t0
    frame = pd.DataFrame(rows, columns=COLUMNS).sort_values(["seed", "n_labelled", "n_pseudo"], kind="stable")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / CSV_NAME, frame.to_dict("records"), columns=COLUMNS)
    write_yaml(out / "config.yaml", {"table": table.info(), "seminas": p.config.to_dict(), "command": command,
                                     "labelled": p.labelled, "pseudo": p.pseudo, "seeds": args.seeds,
                                     "heldout": args.heldout})
    md = report_markdown(frame, p, args, machine, command, wall)
    atomic_write_text(out / MD_NAME, md)
    plot(out / PNG_NAME, frame, p, args.heldout)
    print(md)
    print(f"wrote {out / CSV_NAME}, {out / MD_NAME}, {out / PNG_NAME}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
