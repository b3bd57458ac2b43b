#!/usr/bin/env python
"""Run a SemiNAS search: ``python experiments/run.py --task nasbench|tts [options]``.

Common options are defined here; each task adds its own (``--task nasbench --help`` lists them). The options are
parsed once into frozen settings (``RunSettings``); ``--resume DIR`` reads the run's saved settings instead. Locally
this starts a Ray instance; on a cluster pass ``--address auto``.

The command line lives in ``seminas_ray/cli.py`` (also installed as the ``seminas-ray`` console script); this file
stays the documented command and runs from a checkout without installing. A run without ``--out`` goes to the
checkout's ``runs/``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# OpenMP threads that spin-wait collapse (~10x slower) when cores are shared with Ray workers; passive waiting must
# be set before torch is imported, and the local Ray instance's workers inherit it from this process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from seminas_ray import cli  # noqa: E402
from seminas_ray.cli import build_parser  # noqa: E402,F401  (re-exported: tests and scripts use them from here)
from seminas_ray.cli import check_session_options  # noqa: E402,F401
from seminas_ray.distributed.runner import RunSettings  # noqa: E402

RUNS_DIR = REPO / "runs"
COMMAND = "python experiments/run.py"


def parse_settings(argv: list[str]) -> RunSettings:
    """Command line -> frozen ``RunSettings`` (the task's options in ``settings.options``)."""
    return cli.parse_settings(argv, runs_dir=RUNS_DIR)


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, runs_dir=RUNS_DIR, command=COMMAND)


if __name__ == "__main__":
    sys.exit(main())
