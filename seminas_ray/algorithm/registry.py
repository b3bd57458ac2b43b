"""The one registry of search methods: name -> how to build its ask/tell optimizer.

The CLI, the Tune searcher, the benchmarks and the optimizer contract tests all build optimizers here, so adding a
method is one module with an ``AskTellOptimizer`` subclass plus one line in ``METHODS`` (the contract tests in
``tests/test_optimizer_contract.py`` then cover it automatically).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from typing import Callable

from seminas_ray.algorithm.base import AskTellOptimizer
from seminas_ray.algorithm.config import SemiNASConfig
from seminas_ray.algorithm.random_search import RandomSearch
from seminas_ray.algorithm.regularized_evolution import RegularizedEvolution
from seminas_ray.algorithm.seminas import SemiNAS
from seminas_ray.spaces.base import SearchSpace

# (space, seed, config, pseudo_labeler, budget) -> optimizer; config is None when the caller gave none
Builder = Callable[[SearchSpace, int, "SemiNASConfig | None", Any, "int | None"], AskTellOptimizer]


@dataclass(frozen=True)
class MethodSpec:
    """How to build one search method, and whether it reads a ``SemiNASConfig``."""

    build: Builder
    summary: str
    uses_config: bool = False  # True: the config's settings (round sizes, controller) shape the search


def _seminas(space: SearchSpace, seed: int, config: SemiNASConfig | None, pseudo_labeler: Any,
             budget: int | None) -> AskTellOptimizer:
    return SemiNAS(space, config, seed=seed, pseudo_labeler=pseudo_labeler, budget=budget)


def _supervised(space: SearchSpace, seed: int, config: SemiNASConfig | None, pseudo_labeler: Any,
                budget: int | None) -> AskTellOptimizer:
    # the paper's ablation: SemiNAS without self-training and without up-sampling the labelled data
    cfg = dataclasses.replace(config or SemiNASConfig(), self_training=False, up_sample=1)
    return SemiNAS(space, cfg, seed=seed, pseudo_labeler=pseudo_labeler, budget=budget)


def _random(space: SearchSpace, seed: int, config: SemiNASConfig | None, pseudo_labeler: Any,
            budget: int | None) -> AskTellOptimizer:
    return RandomSearch(space, seed=seed, budget=budget)


def _evolution(space: SearchSpace, seed: int, config: SemiNASConfig | None, pseudo_labeler: Any,
               budget: int | None) -> AskTellOptimizer:
    return RegularizedEvolution(space, seed=seed, budget=budget)


METHODS: dict[str, MethodSpec] = {
    "seminas": MethodSpec(_seminas, "SemiNAS: NAO controller with self-training on pseudo-labels", True),
    "supervised": MethodSpec(_supervised, "plain NAO: SemiNAS without self-training (the paper's ablation)", True),
    "random": MethodSpec(_random, "uniform random search"),
    "evolution": MethodSpec(_evolution, "regularized evolution (population 100, tournament 10)"),
}


def make_method(name: str, space: SearchSpace, seed: int = 0, config: SemiNASConfig | None = None,
                pseudo_labeler: Any = None, budget: int | None = None) -> AskTellOptimizer:
    """Build the optimizer of method ``name``.

    ``budget``: total queries; ``None`` takes ``config.total_queries`` when a config is given (so one resolved
    config sizes every method of a comparison alike), else the method's default (SemiNAS: the default config's
    total; baselines: unbounded). ``config`` and ``pseudo_labeler`` are ignored by methods that do not use them.
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    if budget is None and config is not None:
        budget = config.total_queries
    return METHODS[name].build(space, int(seed), config, pseudo_labeler, budget)
