"""The ImageNet task's results folder: evaluations.csv, rounds.csv, final.csv, the plots, report.md / report.json."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seminas_ray.algorithm.metrics import kendall_tau
from seminas_ray.reporting import best_so_far
from seminas_ray.reporting import flatten_row
from seminas_ray.reporting import plot_search_curve
from seminas_ray.reporting import write_search_plots
from seminas_ray.reporting import write_csv
from seminas_ray.reporting import write_json
from seminas_ray.spaces.mbconv import MBConvSpace
from seminas_ray.tasks.imagenet.trial import METRIC


def write_search_results(out: Path, searcher: Any, space: MBConvSpace, final_scores: dict[str, dict[str, float]],
                         supernet_rounds: list[dict[str, Any]], *, seed: int) -> list[dict[str, Any]]:
    """evaluations.csv (every architecture with its FLOPs and params), rounds.csv and search_curve.png."""
    evaluations = list(searcher.evaluations)
    running = best_so_far([e.get(METRIC) for e in evaluations])
    costs = space.cost_many([e["key"] for e in evaluations]) if evaluations else {"flops": [], "params": []}
    rows = []
    for e, best, flops, params in zip(evaluations, running, costs["flops"], costs["params"]):
        final = final_scores.get(e["key"], {})
        rows.append({"query": e["query"], "round": e["round"], "key": e["key"], "arch": space.describe(e["key"]),
                     METRIC: e.get(METRIC), "valid_loss": e.get("valid_loss"), "final_top1": final.get("top1"),
                     "predicted": e.get("predicted"), "best_so_far": best, "flops": int(flops),
                     "params": int(params), "within_budget": bool(space.within_budget(e["key"])),
                     "supernet_steps": e.get("supernet_steps"), "trial_id": e["trial_id"], "time": e["time"]})
    frame = write_csv(out / "evaluations.csv", rows)
    log = [flatten_row(r) for r in searcher.optimizer.rounds_log]
    merged = []
    for entry in sorted(supernet_rounds, key=lambda r: int(r["round"])):  # one row per supernet round
        row = {k if k == "round" or k.startswith("supernet_") else f"supernet_{k}": v for k, v in entry.items()}
        controller = next((c for c in log if int(c.get("round", -1)) == int(entry["round"])), {})
        row.update({f"controller_{k}": v for k, v in controller.items() if k != "round"})
        merged.append(row)
    rounds = write_csv(out / "rounds.csv", merged, columns=None if merged else ["round"])
    write_search_plots(out, frame, rounds, value=METRIC, label="supernet validation top-1",
                       title=f"SemiNAS on mbconv (seed {seed})")
    plot_search_curve(out / "search_curve.png", {"SemiNAS (supernet top-1)": (list(range(1, len(running) + 1)),
                                                                               running)},
                      ylabel="best supernet validation top-1 so far", title=f"SemiNAS on mbconv (seed {seed})")
    return rows


def ranking_evidence(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Kendall tau of the supernet score and of the predictor's score against stand-alone test top-1, over the
    trained networks, all compared at the epoch every one of them reached (ASHA stops some early)."""
    common = min(len(r["history_test_top1"]) for r in rows)
    truth = np.asarray([r["history_test_top1"][common - 1] for r in rows])
    out: dict[str, Any] = {"n_archs": len(rows), "at_epoch": common}
    for name, col in (("supernet", "supernet_top1"), ("predictor", "predictor")):
        have = [i for i, r in enumerate(rows) if r.get(col) is not None]
        tau = kendall_tau(np.asarray([rows[i][col] for i in have]), truth[have]) if len(have) >= 2 else None
        out[f"{name}_kendall_tau"] = None if tau is None else round(tau, 4)
    return out


def plot_accuracy_vs_flops(path: Path, rows: list[dict[str, Any]], budget: int) -> None:
    """Test top-1 against multiply-adds for every trained network, by role, with the budget line."""
    # matplotlib only when plotting (as reporting.plot_search_curve), the object API: no pyplot backend switch
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=120)
    ax = fig.subplots()
    for role, marker in (("seminas", "o"), ("mobilenetv2", "s"), ("random", "^")):
        pts = [r for r in rows if r["role"] == role]
        if pts:
            ax.scatter([r["flops"] / 1e6 for r in pts], [r["test_top1"] for r in pts], marker=marker, label=role)
    ax.axvline(budget / 1e6, color="grey", linestyle="--", linewidth=1, label="FLOPs budget")
    ax.set_xlabel("multiply-adds (M) at the run's resolution")
    ax.set_ylabel("test top-1")
    ax.set_title("final stage: accuracy vs FLOPs")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def _fmt(value: Any, digits: int = 4) -> str:
    return "-" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def final_table(rows: list[dict[str, Any]]) -> list[str]:
    """The side-by-side Markdown table of the trained networks."""
    lines = ["| system | architecture | FLOPs (M) | params (M) | CPU latency (ms) | epochs | valid top-1 | "
             "test top-1 | test top-5 | supernet top-1 | predictor |", "|" + "---|" * 11]
    for r in rows:
        lines.append(f"| {r['system']} | `{r['key']}` | {r['flops'] / 1e6:.2f} | {r['params'] / 1e6:.3f} | "
                     f"{r['latency_ms']:.2f} | {r['epochs']} | {_fmt(r['valid_top1'])} | {_fmt(r['test_top1'])} | "
                     f"{_fmt(r['test_top5'])} | {_fmt(r.get('supernet_top1'))} | {_fmt(r.get('predictor'))} |")
    return lines


def write_report(out: Path, report: dict[str, Any]) -> None:
    """report.json and report.md."""
    write_json(out / "report.json", report)
    s, g = report["search"], report["geometry"]
    lines = [f"# SemiNAS on the mbconv space: {report['data']['source']}", "",
             f"Preset `{report['preset']}`, seed {report['seed']}, wall time {report['wall_seconds'] / 60:.1f} min.",
             f"Input {g['input_size']}x{g['input_size']} (stem stride {g['stem_stride']}, costed at the "
             f"stem-equivalent {g['resolution']}x{g['resolution']}), width multiplier {g['width_mult']}, "
             f"{g['n_classes']} classes.",
             f"FLOPs budget: {report['budget']['at_224'] / 1e6:g}M multiply-adds at 224x224 -> "
             f"**{report['budget']['run'] / 1e6:.2f}M** at this run's setting "
             f"({100 * report['budget']['feasible_fraction']:.1f}% of the space fits). Every architecture in "
             f"`evaluations.csv` and `final.csv` is within it: {report['budget']['all_within']}.", "",
             "## Search", "",
             f"{s['n_evaluated']} architectures scored on the supernet in {s['n_rounds']} rounds "
             f"({s['search_seconds'] / 60:.1f} min). Best by the final supernet weights: `{s['best']['key']}` "
             f"({s['best']['describe']}), {s['best']['flops'] / 1e6:.2f}M FLOPs, supernet top-1 "
             f"{_fmt(s['best']['final_top1'])}.", ""]
    final = report.get("final")
    if final:
        lines += ["## Final stage (trained from scratch, ASHA)", "", *final_table(final["systems"]), "",
                  "Headline (each group's pick by validation top-1; test top-1 is reported, never used to select):",
                  ""]
        for name, row in final["picks"].items():
            lines.append(f"- {name}: `{row['key']}` test top-1 {_fmt(row['test_top1'])}, top-5 "
                         f"{_fmt(row['test_top5'])}, {row['flops'] / 1e6:.2f}M FLOPs, {row['latency_ms']:.2f} ms")
        r = final["ranking"]
        lines += ["", "## Ranking evidence", "",
                  f"Kendall tau against stand-alone test top-1 after {r['at_epoch']} epoch(s), over the "
                  f"{r['n_archs']} trained networks: supernet score {_fmt(r['supernet_kendall_tau'])}, predictor "
                  f"score {_fmt(r['predictor_kendall_tau'])}.", "", "![accuracy vs FLOPs](accuracy_vs_flops.png)"]
    lines += ["", "## What this run can and cannot show", "", report["caveat"], ""]
    (out / "report.md").write_text("\n".join(lines))


__all__ = ["final_table", "plot_accuracy_vs_flops", "ranking_evidence", "write_report", "write_search_results"]
