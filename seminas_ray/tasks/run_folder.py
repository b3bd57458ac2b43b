"""The results folder of a run: refuse to mix two runs, and read back a run's settings for ``--resume``."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml


def prepare_out_dir(out: Path, *, overwrite: bool) -> None:
    """Create ``out``; refuse a folder that already holds files unless ``overwrite`` (then it is replaced)."""
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} already holds files (a previous run?): use --resume {out} to continue "
                                  f"it, --overwrite to replace it, or another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def load_run_settings(out: Path, task: str) -> dict[str, Any]:
    """The ``run`` settings saved in ``out/config.yaml`` by a run of ``task`` (for ``--resume``)."""
    path = out / "config.yaml"
    if not path.is_file() or not (out / "tune").is_dir():
        raise FileNotFoundError(f"--resume {out}: not a run folder (no config.yaml and tune/ inside)")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or data.get("task") != task or "run" not in data:
        raise ValueError(f"--resume {out}: config.yaml is not a {task} run")
    return data["run"]
