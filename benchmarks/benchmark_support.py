"""What the evidence benchmarks (``search_efficiency.py``, ``predictor_quality.py``) share.

- the table options, spelled exactly as ``experiments/run.py --task nasbench`` spells them;
- a process pool whose workers each use one PyTorch thread (two OpenMP threads per process on two shared cores run
  ~10x slower, see ``docs/results.md``) and a progress bar over finished jobs;
- the table, loaded once per process;
- mean and standard error over seeds, and Markdown tables.

The scripts import this module as ``benchmark_support`` (``python benchmarks/x.py`` puts ``benchmarks/`` first on
``sys.path``).
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import time
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import wait
from functools import lru_cache
from typing import Any
from typing import Callable
from typing import Iterable
from typing import Iterator
from typing import Sequence

import multiprocessing as mp


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    """``--benchmark``, ``--data``, ``--dataset``: the same options and defaults as ``experiments/run.py``."""
    parser.add_argument("--benchmark", choices=("nb101", "nb201"), default=None,
                        help="which benchmark (default: nb101, or what --data is)")
    parser.add_argument("--data", default=None, help="table file: NB101 tfrecord / converted npz / subset npz / "
                        "API-sample json, or an NB201 csv (default: the 20k NB101 slice in $SEMINAS_DATA_DIR)")
    parser.add_argument("--dataset", default=None, help="NB201 dataset: cifar10 | cifar100 | imagenet")


@lru_cache(maxsize=4)
def load_table_cached(data: str | None, benchmark: str | None, dataset: str | None) -> Any:
    """The table of the ``--benchmark/--data/--dataset`` options, loaded once per process (each worker loads its
    own; the parent's is reused with one worker)."""
    from seminas_ray.tasks.nasbench import load_benchmark

    return load_benchmark(data, benchmark, dataset)


def parse_int_list(text: str) -> list[int]:
    """``"50,100,300"`` -> ``[50, 100, 300]`` with a clear error."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def _init_worker(threads: int) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(threads)


def run_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int, *, desc: str = "jobs",
             threads_per_worker: int = 1) -> Iterator[tuple[Any, Any]]:
    """Yield ``(job, fn(job))`` as jobs finish; ``workers`` processes (``workers <= 1``: in this process).

    ``fn`` must be a module-level function (it is pickled to spawned workers). Errors propagate with the job named.
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="job")
    try:
        if workers <= 1:
            _init_worker(threads_per_worker)
            for job in jobs:
                yield job, fn(job)
                bar.update(1)
            return
        ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no forked torch/Ray state
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(threads_per_worker,)) as pool:
            pending = {pool.submit(fn, job): job for job in jobs}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = pending.pop(fut)
                    try:
                        result = fut.result()
                    except Exception as exc:  # name the job: a traceback from a worker alone does not
                        for other in pending:
                            other.cancel()
                        raise RuntimeError(f"job {job!r} failed: {exc}") from exc
                    bar.update(1)
                    yield job, result
    finally:
        bar.close()


def mean_se(values: Iterable[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, standard error of the mean (sample std / sqrt(n)) and n over the non-missing values."""
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None, 0
    n = len(vals)
    mean = sum(vals) / n
    if n < 2:
        return mean, None, n
    var = sum((v - mean) ** 2 for v in vals) / (n - 1)
    return mean, math.sqrt(var / n), n


def fmt_mean_se(mean: float | None, se: float | None, digits: int = 2, scale: float = 1.0) -> str:
    """``"93.81 ± 0.05"`` (``–`` when missing)."""
    if mean is None:
        return "–"
    if se is None:
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {se * scale:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line() -> str:
    """One line saying where and when a benchmark ran (for the report)."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return (f"{platform.node()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores · "
            f"Python {platform.python_version()} · load average {load:.1f} · "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
