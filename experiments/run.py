#!/usr/bin/env python
"""Run a SemiNAS search: ``python experiments/run.py --task nasbench|tts [options]``.

Common options are defined here; each task adds its own (``--task nasbench --help`` lists them).
Locally this starts a Ray instance; on a cluster pass ``--address auto``.
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

from seminas_ray.algorithm.config import PRESETS  # noqa: E402
from seminas_ray.tasks import TASKS  # noqa: E402
from seminas_ray.tasks import get_task  # noqa: E402


def build_parser(task: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help=f"one of {', '.join(sorted(TASKS))}")
    parser.add_argument("--preset", default=None,
                        help=f"preset; nasbench: SemiNAS presets {', '.join(sorted(PRESETS))} (default paper-300); "
                             f"tts: smoke, default, paper (default default)")
    parser.add_argument("--config", default=None, help="YAML file of SemiNAS settings (overrides the preset)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set n_unlabelled=5000 --set controller.hidden_size=32")
    parser.add_argument("--budget", type=int, default=None, help="total queries (default: the preset's)")
    parser.add_argument("--exact-paper-schedule", action="store_true",
                        help="train the controller for exactly the paper's epochs (slow on CPU; for GPUs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="results folder (default runs/<task>-<time>)")
    parser.add_argument("--resume", type=Path, default=None, help="continue the interrupted run in this folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing results folder")
    parser.add_argument("--address", default=None, help="Ray cluster address ('auto' on a cluster)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray instance")
    parser.add_argument("--dashboard", action="store_true", help="start the Ray dashboard (local instance)")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent trials")
    parser.add_argument("--trial-cpus", type=float, default=0.25,
                        help="CPUs per trial (capped to what is left beside the controller's reserved CPU)")
    if task in TASKS:
        get_task(task).add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    known, _ = pre.parse_known_args(argv)
    if known.task is not None and known.task not in TASKS:
        print(f"error: unknown task {known.task!r}; choose one of {', '.join(sorted(TASKS))}", file=sys.stderr)
        return 2
    args = build_parser(known.task).parse_args(argv)
    if args.preset is None:  # each task has its own presets and default
        args.preset = getattr(get_task(args.task), "DEFAULT_PRESET_NAME", "paper-300")
    if args.resume is None and args.out is None:
        args.out = REPO / "runs" / f"{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        get_task(args.task).run(args)
    except KeyboardInterrupt:
        where = args.resume or args.out
        print(f"\ninterrupted: resume with  python experiments/run.py --task {args.task} --resume {where}",
              file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
