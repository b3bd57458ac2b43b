"""The Ray Tune searcher on a real local Ray cluster (2 CPUs) and real benchmark tables."""
from __future__ import annotations

import os
from typing import Any

import pytest
import ray
from ray import tune
from ray.tune.search import Searcher
from ray.util.placement_group import placement_group

from seminas_ray.algorithm import SemiNAS
from seminas_ray.algorithm import SemiNASConfig
from seminas_ray.algorithm import config_for_table
from seminas_ray.algorithm import make_method
from seminas_ray.algorithm import run_direct
from seminas_ray.algorithm import search_space
from seminas_ray.benchmarks.loading import load_table
from seminas_ray.benchmarks.oracle import evaluate
from seminas_ray.distributed.runner import lookup_trial_cpus
from seminas_ray.distributed.searcher import AskTellSearcher
from seminas_ray.tasks.nasbench_trial import METRIC
from seminas_ray.tasks.nasbench_trial import nasbench_trainable

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")


def reserve_work_cpus(cpus: float, name: str = "") -> Any:
    """A placement group for the controller rounds, as the runner reserves one before Tune starts."""
    group = placement_group([{"CPU": cpus}], name=name)
    ray.get(group.ready(), timeout=120)
    return group


def tiny_config(**extra) -> SemiNASConfig:
    data = SemiNASConfig().to_dict()
    data.update(n_seed=20, n_unlabelled=300, n_per_round=10, n_rounds=2, top_k=10, up_sample=2,
                pretrain_epochs=40, train_epochs=10, patience=5, target_norm="zscore")
    data["controller"].update(hidden_size=16, mlp_hidden_size=16, batch_size=32)
    data.update(extra)
    return SemiNASConfig.from_dict(data)


@pytest.fixture(scope="module")
def nb201(nb201_csv_path):
    return load_table(nb201_csv_path, dataset="cifar100")


def drive(searcher: AskTellSearcher, table, seed: int, stop_after: int | None = None, live: int = 3) -> list[str]:
    """Call the Searcher API the way Tune does: up to ``live`` trials in flight, completed oldest first."""
    keys: list[str] = []
    in_flight: list[tuple[str, dict]] = []
    counter = 0
    while True:
        if stop_after is not None and len(keys) >= stop_after:
            return keys
        while len(in_flight) < live:
            counter += 1
            trial_id = f"t{counter:05d}"
            config = searcher.suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                break
            in_flight.append((trial_id, config))
        if not in_flight:
            if config == Searcher.FINISHED:
                return keys
            searcher.wait_for_work(timeout=120)
            continue
        trial_id, config = in_flight.pop(0)
        result = evaluate(table, config["key"], seed)
        searcher.on_trial_complete(trial_id, {METRIC: result.search_value})
        keys.append(config["key"])


def test_searcher_finishes_and_counts(ray_local, nb201):
    searcher = AskTellSearcher(SemiNAS(nb201.space, tiny_config(), seed=0), metric=METRIC, mode="max", budget=40)
    keys = drive(searcher, nb201, seed=0)
    assert len(keys) == len(set(keys)) == 40 == searcher.n_queries
    assert searcher.suggest("after") == Searcher.FINISHED
    # the remote controller rounds give the same architectures as the inline ask/tell loop
    direct = run_direct(nb201, SemiNAS(nb201.space, tiny_config(), seed=0), budget=40, seed=0)
    assert sorted(keys) == sorted(e["key"] for e in direct.log)
    assert keys[:20] == [e["key"] for e in direct.log][:20]


def test_save_restore_mid_round_gives_the_same_result(ray_local, nb201, tmp_path):
    reference = drive(AskTellSearcher(SemiNAS(nb201.space, tiny_config(), seed=1), metric=METRIC, budget=40),
                      nb201, seed=0)
    first = AskTellSearcher(SemiNAS(nb201.space, tiny_config(), seed=1), metric=METRIC, budget=40)
    done = drive(first, nb201, seed=0, stop_after=24, live=1)  # in the middle of round 1
    path = tmp_path / "searcher-state.pkl"
    first.save(str(path))
    restored = AskTellSearcher(SemiNAS(nb201.space, SemiNASConfig(), seed=99), metric=METRIC, budget=40)
    restored.restore(str(path))
    rest = drive(restored, nb201, seed=0)
    assert done + rest == reference
    assert [e["key"] for e in restored.evaluations] == reference


def test_budget_defaults_to_the_optimizers_and_any_method_plugs_in(nb201):
    """No Ray needed for a method without heavy work: the searcher only talks to the optimizer's public API."""
    searcher = AskTellSearcher(make_method("evolution", nb201.space, 0, budget=7), metric=METRIC, mode="min")
    assert searcher.budget == 7
    keys = drive(searcher, nb201, seed=0)
    assert len(keys) == len(set(keys)) == 7 and searcher.suggest("after") == Searcher.FINISHED
    assert all(e["round"] == 0 and e["predicted"] is None for e in searcher.evaluations)
    assert AskTellSearcher(make_method("seminas", nb201.space, 0, tiny_config()), metric=METRIC).budget == 40


def test_constructor_validates():
    with pytest.raises(ValueError, match="metric is required"):
        AskTellSearcher(SemiNAS.__new__(SemiNAS), metric="")
    with pytest.raises(ValueError, match="mode"):
        AskTellSearcher(SemiNAS.__new__(SemiNAS), metric="x", mode="best")


def test_tune_run_on_nb101_reaches_the_top_percent(ray_local, nb101_subset_path, tmp_path):
    """A real Tune run (2 CPUs, reuse_actors) on the 20k NB101 slice finds a top-1% arch within 300 queries."""
    table = load_table(nb101_subset_path)
    cfg = config_for_table(table, "paper-300", overrides=["n_unlabelled=2000"])
    reserve_work_cpus(1.0, name="test-controller")  # found by name: what survives the searcher's pickling
    searcher = AskTellSearcher(make_method("seminas", search_space(table), 0, cfg), metric=METRIC, mode="max",
                               work_placement_group_name="test-controller")
    assert searcher.budget == cfg.total_queries
    total_cpus = ray.cluster_resources().get("CPU", 1.0)
    trainable = tune.with_resources(tune.with_parameters(nasbench_trainable, table=table, seed=0),
                                    {"cpu": lookup_trial_cpus(total_cpus, 4, 0.25, reserved=1.0)})
    tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1,
                                                              max_concurrent_trials=4, reuse_actors=True),
                       run_config=tune.RunConfig(name="t", storage_path=str(tmp_path), verbose=0))
    grid = tuner.fit()
    assert grid.num_errors == 0
    keys = [e["key"] for e in searcher.evaluations]
    assert len(keys) == len(set(keys)) == 300
    best_rank = min(table.rank(k) for k in keys)
    assert best_rank <= len(table) // 100, f"best rank {best_rank} of {len(table)}"
