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


def get_task(name: str) -> "Task":
    """The task registered as ``name``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(sorted(TASKS))}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


__all__ = ["TASKS", "get_task"]
