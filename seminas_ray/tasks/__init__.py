"""Tasks (``--task NAME``): one registry line per task, each a :class:`~seminas_ray.tasks.base.Task`.

This package's ``__init__`` stays import-light: Tune trial processes import the tasks' trainables from modules
inside it, and must not pay for torch or Tune's driver side (hence no import of ``base`` here at import time).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seminas_ray.tasks.base import Task

# name -> "module:Class"; imported on demand so `--task nasbench` never imports the TTS stack (torchaudio, eSpeak)
TASKS: dict[str, str] = {
    "nasbench": "seminas_ray.tasks.nasbench:NasbenchTask",
    "tts": "seminas_ray.tasks.tts.task:TTSTask",
    "imagenet": "seminas_ray.tasks.imagenet.task:ImageNetTask",
}


# name -> (the pip extra that installs what the task needs, the top-level modules of that extra)
TASK_EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tts": ("tts", ("torchaudio", "espeakng_loader", "pocketsphinx")),
    "imagenet": ("imagenet", ("PIL",)),
}


class MissingExtraError(ImportError, ValueError):
    """A task's optional dependencies are not installed (an ``ImportError``; a ``ValueError`` for the CLI, which
    prints it as one line)."""


def get_task(name: str) -> "Task":
    """The task registered as ``name``; :class:`MissingExtraError` naming the pip extra when its dependencies are
    not installed."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(sorted(TASKS))}")
    module, cls = TASKS[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)()
    except ModuleNotFoundError as exc:
        extra, modules = TASK_EXTRAS.get(name, (None, ()))
        missing = (exc.name or "").split(".")[0]
        if extra is None or missing not in modules:
            raise
        raise MissingExtraError(f"the {name} task needs `pip install seminas_ray[{extra}]` ({missing} is not "
                                f"installed)", name=missing) from exc


__all__ = ["MissingExtraError", "TASKS", "TASK_EXTRAS", "get_task"]
