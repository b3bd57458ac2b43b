"""``AskTellSearcher`` as Tune users expect a searcher (issue #16), with real ``tune.Tuner`` runs on NB201 (tiny
budget, one trial at a time so the order is the suggestion order): ``points_to_evaluate`` are asked first and
counted as queries; ``evaluated_rewards`` / ``add_evaluated_point`` are labelled data, not queries; a
``param_space`` with search-space entries is refused with Tune's error, constants reach the trainable."""
from __future__ import annotations

import os
from typing import Any

import pytest
from ray import tune

from seminas_ray.algorithm import SemiNASConfig
from seminas_ray.algorithm import make_method
from seminas_ray.benchmarks.loading import load_table
from seminas_ray.benchmarks.oracle import evaluate
from seminas_ray.distributed.searcher import AskTellSearcher
from seminas_ray.tasks.nasbench_trial import METRIC
from seminas_ray.tasks.nasbench_trial import lookup

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")

N_SEED, N_NEW = 8, 4
BUDGET = N_SEED + N_NEW


def tiny_config() -> SemiNASConfig:
    data = SemiNASConfig().to_dict()
    data.update(n_seed=N_SEED, n_unlabelled=50, n_per_round=N_NEW, n_rounds=1, top_k=4, up_sample=2,
                pretrain_epochs=5, train_epochs=2, patience=2, fast_sample_budget=200, target_norm="zscore")
    data["controller"].update(hidden_size=8, mlp_hidden_size=8, batch_size=16)
    return SemiNASConfig.from_dict(data)


@pytest.fixture(scope="module")
def nb201(nb201_csv_path):
    return load_table(nb201_csv_path, dataset="cifar10")


def make_trainable() -> Any:
    # defined in a function so that Ray pickles it by value (the workers cannot import this test module)
    def trainable(config: dict[str, Any], table: Any = None) -> None:
        result = lookup(table, config["arch"], 0)
        result["note"] = config.get("note")  # a constant of param_space, passed through
        tune.report(result)

    return trainable


def searcher_for(table, **kwargs: Any) -> AskTellSearcher:
    # the controller round inline (remote_work=False): no placement group needed beside one trial at a time
    return AskTellSearcher(make_method("seminas", table.space, 0, tiny_config()), metric=METRIC, mode="max",
                           remote_work=False, extra_result_keys=("note",), **kwargs)


def fit(table, searcher: AskTellSearcher, tmp_path, param_space: dict | None = None) -> Any:
    tuner = tune.Tuner(tune.with_resources(tune.with_parameters(make_trainable(), table=table), {"cpu": 0.5}),
                       param_space=param_space,
                       tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1, max_concurrent_trials=1,
                                                   reuse_actors=True),
                       run_config=tune.RunConfig(name="t", storage_path=str(tmp_path), verbose=0))
    return tuner.fit()


def some_archs(table, n: int, offset: int = 0) -> list[str]:
    keys = sorted(table.keys())  # any fixed architectures of the table
    return keys[offset:offset + n]


def test_points_to_evaluate_are_asked_first_and_counted(ray_local, nb201, tmp_path):
    points = some_archs(nb201, 3)
    configs = [{"arch": nb201.space.to_config(nb201.arch(k))} for k in points]
    searcher = searcher_for(nb201, points_to_evaluate=configs)
    grid = fit(nb201, searcher, tmp_path, param_space={"note": "kept"})
    assert grid.num_errors == 0
    keys = [e["key"] for e in searcher.evaluations]
    assert keys[:3] == points                                  # first, in the given order
    assert len(keys) == len(set(keys)) == BUDGET == searcher.n_queries  # counted as queries of the budget
    assert searcher.optimizer.round == 1 and searcher.optimizer.n_observed == 0
    assert {e["note"] for e in searcher.evaluations} == {"kept"}  # constants reach the trainable


def test_evaluated_rewards_are_observed_not_counted(ray_local, nb201, tmp_path):
    known = some_archs(nb201, 3, offset=10)
    configs = [{"arch": nb201.space.to_config(nb201.arch(k))} for k in known[:2]]
    rewards = [evaluate(nb201, k, seed=0).search_value for k in known]
    searcher = searcher_for(nb201, points_to_evaluate=configs, evaluated_rewards=rewards[:2])
    searcher.add_evaluated_point(nb201.space.to_config(nb201.arch(known[2])), rewards[2])  # a bare config too
    grid = fit(nb201, searcher, tmp_path)
    assert grid.num_errors == 0
    keys = [e["key"] for e in searcher.evaluations]
    assert len(keys) == len(set(keys)) == BUDGET == searcher.n_queries  # the budget is spent on new queries only
    assert not set(keys) & set(known)                                    # known results are never asked
    assert searcher.optimizer.n_observed == 3
    assert searcher.optimizer.rounds_log[0]["n_labelled"] == N_SEED + 3  # labelled data for the controller
    with pytest.raises(ValueError, match="evaluated_rewards has 1 values for 2"):
        searcher_for(nb201, points_to_evaluate=configs, evaluated_rewards=rewards[:1])


def test_a_search_space_param_space_is_refused_with_tunes_error(ray_local, nb201, tmp_path):
    searcher = searcher_for(nb201)
    with pytest.raises(Exception, match="unresolved parameters"):
        fit(nb201, searcher, tmp_path, param_space={"lr": tune.loguniform(1e-4, 1e-2)})
    assert searcher.set_search_properties(METRIC, "max", {"opt": {"lr": tune.grid_search([1, 2])}}) is False
    assert searcher.set_search_properties(METRIC, "max", {"opt": {"lr": 0.1}, "epochs": 3}) is True
    with pytest.raises(ValueError, match="clash"):
        searcher.set_search_properties(METRIC, "max", {"arch": "mine"})
