"""The NAO encoder-predictor-decoder controller (PyTorch), shared by every search space.

``NAOController`` trains on (token sequence, score) pairs, predicts scores, reconstructs sequences and generates new
ones by gradient steps on the encoder outputs. ``predict_with_weights`` is the stateless form used by remote
pseudo-labelling. Nothing here imports Ray.
"""
from __future__ import annotations

from seminas_ray.controller.config import ControllerConfig
from seminas_ray.controller.trainer import EarlyStopping
from seminas_ray.controller.trainer import FitResult
from seminas_ray.controller.trainer import GenerateResult
from seminas_ray.controller.trainer import NAOController
from seminas_ray.controller.trainer import TokenSpec
from seminas_ray.controller.trainer import predict_with_weights
from seminas_ray.controller.trainer import token_spec_of

__all__ = [
    "ControllerConfig",
    "EarlyStopping",
    "FitResult",
    "GenerateResult",
    "NAOController",
    "TokenSpec",
    "predict_with_weights",
    "token_spec_of",
]
