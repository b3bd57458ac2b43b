"""Run a SemiNAS search: ``seminas-ray --task nasbench|tts|imagenet [options]`` (the same options as
``python experiments/run.py``, the documented command, which calls :func:`main`).

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

from seminas_ray.distributed.runner import CONTROLLER_DEVICES  # noqa: E402
from seminas_ray.distributed.runner import RunSettings  # noqa: E402
from seminas_ray.distributed.runner import resolve_settings  # noqa: E402
from seminas_ray.distributed.runner import run_search  # noqa: E402
from seminas_ray.tasks import TASKS  # noqa: E402
from seminas_ray.tasks import get_task  # noqa: E402

COMMAND = "seminas-ray"  # how the resume hint names this command


def default_runs_dir() -> Path:
    """Where a run without ``--out`` goes: ``runs/`` in the current directory."""
    return Path.cwd() / "runs"


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
                        help="train the controller for exactly the paper's epochs (slow on CPU; for GPUs, with "
                             "--controller-device cuda or auto)")
    parser.add_argument("--controller-device", choices=CONTROLLER_DEVICES, default="cpu",
                        help="where the controller round trains: cpu (default), cuda (the round task asks Ray for a "
                             "GPU), or auto (cuda when the cluster has a GPU)")
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


def parse_settings(argv: list[str], runs_dir: Path | None = None) -> RunSettings:
    """Command line -> frozen ``RunSettings`` (the task's options in ``settings.options``); a run without ``--out``
    goes to ``runs_dir`` (default :func:`default_runs_dir`)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    known, _ = pre.parse_known_args(argv)
    if known.task is not None and known.task not in TASKS:
        raise ValueError(f"unknown task {known.task!r}; choose one of {', '.join(sorted(TASKS))}")
    parser, option_names = build_parser(known.task)
    args = parser.parse_args(argv)
    task = get_task(args.task)
    runs = default_runs_dir() if runs_dir is None else Path(runs_dir)
    out = args.resume or args.out or runs / f"{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    return RunSettings(task=args.task, preset=args.preset or task.default_preset, seed=args.seed,
                       config=args.config, overrides=tuple(args.set), budget=args.budget,
                       exact_paper_schedule=args.exact_paper_schedule, concurrency=args.concurrency,
                       trial_cpus=args.trial_cpus,
                       options={k: getattr(args, k) for k in option_names},
                       out=out, resume=args.resume is not None, overwrite=args.overwrite, address=args.address,
                       num_cpus=args.num_cpus, dashboard=args.dashboard,
                       controller_device=args.controller_device)


def check_session_options(settings: RunSettings) -> RunSettings:
    """Options that would otherwise fail late (Ray waiting minutes for CPUs that cannot exist): refused at once."""
    if settings.num_cpus is not None and settings.num_cpus < 1:
        raise ValueError(f"--num-cpus must be at least 1, got {settings.num_cpus}")
    if settings.concurrency < 1:
        raise ValueError(f"--concurrency must be at least 1, got {settings.concurrency}")
    if not settings.trial_cpus > 0:
        raise ValueError(f"--trial-cpus must be above 0, got {settings.trial_cpus}")
    if settings.budget is not None and settings.budget < 1:
        raise ValueError(f"--budget must be at least 1, got {settings.budget}")
    return settings


def main(argv: list[str] | None = None, *, runs_dir: Path | None = None, command: str = COMMAND) -> int:
    """The command line's entry point; ``command`` is how the resume hint names it. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = None
    try:
        settings = resolve_settings(check_session_options(parse_settings(argv, runs_dir)))
        job = get_task(settings.task).prepare(settings)
        run_search(job, settings)
    except KeyboardInterrupt:
        if settings is None or settings.out is None or not settings.out.exists():
            print("\ninterrupted before the first evaluation: nothing was kept", file=sys.stderr)
        else:
            print(f"\ninterrupted: resume with  {command} --task {settings.task} --resume "
                  f"{settings.out}", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
