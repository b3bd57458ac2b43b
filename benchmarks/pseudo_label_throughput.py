"""Pseudo-labelling throughput: architectures labelled per second vs pool size and vs Ray workers / nodes.

For every pool size ``M`` (``--sizes``) it measures, each in a fresh subprocess (so every row has its own clean
driver, Ray cluster and peak-RSS counter):

- ``local``: ``LocalPseudoLabeler`` in one process, the single-process loop, with PyTorch's default thread count
  (one per core) and with one thread (``--local-threads``; 0 = default);
- ``ray``: ``RayPseudoLabeler`` on a local Ray instance with ``W`` CPUs (``--workers``), i.e. ``W`` one-CPU tasks at
  a time;
- ``cluster``: ``RayPseudoLabeler`` on a simulated multi-node cluster (``ray.cluster_utils.Cluster``: a head with no
  CPUs, which holds the driver, and ``K`` nodes with one CPU each, ``--nodes``). On one machine the nodes share its
  cores, so this shows the multi-node scheduling and object-store overhead, not extra hardware.

The space is the full NAS-Bench-101 enumeration by default (``--space``; its cache is built once, ~20 s, if absent),
the controller the paper's NB101 size (hidden 64) with fixed random weights, and 1,000 keys are excluded (as
architectures already queried). Before the timed calls one warm-up call starts the Ray workers (importing
PyTorch) and builds the space's token table, so the rows are steady-state throughput; the warm-up time is reported as
``setup_s``. Each row is the best of ``--repeats`` timed calls (one call for pools over 200,000). NB101 has 423,624
cells, so a requested pool of 1,000,000 returns all cells not excluded (``n_labelled``); ``--space tts`` (11^12
sequences, per-shard sampling on the workers) is not capped.

Columns: ``archs_per_s`` = labelled architectures / wall seconds of the call (sampling, transfer and merge
included); ``efficiency`` = ``archs_per_s / (workers x archs_per_s of the 1-worker Ray row of the same size)``;
``speedup_vs_local`` (against the local row with PyTorch's default threads); ``cpu_s``, the CPU seconds per call of
the driver and every process under it (the Ray instance or simulated cluster and its workers), and
``archs_per_cpu_s``, which depends far less on how busy the machine is than wall-clock rates do: its ratio between
rows shows what Ray and parallelism cost in CPU, i.e. the scaling to expect where each worker has its own core; and the
driver's memory: ``driver_rss_mb`` before the timed calls, ``call_peak_rss_mb`` its peak during them (``VmHWM``,
reset before), and ``driver_peak_rss_mb`` over its lifetime (``ru_maxrss``: importing PyTorch alone is ~670 MB), to
show what the driver holds as ``M`` grows (the local rows' driver also runs the model). The
machine is shared with other work: ``load_1m`` is the load average at the start of each row, and rows measured on a
busy machine understate throughput and scaling. The children run with ``OMP_WAIT_POLICY=PASSIVE``
(``--omp-wait-policy``): with PyTorch's default spinning OpenMP threads, two threads on two shared cores ran
pseudo-labelling up to 10x slower than one. Prints a table and writes ``DIR/pseudo_label_throughput.csv``.

    SEMINAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/pseudo_label_throughput.py \
        [--out bench_out/] [--sizes 10000,100000,1000000] [--workers 1,2] [--nodes 1,2] [--space nasbench101]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "RESULT "
N_EXCLUDED = 1_000
REPEAT_LIMIT = 200_000  # larger pools are timed once
COLUMNS = ["space", "mode", "pool_size", "n_labelled", "workers", "nodes", "threads", "shard_size", "seconds",
           "archs_per_s", "efficiency", "speedup_vs_local", "cpu_s", "archs_per_cpu_s", "setup_s", "driver_rss_mb",
           "call_peak_rss_mb", "driver_peak_rss_mb", "load_1m", "cores"]


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _rss_mb() -> float:
    """Current resident set size of this process (MB), from /proc."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    """Peak resident set size of this process over its lifetime (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _reset_peak_rss() -> bool:
    """Reset this process's peak-RSS mark (``VmHWM``; Linux >= 4.0), so :func:`_hwm_mb` gives the peak since now."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _hwm_mb() -> float:
    """``VmHWM`` of this process (MB): its peak RSS since the last :func:`_reset_peak_rss`."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _tree_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process and all its descendants: the local Ray instance or
    simulated cluster (raylets, object stores, workers) is started by, and lives under, this process."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        parent[int(entry)] = int(fields[1])
        ticks[int(entry)] = int(fields[11]) + int(fields[12])  # utime, stime
    tree, frontier = {os.getpid()}, [os.getpid()]
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------------------------
# one row, in its own process
# ---------------------------------------------------------------------------------------------------------------
def _make_space(name: str) -> Any:
    if name == "nasbench101":
        from seminas_ray.spaces.nasbench101 import NB101Space

        return NB101Space(progress=False)
    if name == "nasbench201":
        from seminas_ray.spaces.nasbench201 import NB201Space

        return NB201Space()
    if name == "tts":
        from seminas_ray.spaces.tts import TTSSpace

        return TTSSpace()
    raise ValueError(f"unknown space {name!r} (choose nasbench101, nasbench201 or tts)")


def _start_ray(mode: str, workers: int, nodes: int) -> Any:
    """A local Ray instance with ``workers`` CPUs, or a simulated cluster of ``nodes`` one-CPU nodes; returns the
    Cluster (to shut down) or None."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if mode == "ray":
        ray.init(num_cpus=workers, include_dashboard=False, configure_logging=False, log_to_driver=False)
        return None
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(nodes):
        cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, configure_logging=False, log_to_driver=False)
    cluster.wait_for_nodes()
    return cluster


def run_row(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one (mode, pool size, workers, nodes) row; runs inside the child process."""
    import numpy as np

    from seminas_ray.algorithm.pseudo_label import LocalPseudoLabeler
    from seminas_ray.algorithm.pseudo_label import sample_distinct
    from seminas_ray.controller import ControllerConfig
    from seminas_ray.controller import NAOController

    mode, size, workers, nodes = spec["mode"], spec["pool_size"], spec["workers"], spec["nodes"]
    load_1m = os.getloadavg()[0]
    t_setup = time.perf_counter()
    space = _make_space(spec["space"])
    cfg = ControllerConfig()  # the paper's NB101 controller: hidden 64, MLP 16 x 2
    weights = NAOController(space, cfg, seed=0).get_weights()
    exclude = frozenset(space.key(a) for a in sample_distinct(space, N_EXCLUDED, np.random.default_rng(1), frozenset()))
    cluster = None
    shard = {} if spec["shard_size"] is None else {"shard_size": spec["shard_size"]}
    if mode == "local":
        if spec["threads"]:
            import torch

            torch.set_num_threads(spec["threads"])
        labeler: Any = LocalPseudoLabeler(**shard)
        warm: Any = LocalPseudoLabeler(shard_size=256)
    else:
        from seminas_ray.distributed.pseudo_label import RayPseudoLabeler

        cluster = _start_ray(mode, workers, nodes)
        labeler = RayPseudoLabeler(**shard)
        warm = RayPseudoLabeler(shard_size=256)
    try:
        # warm-up: start every worker (PyTorch import) and build the space's token table, outside the timing
        warm(space, cfg, weights, 256 * 2 * workers, 12345, exclude)
        setup_s = time.perf_counter() - t_setup
        rss_before = _rss_mb()
        hwm_reset = _reset_peak_rss()
        seconds, cpu_s, n_labelled = float("inf"), 0.0, 0
        repeats = spec["repeats"] if size <= REPEAT_LIMIT else 1
        for _ in range(repeats):
            cpu0, t0 = _tree_cpu_s(), time.perf_counter()
            seqs, preds = labeler(space, cfg, weights, size, 2024, exclude)
            seconds = min(seconds, time.perf_counter() - t0)
            cpu_s += _tree_cpu_s() - cpu0
            assert len(seqs) == len(preds) and np.isfinite(preds).all()
            n_labelled = int(len(seqs))
            del seqs, preds  # one pool alive at a time, as in a search
        return {"space": spec["space"], "mode": mode, "pool_size": size, "n_labelled": n_labelled,
                "workers": workers, "nodes": nodes, "threads": spec.get("threads", 1),
                "shard_size": labeler.shard_size, "seconds": round(seconds, 3),
                "archs_per_s": round(n_labelled / seconds, 1), "cpu_s": round(cpu_s / repeats, 2),
                "archs_per_cpu_s": round(n_labelled * repeats / cpu_s, 1) if cpu_s > 0 else "",
                "setup_s": round(setup_s, 2), "driver_rss_mb": round(rss_before, 1),
                "call_peak_rss_mb": round(_hwm_mb(), 1) if hwm_reset else "",
                "driver_peak_rss_mb": round(_peak_rss_mb(), 1),
                "load_1m": round(load_1m, 2), "cores": os.cpu_count()}
    finally:
        if mode != "local":
            import ray

            ray.shutdown()
            if cluster is not None:
                cluster.shutdown()


# ---------------------------------------------------------------------------------------------------------------
# the driver of the benchmark
# ---------------------------------------------------------------------------------------------------------------
def plan_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Rows to measure: per pool size the local loop, Ray with each worker count, and each multi-node cluster."""
    rows = []
    for size in args.sizes:
        base = {"space": args.space, "pool_size": size, "shard_size": args.shard_size, "repeats": args.repeats}
        rows += [{**base, "mode": "local", "workers": 1, "nodes": 1, "threads": t} for t in args.local_threads]
        rows += [{**base, "mode": "ray", "workers": w, "nodes": 1, "threads": 1} for w in args.workers]
        rows += [{**base, "mode": "cluster", "workers": k, "nodes": k, "threads": 1} for k in args.nodes if k > 1]
    return rows


def run_child(spec: dict[str, Any], timeout: float, omp_wait_policy: str) -> dict[str, Any]:
    """Run one row in a fresh Python process (its Ray workers inherit its environment) and parse its result."""
    env = dict(os.environ, RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "disabled"), PYTHONUNBUFFERED="1")
    env.pop("OMP_WAIT_POLICY", None)
    if omp_wait_policy != "unset":
        env["OMP_WAIT_POLICY"] = omp_wait_policy
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"row {spec} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def add_ratios(results: list[dict[str, Any]]) -> None:
    """``efficiency`` against the 1-worker Ray row and ``speedup_vs_local`` against the local row of the same size."""
    for row in results:
        same = [r for r in results if r["pool_size"] == row["pool_size"]]
        single = next((r for r in same if r["mode"] == "ray" and r["workers"] == 1), None)
        local = next((r for r in same if r["mode"] == "local" and r["threads"] == 0), None)
        local = local or next((r for r in same if r["mode"] == "local"), None)
        row["efficiency"] = (round(row["archs_per_s"] / (row["workers"] * single["archs_per_s"]), 3)
                             if single else "")
        row["speedup_vs_local"] = round(row["archs_per_s"] / local["archs_per_s"], 2) if local else ""


def write_csv(path: Path, results: list[dict[str, Any]]) -> None:
    """Write the rows atomically (a temp file, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in COLUMNS} for r in results)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def print_table(results: list[dict[str, Any]]) -> None:
    header = (f"{'mode':<8} {'pool':>9} {'labelled':>9} {'W':>2} {'N':>2} {'thr':>3} {'seconds':>8} {'archs/s':>9} "
              f"{'eff':>5} {'x local':>7} {'archs/cpu-s':>11} {'rss MB':>7} {'call pk':>7} {'life pk':>7} {'load':>5}")
    print(header)
    print("-" * len(header))
    for r in results:
        eff = f"{r['efficiency']:.2f}" if r["efficiency"] != "" else "-"
        spd = f"{r['speedup_vs_local']:.2f}" if r["speedup_vs_local"] != "" else "-"
        per_cpu = f"{r['archs_per_cpu_s']:,.0f}" if r["archs_per_cpu_s"] != "" else "-"
        call_peak = f"{r['call_peak_rss_mb']:.0f}" if r["call_peak_rss_mb"] != "" else "-"
        threads = str(r["threads"] or "def")
        print(f"{r['mode']:<8} {r['pool_size']:>9,} {r['n_labelled']:>9,} {r['workers']:>2} {r['nodes']:>2} "
              f"{threads:>3} {r['seconds']:>8.2f} {r['archs_per_s']:>9,.0f} {eff:>5} {spd:>7} {per_cpu:>11} "
              f"{r['driver_rss_mb']:>7.0f} {call_peak:>7} {r['driver_peak_rss_mb']:>7.0f} {r['load_1m']:>5.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench_out"), help="folder for the CSV (default bench_out/)")
    parser.add_argument("--sizes", type=_ints, default=[10_000, 100_000, 1_000_000], help="pool sizes M")
    parser.add_argument("--workers", type=_ints, default=[1, 2], help="CPUs of the local Ray instance")
    parser.add_argument("--nodes", type=_ints, default=[1, 2], help="simulated nodes (1 CPU each) for counts > 1")
    parser.add_argument("--space", default="nasbench101", choices=["nasbench101", "nasbench201", "tts"])
    parser.add_argument("--local-threads", type=lambda t: [int(x) for x in t.split(",")], default=[0, 1],
                        help="PyTorch threads of the local rows (0 = PyTorch's default, one per core)")
    parser.add_argument("--shard-size", type=int, default=None, help="architectures per shard (default: the "
                        "labelers' default)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per row, best kept (pools <= 200k)")
    parser.add_argument("--omp-wait-policy", default="PASSIVE", choices=["PASSIVE", "ACTIVE", "unset"],
                        help="OMP_WAIT_POLICY of the driver and its Ray workers (default PASSIVE: spinning OpenMP "
                             "threads collapse on a shared machine)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per row")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(RESULT_PREFIX + json.dumps(run_row(json.loads(args.child))), flush=True)
        return 0
    if args.shard_size is not None and args.shard_size < 1:
        parser.error(f"--shard-size must be >= 1, got {args.shard_size}")
    if args.repeats < 1 or min(args.local_threads) < 0:
        parser.error("--repeats must be >= 1 and --local-threads >= 0")

    print(f"pseudo-labelling throughput, space {args.space}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
          f"OMP_WAIT_POLICY={args.omp_wait_policy}")
    results = []
    for spec in plan_rows(args):
        results.append(run_child(spec, args.timeout, args.omp_wait_policy))
        r = results[-1]
        print(f"  {r['mode']:<8} M={r['pool_size']:>9,} W={r['workers']} N={r['nodes']} threads={r['threads']}: "
              f"{r['archs_per_s']:,.0f} archs/s ({r['n_labelled']:,} in {r['seconds']:.1f} s), "
              f"driver peak {r['driver_peak_rss_mb']:.0f} MB, load {r['load_1m']:.1f}", flush=True)
    add_ratios(results)
    out = args.out / "pseudo_label_throughput.csv"
    write_csv(out, results)
    print()
    print_table(results)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
