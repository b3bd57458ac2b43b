"""Packaging (issue #16): the core installs and runs the nasbench task without the optional extras, a task whose
extra is missing says which one to install in one line, the console script and the Python API are wired, and the
release files exist."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from ray.tune import ResultGrid
from packaging.requirements import Requirement

import seminas_ray

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
EXTRA_MODULES = ("torchaudio", "espeakng_loader", "pocketsphinx", "optuna", "PIL")

# a meta-path finder that refuses the extras' modules, as if they were not installed
BLOCK = f"""
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {EXTRA_MODULES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Refuse())
"""


def python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    return subprocess.run([sys.executable, "-c", BLOCK + code, *args], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env=env)


def names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name.lower() for r in requirements}


def test_core_dependencies_leave_the_extras_out():
    project = PYPROJECT["project"]
    core, extras = names(project["dependencies"]), project["optional-dependencies"]
    assert {"torch", "ray", "numpy", "pandas", "pyyaml", "tqdm", "matplotlib", "scipy"} <= core
    assert not core & {"torchaudio", "espeakng-loader", "pocketsphinx", "optuna", "pillow", "pyarrow"}
    assert names(extras["tts"]) >= {"torchaudio", "espeakng-loader", "pocketsphinx"}
    pins = {Requirement(r).name: str(Requirement(r).specifier) for r in project["dependencies"] + extras["tts"]}
    assert pins["torch"] == pins["torchaudio"] == "==2.11.0"  # a matching pair
    assert names(extras["imagenet"]) == {"pillow"} and names(extras["bench"]) == {"optuna"}
    assert "import-linter==2.17" in extras["dev"]
    assert Requirement(extras["all"][0]).extras == {"tts", "imagenet", "bench"}
    assert project["scripts"]["seminas-ray"] == "seminas_ray.cli:main"
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["seminas_ray"]


def test_release_files():
    assert (REPO / "seminas_ray" / "py.typed").is_file()
    assert "Apache License" in (REPO / "LICENSE").read_text() and PYPROJECT["project"]["license"] == "Apache-2.0"
    assert PYPROJECT["project"]["version"] in (REPO / "CHANGELOG.md").read_text()
    assert seminas_ray.__version__ == PYPROJECT["project"]["version"]


def test_import_seminas_ray_stays_light():
    proc = python("import seminas_ray, sys; print(seminas_ray.__version__, 'ray' in sys.modules, "
                  "'torch' in sys.modules, callable(seminas_ray.search), callable(seminas_ray.load_run))")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[1:] == ["False", "False", "True", "True"]


def test_nasbench_runs_without_the_extras_and_tts_names_its_extra():
    proc = python(
        "from seminas_ray.tasks import get_task, MissingExtraError\n"
        "import seminas_ray.cli, seminas_ray.api, seminas_ray.distributed.searcher\n"
        "task = get_task('nasbench'); print('nasbench ok', task.default_preset)\n"
        "try:\n    get_task('tts')\nexcept MissingExtraError as exc:\n    print('tts:', exc)\n"
        "import sys; print('loaded:', sorted(m for m in " + repr(EXTRA_MODULES) + " if m in sys.modules))\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "nasbench ok" in proc.stdout
    assert "tts: the tts task needs `pip install seminas_ray[tts]`" in proc.stdout
    assert "loaded: []" in proc.stdout
    # the documented command prints it as one line
    cli = python("import runpy, sys; sys.argv = ['experiments/run.py'] + sys.argv[1:]; "
                 "runpy.run_path('experiments/run.py', run_name='__main__')", "--task", "tts", "--out", "/nonexistent/x")
    assert cli.returncode == 2, cli.stderr[-3000:]
    assert cli.stderr.strip() == ("error: the tts task needs `pip install seminas_ray[tts]` "
                                  "(torchaudio is not installed)")


def test_console_script_has_the_run_options():
    proc = subprocess.run([sys.executable, "-m", "seminas_ray.cli", "--task", "nasbench", "--help"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for option in ("--preset", "--budget", "--resume", "--controller-device", "--benchmark", "--method"):
        assert option in proc.stdout


@pytest.mark.timeout(300)
def test_python_api_search_and_load_run(data_dir, tmp_path):
    import ray

    out = tmp_path / "api-run"
    try:
        # run() = search() + Tune's ResultGrid (search() returns run(...).evaluations)
        result = seminas_ray.run(task="nasbench", preset="paper-300", budget=30, seed=0, out=out,
                                 overrides=("n_seed=20", "n_per_round=10", "n_unlabelled=300",
                                            "pretrain_epochs=10", "train_epochs=3"),
                                 benchmark="nb201", dataset="cifar10", num_cpus=2)
    finally:
        ray.shutdown()
    evaluations = result.evaluations
    grid = result.result_grid
    assert isinstance(grid, ResultGrid) and grid.num_errors == 0 and 1 <= len(grid) <= 30
    assert set(evaluations["trial_id"]) == {r.metrics["trial_id"] for r in grid}  # lookups are batched per trial
    assert isinstance(evaluations, pd.DataFrame)
    assert len(evaluations) == 30 == evaluations["key"].nunique()          # one row per query
    assert list(evaluations["query"]) == list(range(1, 31))
    run = seminas_ray.load_run(out)
    assert run.report["n_queries"] == 30 and run.report == evaluations.attrs["report"] | {}
    pd.testing.assert_frame_equal(run.evaluations, evaluations, check_like=True)
    assert len(run.rounds) == 1 and run.settings["budget"] == 30 and run.settings["options"]["benchmark"] == "nb201"
    with pytest.raises(ValueError, match="unknown option"):
        seminas_ray.search(task="nasbench", out=tmp_path / "x", benchmrk="nb201")
    with pytest.raises(FileNotFoundError, match="not a finished results folder"):
        seminas_ray.load_run(tmp_path)
