"""What a weight-sharing task tells the generic supernet actors: the ``SupernetBackend`` protocol.

The Ray layer (``supernet_actor.py``) owns placement, the ``torch.distributed`` group (gloo on CPU, nccl on GPU),
single-path training with the gradient all-reduce, sharded scoring, round state save/restore and progress bars. It
knows nothing about any task: everything task-specific goes through a backend, a small picklable object built on
the driver (it carries its data as numpy arrays, shipped once through the object store) and set up once in every
replica process.

A backend must make every replica compute the same thing from the same inputs: ``build`` is called with the same
seed on every rank, ``num_batches``/``batch`` describe the *global* batches (each rank takes its own shard of global
batch ``i``), and ``score`` must be a pure function of the weights and the architectures (fixed dropout seeds), so
that sharded scoring equals single-replica scoring.
"""
from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any
from typing import Sequence

import torch


@dataclass
class Replica:
    """One replica's trainable state: the supernet, its optimiser and learning-rate schedule, gradient clipping."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any = None            # a torch LR scheduler (stepped once per training step) or None
    clip_norm: float = 0.0           # clip the path's gradient norm (0: no clipping)


class SupernetBackend(ABC):
    """A weight-sharing task's supernet, as the generic actors see it.

    Subclasses set ``name``, ``reward`` (the key of :meth:`score`'s dicts told to the search as its reward) and
    ``mode`` (``"max"`` or ``"min"``: the reward's direction).
    """

    name: str = "supernet"
    reward: str = "score"
    mode: str = "max"

    def setup(self, rank: int, world_size: int, device: str) -> None:
        """Called once in each replica process before anything else (load data, precompute batches).

        Each replica calls it on its own shallow copy of the backend: create per-replica state (caches) here, not in
        ``__init__``, so that several replicas in one process do not share it.
        """

    @abstractmethod
    def build(self, seed: int, device: str) -> Replica:
        """A freshly initialised replica. Called with the same seed on every rank: the weights must agree."""

    @abstractmethod
    def parse_arch(self, key: str) -> Any:
        """The architecture of a canonical key (raise ``ValueError`` for a malformed one)."""

    @abstractmethod
    def num_batches(self) -> int:
        """Global training batches per epoch (every rank sees the same number)."""

    @abstractmethod
    def batch(self, index: int, rank: int, world_size: int, device: str, step: int = 0) -> Any:
        """Rank ``rank``'s shard of global training batch ``index`` on ``device`` (cache it if it is costly).
        ``step`` is the global training step: a backend that augments seeds its randomness with it (never with a
        counter of its own), so a supernet resumed from a checkpoint trains on what an uninterrupted one does."""

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: Any, arch: Any) -> dict[str, torch.Tensor]:
        """Losses of path ``arch`` on ``batch`` in training mode; ``"loss"`` is the one that is minimised."""

    def path_parameters(self, model: torch.nn.Module, arch: Any) -> list[torch.nn.Parameter]:
        """The parameters path ``arch`` uses (the all-reduce covers exactly these, in this order).

        The default is every parameter; a backend with many choices per layer should return only the path's.
        """
        return list(model.parameters())

    @abstractmethod
    def score(self, model: torch.nn.Module, archs: Sequence[Any], device: str) -> list[dict[str, float]]:
        """Named metrics of each architecture on the shared weights, in order (``self.reward`` among them)."""

    def resume_scheduler(self, replica: Replica, step: int) -> None:
        """Rebuild the LR schedule after a restore at global ``step`` (default: leave it as built)."""

    def describe(self) -> dict[str, Any]:
        """A few facts for logs and the results (data sizes, model size)."""
        return {"name": self.name}


__all__ = ["Replica", "SupernetBackend"]
