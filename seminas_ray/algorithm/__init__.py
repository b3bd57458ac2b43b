"""Search algorithms as ask/tell optimizers (no Ray): SemiNAS and its baselines, with one registry."""
from __future__ import annotations

from typing import Any
from typing import Callable

from seminas_ray.algorithm.base import AskTellOptimizer
from seminas_ray.algorithm.config import PRESETS
from seminas_ray.algorithm.config import SemiNASConfig
from seminas_ray.algorithm.config import build_config
from seminas_ray.algorithm.random_search import RandomSearch
from seminas_ray.algorithm.regularized_evolution import RegularizedEvolution
from seminas_ray.algorithm.pseudo_label import LocalPseudoLabeler
from seminas_ray.algorithm.seminas import RoundResult
from seminas_ray.algorithm.seminas import RoundWork
from seminas_ray.algorithm.seminas import SemiNAS
from seminas_ray.spaces.base import SearchSpace

OPTIMIZERS: dict[str, Callable[..., AskTellOptimizer]] = {
    "seminas": SemiNAS,
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
}


def make_optimizer(name: str, space: SearchSpace, seed: int = 0, **kwargs: Any) -> AskTellOptimizer:
    """Build an optimizer by registry name (``seminas``, ``random``, ``evolution``)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](space, seed=seed, **kwargs)


__all__ = [
    "AskTellOptimizer", "LocalPseudoLabeler", "OPTIMIZERS", "PRESETS", "RandomSearch", "RegularizedEvolution",
    "RoundResult", "RoundWork", "SemiNAS", "SemiNASConfig", "build_config", "make_optimizer",
]
