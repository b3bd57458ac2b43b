"""Regularized (aging) evolution, Real et al. 2019, with the NAS-Bench-101 paper's settings.

Population 100, tournament sample 10: the first ``population_size`` architectures are random; afterwards each
proposal mutates the best of ``sample_size`` random members of the population, and the oldest member dies.
Proposals are made asynchronously: while the population is still filling, ``ask`` keeps sampling at random.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from seminas_ray.algorithm.base import AskTellOptimizer
from seminas_ray.spaces.base import Arch
from seminas_ray.spaces.base import SearchSpace


class RegularizedEvolution(AskTellOptimizer[Arch]):
    name = "evolution"

    def __init__(
        self,
        space: SearchSpace[Arch],
        seed: int = 0,
        budget: int | None = None,
        population_size: int = 100,
        sample_size: int = 10,
        max_tries: int = 200,
    ) -> None:
        super().__init__(space, seed, budget)
        if not 1 <= sample_size <= population_size:
            raise ValueError(f"need 1 <= sample_size ({sample_size}) <= population_size ({population_size})")
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self._rng = np.random.default_rng(seed)
        self._population: deque[tuple[str, float]] = deque()
        self._max_tries = max_tries

    def ask(self, n: int = 1) -> list[Arch]:
        out: list[Arch] = []
        for _ in range(self._room(n)):
            arch = self._propose()
            if arch is None:
                break
            out.append(arch)
        return out

    def n_ready(self) -> int:
        """The random members that fill the first population; after that each child depends on the results."""
        return self._room(max(0, self.population_size - self.n_asked))

    def _propose(self) -> Arch | None:
        for _ in range(self._max_tries):
            if self.n_asked < self.population_size or len(self._population) == 0:
                candidate = self.space.sample(self._rng, 1)[0]
            else:
                idx = self._rng.choice(len(self._population), size=min(self.sample_size, len(self._population)),
                                       replace=False)
                parent_key = max((self._population[i] for i in idx), key=lambda kv: kv[1])[0]
                candidate = self.space.mutate(self.arch_for_key(parent_key), self._rng)
            if self._register(candidate):
                return candidate
        return None

    def _on_tell(self, key: str, arch: Arch, score: float | None) -> None:
        if score is None:
            return  # a failed evaluation never joins the population
        self._population.append((key, score))
        while len(self._population) > self.population_size:
            self._population.popleft()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(rng=self._rng.bit_generator.state, population=[list(p) for p in self._population],
                     population_size=self.population_size, sample_size=self.sample_size)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._rng.bit_generator.state = state["rng"]
        self._population = deque((k, float(v)) for k, v in state["population"])
