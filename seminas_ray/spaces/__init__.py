"""Search spaces (framework-free) and their registry."""
from __future__ import annotations

import importlib
from typing import Any

from seminas_ray.spaces.base import InvalidArchitecture
from seminas_ray.spaces.base import SearchSpace

# name -> "module:Class" (imported lazily: building NB101 enumerations or TTS constants costs nothing until used)
SPACES: dict[str, str] = {
    "nasbench101": "seminas_ray.spaces.nasbench101:NB101Space",
    "nasbench201": "seminas_ray.spaces.nasbench201:NB201Space",
    "tts": "seminas_ray.spaces.tts:TTSSpace",
    "mbconv": "seminas_ray.spaces.mbconv:MBConvSpace",
}


def make_space(name: str, **kwargs: Any) -> SearchSpace:
    """Build a registered search space by name."""
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}; choose one of {sorted(SPACES)}")
    module, cls = SPACES[name].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


__all__ = ["InvalidArchitecture", "SPACES", "SearchSpace", "make_space"]
