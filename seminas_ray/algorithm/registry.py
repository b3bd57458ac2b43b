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
from seminas_ray.algorithm.screened import ScreenedSemiNAS
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
    """SemiNAS as the config's ``generator`` says: the paper's NAO generation (``nao``: the paper presets and the
    default config) or the predictor screening evolution / random search (the ``recommended`` preset)."""
    config = config or SemiNASConfig()
    if config.generator == "nao":
        return SemiNAS(space, config, seed=seed, pseudo_labeler=pseudo_labeler, budget=budget)
    return ScreenedSemiNAS(space, config, seed=seed, pseudo_labeler=pseudo_labeler, budget=budget)


def _supervised(space: SearchSpace, seed: int, config: SemiNASConfig | None, pseudo_labeler: Any,
                budget: int | None) -> AskTellOptimizer:
    # the paper's ablation: SemiNAS without self-training and without up-sampling the labelled data
    cfg = dataclasses.replace(config or SemiNASConfig(), self_training=False, up_sample=1)
    return _seminas(space, seed, cfg, pseudo_labeler, budget)


def _screened(generator: str, supervised: bool = False) -> Builder:
    """The builder of SemiNAS with the predictor screening only ``generator`` (``evolution``: SemiNAS (RE), every
    proposal a screened mutation, ``screen.pool_share`` set to 0; ``random``: every proposal from the screened pool),
    whatever generator the config names; ``supervised``: its ablation (no pseudo-labels, no up-sampling)."""

    def build(space: SearchSpace, seed: int, config: SemiNASConfig | None, pseudo_labeler: Any,
              budget: int | None) -> AskTellOptimizer:
        cfg = config or SemiNASConfig()
        screen = dataclasses.replace(cfg.screen, pool_share=0.0) if generator == "evolution" else cfg.screen
        cfg = dataclasses.replace(cfg, generator=generator, screen=screen)
        if supervised:
            cfg = dataclasses.replace(cfg, self_training=False, up_sample=1)
        return ScreenedSemiNAS(space, cfg, seed=seed, pseudo_labeler=pseudo_labeler, budget=budget)

    return build


def _random(space: SearchSpace, seed: int, config: SemiNASConfig | None, pseudo_labeler: Any,
            budget: int | None) -> AskTellOptimizer:
    return RandomSearch(space, seed=seed, budget=budget)


def _evolution(space: SearchSpace, seed: int, config: SemiNASConfig | None, pseudo_labeler: Any,
               budget: int | None) -> AskTellOptimizer:
    return RegularizedEvolution(space, seed=seed, budget=budget)


METHODS: dict[str, MethodSpec] = {
    "seminas": MethodSpec(_seminas, "SemiNAS as the preset says: the paper's NAO generation (paper presets) or the "
                          "predictor screening evolution and a random pool (--preset recommended)", True),
    "supervised": MethodSpec(_supervised, "SemiNAS without self-training on pseudo-labels (the paper's ablation)",
                             True),
    "seminas-re": MethodSpec(_screened("evolution"), "SemiNAS (RE): regularized evolution's children screened by "
                             "the semi-supervised predictor (no pool share)", True),
    "seminas-random": MethodSpec(_screened("random"), "random search screened by the semi-supervised predictor",
                                 True),
    "supervised-re": MethodSpec(_screened("evolution", supervised=True), "SemiNAS (RE) with the supervised "
                                "predictor (ablation)", True),
    "supervised-random": MethodSpec(_screened("random", supervised=True), "random search screened by the "
                                    "supervised predictor (ablation)", True),
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
