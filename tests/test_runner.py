"""The one search runner's settings and the task registry: options parsed once into frozen settings, resume reads the
saved settings instead of mutating the parsed ones, and every registered task fits the ``Task`` interface."""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from seminas_ray.distributed.runner import RunSettings
from seminas_ray.distributed.runner import load_saved_settings
from seminas_ray.distributed.runner import lookup_trial_cpus
from seminas_ray.distributed.runner import resolve_settings
from seminas_ray.reporting import write_yaml
from seminas_ray.tasks import TASKS
from seminas_ray.tasks import get_task
from seminas_ray.tasks.base import Task

REPO = Path(__file__).resolve().parents[1]


def cli():
    spec = importlib.util.spec_from_file_location("run_cli", REPO / "experiments" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_registered_task_fits_the_interface(name):
    task = get_task(name)
    assert isinstance(task, Task) and task.name == name
    assert task.default_preset in task.presets


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        get_task("nope")


def test_cli_parses_once_into_frozen_settings(tmp_path):
    settings = cli().parse_settings(["--task", "nasbench", "--benchmark", "nb201", "--dataset", "cifar10",
                                     "--set", "n_seed=30", "--set", "n_rounds=1", "--seed", "4",
                                     "--out", str(tmp_path / "run")])
    assert settings.task == "nasbench" and settings.preset == get_task("nasbench").default_preset
    assert settings.overrides == ("n_seed=30", "n_rounds=1") and settings.seed == 4
    assert dict(settings.options) == {"benchmark": "nb201", "data": None, "dataset": "cifar10", "method": "seminas"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.seed = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.options["method"] = "random"  # type: ignore[index]


def test_resume_takes_the_saved_settings_and_this_sessions_machine(tmp_path):
    out = tmp_path / "run"
    (out / "tune").mkdir(parents=True)
    first = RunSettings(task="nasbench", preset="paper-300", seed=3, overrides=("n_seed=30",), budget=70,
                        options={"benchmark": "nb201", "dataset": "cifar100", "data": None, "method": "evolution"},
                        out=out, num_cpus=2)
    write_yaml(out / "config.yaml", {"task": "nasbench", "settings": first.search_dict(), "seminas": {}})

    parsed = cli().parse_settings(["--task", "nasbench", "--resume", str(out), "--num-cpus", "1"])
    resumed = resolve_settings(parsed)
    default = get_task("nasbench").default_preset
    assert default != "paper-300"  # so the check below tells the parsed settings from the saved ones
    assert resumed is not parsed and parsed.seed == 0 and parsed.preset == default  # parsed one untouched
    assert resumed.search_dict() == first.search_dict()
    assert resumed.resume and resumed.out == out and resumed.num_cpus == 1


@pytest.mark.parametrize("content, message", [
    (None, "not a run folder"),
    ("task: [unclosed", "not valid YAML"),
    ("task: tts\nsettings: {}\n", "not the configuration of a nasbench run"),
    ("just text", "not the configuration of a nasbench run"),
])
def test_a_bad_resume_folder_is_one_clear_error(tmp_path, content, message):
    (tmp_path / "tune").mkdir()
    if content is not None:
        (tmp_path / "config.yaml").write_text(content)
    error = FileNotFoundError if content is None else ValueError
    with pytest.raises(error, match=message):
        load_saved_settings(tmp_path, "nasbench")


def test_lookup_trials_leave_room_for_the_controller():
    # 2 CPUs, 1 reserved for the controller, 4 concurrent lookups + as many staged: 1/8 CPU each
    assert lookup_trial_cpus(2.0, 4, 0.25, reserved=1.0) == pytest.approx(0.125)
    assert lookup_trial_cpus(64.0, 4, 0.25, reserved=1.0) == pytest.approx(0.25)
