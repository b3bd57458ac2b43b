#!/usr/bin/env python
"""Run a SemiNAS search: ``python experiments/run.py --task nasbench|tts [options]``.

Common options are defined here; each task adds its own (``--task nasbench --help`` lists them). The options are
parsed once into frozen settings (``RunSettings``); ``--resume DIR`` reads the run's saved settings instead. Locally
this starts a Ray instance; on a cluster pass ``--address auto``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# OpenMP threads that spin-wait collapse (~10x slower) when cores are shared with Ray workers; passive waiting must
# be set before torch is imported, and the local Ray instance's workers inherit it from this process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from seminas_ray.distributed.runner import RunSettings  # noqa: E402
from seminas_ray.distributed.runner import resolve_settings  # noqa: E402
from seminas_ray.distributed.runner import run_search  # noqa: E402
from seminas_ray.tasks import TASKS  # noqa: E402
from seminas_ray.tasks import get_task  # noqa: E402


def build_parser(task: str | None) -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser for ``task`` and the names of the task's own options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help=f"one of {', '.join(sorted(TASKS))}")
    parser.add_argument("--preset", default=None, help="the task's preset (see --task NAME --help)")
    parser.add_argument("--config", default=None, help="YAML file of SemiNAS settings (overrides the preset)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set n_unlabelled=5000 --set controller.hidden_size=32")
    parser.add_argument("--budget", type=int, default=None, help="total queries (default: the preset's)")
    parser.add_argument("--exact-paper-schedule", action="store_true",
                        help="train the controller for exactly the paper's epochs (slow on CPU; for GPUs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="results folder (default runs/<task>-<time>)")
    parser.add_argument("--resume", type=Path, default=None,
                        help="continue the interrupted run in this folder (only give folders you created)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing results folder")
    parser.add_argument("--address", default=None, help="Ray cluster address ('auto' on a cluster)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray instance")
    parser.add_argument("--dashboard", action="store_true", help="start the Ray dashboard (local instance)")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent trials")
    parser.add_argument("--trial-cpus", type=float, default=0.25,
                        help="CPUs per trial (capped to what is left beside the controller's reserved CPU)")
    options: list[str] = []
    if task in TASKS:
        spec = get_task(task)
        group = parser.add_argument_group(f"{task}: {spec.description} (presets: {', '.join(spec.presets)}; "
                                          f"default {spec.default_preset})")
        spec.add_arguments(group)
        probe = argparse.ArgumentParser(add_help=False)  # the same options alone, to learn their names
        spec.add_arguments(probe.add_argument_group())
        options = list(vars(probe.parse_args([])))
    return parser, options


def parse_settings(argv: list[str]) -> RunSettings:
    """Command line -> frozen ``RunSettings`` (the task's options in ``settings.options``)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    known, _ = pre.parse_known_args(argv)
    if known.task is not None and known.task not in TASKS:
        raise ValueError(f"unknown task {known.task!r}; choose one of {', '.join(sorted(TASKS))}")
    parser, option_names = build_parser(known.task)
    args = parser.parse_args(argv)
    task = get_task(args.task)
    out = args.resume or args.out or REPO / "runs" / f"{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    return RunSettings(task=args.task, preset=args.preset or task.default_preset, seed=args.seed,
                       config=args.config, overrides=tuple(args.set), budget=args.budget,
                       exact_paper_schedule=args.exact_paper_schedule, concurrency=args.concurrency,
                       trial_cpus=args.trial_cpus, options={k: getattr(args, k) for k in option_names},
                       out=out, resume=args.resume is not None, overwrite=args.overwrite, address=args.address,
                       num_cpus=args.num_cpus, dashboard=args.dashboard)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = None
    try:
        settings = resolve_settings(parse_settings(argv))
        if settings.num_cpus is not None and settings.num_cpus < 1:
            raise ValueError(f"--num-cpus must be at least 1, got {settings.num_cpus}")
        job = get_task(settings.task).prepare(settings)
        run_search(job, settings)
    except KeyboardInterrupt:
        where = settings.out if settings is not None else "<the run folder>"
        task = settings.task if settings is not None else "<task>"
        print(f"\ninterrupted: resume with  python experiments/run.py --task {task} --resume {where}",
              file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
