"""Random search: uniform samples from the space, never the same key twice."""
from __future__ import annotations

from typing import Any

import numpy as np

from seminas_ray.algorithm.base import AskTellOptimizer
from seminas_ray.spaces.base import Arch
from seminas_ray.spaces.base import SearchSpace


class RandomSearch(AskTellOptimizer[Arch]):
    """The NAS baseline every method must beat."""

    name = "random"

    def __init__(self, space: SearchSpace[Arch], seed: int = 0, budget: int | None = None,
                 max_tries: int = 1000) -> None:
        super().__init__(space, seed, budget)
        self._rng = np.random.default_rng(seed)
        self._max_tries = max_tries

    def ask(self, n: int = 1) -> list[Arch]:
        n = self._room(n)
        out: list[Arch] = []
        tries = 0
        while len(out) < n and tries < self._max_tries:
            # one draw at a time: ask(n) asks exactly what n calls of ask(1) would, so batching changes nothing
            arch = self.space.sample(self._rng, 1)[0]
            if self._register(arch):
                out.append(arch)
                tries = 0
            else:
                tries += 1
        return out

    def n_ready(self) -> int:
        """Every draw is independent of the results."""
        return self._room(1_000_000)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["rng"] = self._rng.bit_generator.state
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._rng.bit_generator.state = state["rng"]
