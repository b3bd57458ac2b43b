"""Search spaces (framework-free) and their registry."""
from __future__ import annotations

from seminas_ray.spaces.base import InvalidArchitecture
from seminas_ray.spaces.base import SearchSpace

__all__ = ["InvalidArchitecture", "SearchSpace"]
