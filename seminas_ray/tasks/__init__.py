"""Tasks (``--task NAME``): each module builds its space, evaluator, data and results; one registry maps names."""
from __future__ import annotations

import importlib
from types import ModuleType

# name -> module path; modules are imported lazily so `--task nasbench` never imports the TTS stack
TASKS: dict[str, str] = {
    "nasbench": "seminas_ray.tasks.nasbench",
    "tts": "seminas_ray.tasks.tts.task",
}


def get_task(name: str) -> ModuleType:
    """The task module for ``name`` (it provides ``add_arguments(parser)`` and ``run(args) -> Path``)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return importlib.import_module(TASKS[name])
