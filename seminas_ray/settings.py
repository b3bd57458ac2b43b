"""Where the project finds benchmark data and keeps its caches (environment variables, never hard-coded paths).

- ``SEMINAS_DATA_DIR``: folder with the shared benchmark data (``nb101/``, ``nb201/``). Unset means "not available".
- ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``: set to ``0`` unless already set, so a local Ray instance binds to 127.0.0.1.
- ``SEMINAS_CACHE_DIR``: cache for derived files (the NB101 enumeration, converted tfrecords, synthesized corpora);
  defaults to ``$XDG_CACHE_HOME/seminas_ray`` or ``~/.cache/seminas_ray``.
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "SEMINAS_DATA_DIR"
CACHE_ENV = "SEMINAS_CACHE_DIR"
#: Ray's switch for the address a local instance binds to: "0" (set by ``seminas_ray/__init__.py`` before ray is
#: imported) makes it 127.0.0.1, so GCS, raylet, dashboard and agents listen on loopback only (docs/safety.md).
#: Read once when ray is imported; drivers joining a cluster take the node's address from its raylet instead.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def data_dir() -> Path | None:
    """The shared data folder from ``SEMINAS_DATA_DIR``, or ``None`` when unset or missing."""
    value = os.environ.get(DATA_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_dir() else None


def data_file(relative: str) -> Path:
    """A file inside the shared data folder; raises ``FileNotFoundError`` with a hint when it is not there."""
    root = data_dir()
    if root is None:
        raise FileNotFoundError(
            f"{DATA_ENV} is not set (or is not a folder): point it at the benchmark data, "
            f"e.g. export {DATA_ENV}=../shared/data"
        )
    path = root / relative
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (looked in {DATA_ENV}={root})")
    return path


def cache_dir(*parts: str) -> Path:
    """A folder under the user cache (created on demand)."""
    base = os.environ.get(CACHE_ENV)
    if base:
        root = Path(base).expanduser()
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "seminas_ray"
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
