"""The typed ``Task`` interface: what ``--task NAME`` plugs into the CLI and the one search runner.

A task declares its presets and command-line options, and turns frozen :class:`RunSettings` into a prepared
:class:`SearchJob` (space, optimizer, evaluator, report). ``prepare`` checks every input before the runner touches
the results folder, so a bad option or a broken data file leaves nothing behind.
"""
from __future__ import annotations

import argparse
from abc import ABC
from abc import abstractmethod
from typing import ClassVar

from seminas_ray.distributed.runner import RunSettings
from seminas_ray.distributed.runner import SearchJob


class Task(ABC):
    """One experiment of the paper (``nasbench``, ``tts``, ...)."""

    name: ClassVar[str]
    presets: ClassVar[tuple[str, ...]]
    default_preset: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Add the task's own options (their values reach :meth:`prepare` as ``settings.options``)."""

    @abstractmethod
    def prepare(self, settings: RunSettings) -> SearchJob:
        """Validate everything (data, presets, overrides) and build the job; writes nothing."""

    def check_preset(self, preset: str) -> None:
        if preset not in self.presets:
            raise ValueError(f"unknown preset {preset!r} for --task {self.name}; choose one of "
                             f"{', '.join(self.presets)}")


__all__ = ["Task"]
