"""Resource plans on a cluster that advertises GPUs (issue #16), with a local Ray instance that has fake ones
(``ray.init(num_gpus=2)`` works without a GPU; torch cannot use them, so the controller itself stays on the CPU).
A request that can never be granted would wait forever: here it fails on the test's timeout instead.

- a nasbench search through the runner completes with ``controller_device="cpu"``: the pseudo-labelling tasks that
  the controller round spawns inside its CPU-only placement group ask for CPUs only (they used to ask for a quarter
  GPU there, which the group never holds), and the group is removed at the end of the run;
- the ``cuda`` plan is grantable: the reserved bundle holds the round's GPU, the round task asks for it, and the
  pseudo-labelling tasks beside it ask for CPUs only (the round holds the GPU while it waits for them).
"""
from __future__ import annotations

import os

import pytest
import ray
from ray.util.placement_group import placement_group
from ray.util.placement_group import placement_group_table
from ray.util.placement_group import remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from seminas_ray.algorithm import SemiNASConfig
from seminas_ray.algorithm import make_method
from seminas_ray.benchmarks.loading import load_table
from seminas_ray.benchmarks.oracle import evaluate
from seminas_ray.distributed.pseudo_label import RayPseudoLabeler
from seminas_ray.distributed.pseudo_label import choose_task_options
from seminas_ray.distributed.pseudo_label import task_options
from seminas_ray.distributed.runner import WORK_GROUP_NAME
from seminas_ray.distributed.runner import RunSettings
from seminas_ray.distributed.runner import controller_gpus
from seminas_ray.distributed.runner import run_search
from seminas_ray.distributed.runner import work_bundle
from seminas_ray.distributed.searcher import AskTellSearcher
from seminas_ray.tasks import get_task
from seminas_ray.tasks.nasbench_trial import METRIC

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")

TINY = ("n_seed=20", "n_unlabelled=300", "n_per_round=10", "n_rounds=1", "pretrain_epochs=10", "train_epochs=3",
        "controller.hidden_size=16", "controller.mlp_hidden_size=8")


@pytest.fixture(scope="module")
def fake_gpus():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_the_plans_on_paper():
    assert controller_gpus("cpu", {"GPU": 2.0}) == 0 and controller_gpus("auto", {"CPU": 2.0}) == 0
    assert controller_gpus("auto", {"GPU": 2.0}) == 1 == controller_gpus("cuda", {"GPU": 1.0})
    with pytest.raises(ValueError, match="no GPU"):
        controller_gpus("cuda", {"CPU": 8.0})
    with pytest.raises(ValueError, match="--controller-device"):
        RunSettings(task="nasbench", preset="paper-300", controller_device="gpu")
    assert work_bundle(1.0, 0.0) == {"CPU": 1.0} and work_bundle(1.0, 1.0) == {"CPU": 1.0, "GPU": 1.0}
    nodes = [{"CPU": 2.0, "GPU": 2.0}]
    assert choose_task_options(nodes) == {"num_gpus": 0.25, "num_cpus": 1}  # outside a group: the GPU share
    for bundle in ({"CPU": 1.0}, {"CPU": 1.0, "GPU": 1.0}):                # inside the round's group: CPUs only
        assert choose_task_options(nodes, 1.0, bundles=[bundle]) == {"num_cpus": 1.0}
    assert choose_task_options(nodes, 2.0, bundles=[{"CPU": 0.5}]) == {"num_cpus": 0.5}


@pytest.mark.timeout(240)
def test_a_nasbench_search_finishes_on_a_gpu_cluster_and_frees_its_group(fake_gpus, data_dir, tmp_path):
    settings = RunSettings(task="nasbench", preset="paper-300", seed=0, overrides=TINY, concurrency=2,
                           options={"benchmark": "nb201", "dataset": "cifar10", "data": None, "method": "seminas"},
                           out=tmp_path / "run", controller_device="cpu")
    job = get_task("nasbench").prepare(settings)
    report = run_search(job, settings)
    assert report["n_queries"] == 30 and report["n_rounds"] == 1
    groups = [g for g in placement_group_table().values() if g["name"] == WORK_GROUP_NAME]
    assert groups and all(g["state"] == "REMOVED" for g in groups)  # the reserved group is gone after the run
    assert ray.available_resources().get("GPU") == 2.0


@ray.remote
def _round_like(n: int) -> dict:
    """What a controller round does with resources: spawn pseudo-labelling tasks in its group and wait for them."""
    options = task_options(1.0)
    ray.get([_child.options(**options).remote() for _ in range(n)], timeout=60)
    return options


@ray.remote
def _child() -> int:
    return 1


@pytest.mark.timeout(120)
def test_the_cuda_plan_is_grantable(fake_gpus, nb201_csv_path):
    group = placement_group([work_bundle(1.0, controller_gpus("cuda", ray.cluster_resources()))])
    ray.get(group.ready(), timeout=30)
    try:
        strategy = PlacementGroupSchedulingStrategy(group, placement_group_capture_child_tasks=True)
        options = ray.get(_round_like.options(num_cpus=1, num_gpus=1, scheduling_strategy=strategy).remote(3),
                          timeout=90)
        assert "num_gpus" not in options

        # the searcher's own round task, asking for the bundle's GPU, with the controller kept on the CPU
        table = load_table(nb201_csv_path, dataset="cifar10")
        config = SemiNASConfig.from_dict({**SemiNASConfig().to_dict(), "n_seed": 10, "n_unlabelled": 100,
                                          "n_per_round": 5, "n_rounds": 1, "pretrain_epochs": 3, "train_epochs": 1})
        searcher = AskTellSearcher(make_method("seminas", table.space, 0, config, pseudo_labeler=RayPseudoLabeler()),
                                   metric=METRIC, work_num_gpus=1, work_device="cpu", work_placement_group=group)
        for i in range(10):
            trial = f"t{i}"
            suggestion = searcher.suggest(trial)
            searcher.on_trial_complete(trial, {METRIC: evaluate(table, suggestion["key"], 0).search_value})
        searcher.wait_for_work(timeout=90)
        assert searcher.optimizer.round == 1 and searcher.optimizer.rounds_log[0]["n_pseudo"] == 100
    finally:
        remove_placement_group(group)
