"""Search algorithms as ask/tell optimizers (no Ray): SemiNAS and its baselines, with one registry."""
from __future__ import annotations

from seminas_ray.algorithm.base import AskTellOptimizer
from seminas_ray.algorithm.config import PRESETS
from seminas_ray.algorithm.config import SemiNASConfig
from seminas_ray.algorithm.config import build_config
from seminas_ray.algorithm.config import config_for_table
from seminas_ray.algorithm.direct import ask_tell_loop
from seminas_ray.algorithm.direct import replay
from seminas_ray.algorithm.direct import run_direct
from seminas_ray.algorithm.direct import search_space
from seminas_ray.algorithm.pseudo_label import LocalPseudoLabeler
from seminas_ray.algorithm.random_search import RandomSearch
from seminas_ray.algorithm.regularized_evolution import RegularizedEvolution
from seminas_ray.algorithm.registry import METHODS
from seminas_ray.algorithm.registry import MethodSpec
from seminas_ray.algorithm.registry import make_method
from seminas_ray.algorithm.predictor import SemiSupervisedPredictor
from seminas_ray.algorithm.screened import ScreenedSemiNAS
from seminas_ray.algorithm.seminas import RoundResult
from seminas_ray.algorithm.seminas import RoundWork
from seminas_ray.algorithm.seminas import SemiNAS

__all__ = [
    "AskTellOptimizer", "ask_tell_loop", "LocalPseudoLabeler", "METHODS", "MethodSpec", "PRESETS", "RandomSearch",
    "RegularizedEvolution", "RoundResult", "RoundWork", "ScreenedSemiNAS", "SemiNAS", "SemiNASConfig",
    "SemiSupervisedPredictor", "build_config",
    "config_for_table", "make_method", "replay", "run_direct", "search_space",
]
