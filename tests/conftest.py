"""Shared pytest fixtures: where the real benchmark data is, and a real local Ray cluster."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from seminas_ray.benchmarks.loading import load_table

REPO = Path(__file__).resolve().parents[1]

# OpenMP threads that spin-wait collapse (10x slower) when the 2 cores are shared with Ray workers; passive waiting
# must be set before torch is imported, and Ray workers inherit it from this process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _resolve_data_dir() -> Path | None:
    # SEMINAS_DATA_DIR wins; otherwise the shared folder that sits beside the checkout (dev machines and CI).
    env = os.environ.get("SEMINAS_DATA_DIR")
    candidates = [Path(env)] if env else [REPO.parent / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    return None


DATA_DIR = _resolve_data_dir()
if DATA_DIR is not None:
    # Library code reads the setting, never a hard-coded path.
    os.environ["SEMINAS_DATA_DIR"] = str(DATA_DIR)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared benchmark data folder; skips the test with a clear message when it is absent."""
    if DATA_DIR is None:
        pytest.skip("benchmark data not found: set SEMINAS_DATA_DIR to the shared data folder (e.g. ../shared/data)")
    return DATA_DIR


@pytest.fixture(scope="session")
def nb101_subset_path(data_dir: Path) -> Path:
    return data_dir / "nb101" / "nb101_subset20k.npz"


@pytest.fixture(scope="session")
def nb201_csv_path(data_dir: Path) -> Path:
    return data_dir / "nb201" / "nb201_all15625_12epoch.csv"


@pytest.fixture(scope="session")
def nb201(nb201_csv_path: Path):
    """The NB201 table on CIFAR-10 (a module may override ``nb201`` with another dataset)."""
    return load_table(nb201_csv_path, dataset="cifar10")


@pytest.fixture(scope="session")
def nb101(nb101_subset_path: Path):
    """The 20k NB101 slice as a table."""
    return load_table(nb101_subset_path)


@pytest.fixture(scope="module")
def ray_local():
    """A real local Ray cluster with 2 CPUs (shut down after the module)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()
