"""Progress bars that reach the driver's terminal from wherever the work runs (driver, Ray task or actor)."""
from __future__ import annotations

from typing import Any

import ray
from ray.experimental.tqdm_ray import tqdm as ray_tqdm
from tqdm.auto import tqdm


def in_ray_worker() -> bool:
    """True inside a Ray task or actor (where a plain tqdm would only write to the worker's log)."""
    try:
        return ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE
    except Exception:  # an odd runtime context: treat it as the driver
        return False


def progress_bar(total: int, desc: str, unit: str = "step", enabled: bool = True) -> Any:
    """A tqdm bar (Ray's ``tqdm_ray`` inside a Ray worker, so it shows in the driver's terminal), or None.

    Callers guard with ``if bar is not None``: progress display is a convenience and never fails the work.
    """
    if not enabled:
        return None
    try:
        bar = ray_tqdm if in_ray_worker() else tqdm
        return bar(total=total, desc=desc, unit=unit)
    except Exception:  # progress display is a convenience
        return None


__all__ = ["in_ray_worker", "progress_bar"]
