"""SemiNAS neural architecture search as a Ray application."""
from __future__ import annotations

import os

from seminas_ray.settings import LOOPBACK_ENV

# Before anything imports ray: a local Ray instance started from this package listens on 127.0.0.1 only (Ray reads
# this once, at import). Joining an existing cluster is unaffected. See docs/safety.md.
os.environ.setdefault(LOOPBACK_ENV, "0")

from importlib import metadata as _metadata
from typing import TYPE_CHECKING
from typing import Any

FALLBACK_VERSION = "0.1.0"  # pyproject.toml's version, for a checkout run without installing
try:
    __version__ = _metadata.version("seminas_ray")
except _metadata.PackageNotFoundError:
    __version__ = FALLBACK_VERSION

if TYPE_CHECKING:
    from seminas_ray.api import RunResult
    from seminas_ray.api import load_run
    from seminas_ray.api import run
    from seminas_ray.api import search

# The Python API imports Ray and the runner: loaded on first use so `import seminas_ray` stays light
_API = ("search", "run", "load_run", "RunResult")


def __getattr__(name: str) -> Any:
    if name in _API:
        from seminas_ray import api  # lazy on purpose: see _API

        return getattr(api, name)
    raise AttributeError(f"module 'seminas_ray' has no attribute {name!r}")


__all__ = ["RunResult", "__version__", "load_run", "run", "search"]
