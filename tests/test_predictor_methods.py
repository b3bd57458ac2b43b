"""The predictor-screened SemiNAS methods (``seminas-re``, ``seminas-random`` and their supervised ablations) as Tune
searchers: through ``AskTellSearcher`` (its rounds as Ray tasks, and inline), with a save in the middle of a round and a
restore into a fresh searcher; and the ``seminas`` method following the config's generator."""
from __future__ import annotations

import os

import pytest
from ray.tune.search import Searcher

from seminas_ray.algorithm import METHODS
from seminas_ray.algorithm import SemiNAS
from seminas_ray.algorithm import ScreenedSemiNAS
from seminas_ray.algorithm import SemiNASConfig
from seminas_ray.algorithm import build_config
from seminas_ray.algorithm import make_method
from seminas_ray.algorithm import run_direct
from seminas_ray.algorithm.screened import round_size
from seminas_ray.benchmarks.loading import load_table
from seminas_ray.benchmarks.oracle import evaluate
from seminas_ray.distributed.searcher import AskTellSearcher
from seminas_ray.tasks.nasbench_trial import METRIC

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
SCREENED = ("seminas-re", "seminas-random", "supervised-re", "supervised-random")


def tiny_config(**extra) -> SemiNASConfig:
    data = build_config("recommended").to_dict()
    data.update(n_seed=12, n_unlabelled=200, n_per_round=6, fast_sample_budget=600, budget=30)
    data["controller"].update(batch_size=32)
    data["screen"].update(pool_size=500, candidates_per_child=4)
    data.update(extra)
    return SemiNASConfig.from_dict(data)


@pytest.fixture(scope="module")
def nb201(nb201_csv_path):
    return load_table(nb201_csv_path, dataset="cifar100")


def drive(searcher: AskTellSearcher, table, stop_after: int | None = None, live: int = 2) -> list[str]:
    """The Searcher API as Tune calls it: up to ``live`` trials in flight, completed oldest first."""
    keys: list[str] = []
    in_flight: list[tuple[str, dict]] = []
    counter, config = 0, None
    while stop_after is None or len(keys) < stop_after:
        while len(in_flight) < live:
            counter += 1
            config = searcher.suggest(f"t{counter:05d}")
            if config is None or config == Searcher.FINISHED:
                break
            in_flight.append((f"t{counter:05d}", config))
        if not in_flight:
            if config == Searcher.FINISHED:
                break
            searcher.wait_for_work(timeout=120)
            continue
        trial_id, config = in_flight.pop(0)
        searcher.on_trial_complete(trial_id, {METRIC: evaluate(table, config["key"], 0).search_value})
        keys.append(config["key"])
    return keys


def test_registered_with_the_config_and_the_generator_they_name(nb201):
    assert set(SCREENED) <= set(METHODS) and all(METHODS[m].uses_config for m in SCREENED)
    cfg = tiny_config()
    re_opt, rnd = make_method("seminas-re", nb201.space, 0, cfg), make_method("seminas-random", nb201.space, 0, cfg)
    assert isinstance(re_opt, ScreenedSemiNAS) and re_opt.config.generator == "evolution" and re_opt.name == "seminas-re"
    assert re_opt.config.screen.pool_share == 0.0 and cfg.screen.pool_share == 0.5  # SemiNAS (RE): mutations only
    assert rnd.config.generator == "random" and rnd.name == "seminas-random"
    sup = make_method("supervised-re", nb201.space, 0, cfg)
    assert sup.config.self_training is False and sup.config.up_sample == 1
    # "seminas" follows the config: the paper presets keep the NAO generation, "recommended" screens evolution
    assert type(make_method("seminas", nb201.space, 0, build_config("paper-300"))) is SemiNAS
    assert isinstance(make_method("seminas", nb201.space, 0, cfg), ScreenedSemiNAS)
    assert type(make_method("supervised", nb201.space, 0, build_config("paper-300"))) is SemiNAS
    # rounds grow with the labelled set, at least n_per_round, never past the budget
    assert round_size(cfg, 12, 100) == 6 and round_size(cfg, 100, 100) == 25 and round_size(cfg, 100, 7) == 7


@pytest.mark.parametrize("name", ["seminas-re", "seminas-random"])
def test_inline_searcher_save_mid_round_and_restore_gives_the_same_search(name, nb201, tmp_path):
    def searcher(seed: int, config: SemiNASConfig | None) -> AskTellSearcher:
        return AskTellSearcher(make_method(name, nb201.space, seed, config), metric=METRIC, remote_work=False)

    reference = drive(searcher(1, tiny_config()), nb201)
    assert len(reference) == len(set(reference)) == 30
    direct = run_direct(nb201, make_method(name, nb201.space, 1, tiny_config()), seed=0)
    assert sorted(reference) == sorted(e.key for e in direct.evaluations())
    first = searcher(1, tiny_config())
    done = drive(first, nb201, stop_after=15, live=1)  # inside round 1 (12 seeds + 6)
    path = tmp_path / f"{name}.pkl"
    first.save(str(path))
    restored = searcher(77, None)  # other seed, default config: the saved state wins
    restored.restore(str(path))
    rest = drive(restored, nb201)
    assert done + rest == reference
    assert restored.suggest("after") == Searcher.FINISHED


def test_rounds_run_as_ray_tasks_like_inline(ray_local, nb201):
    remote = AskTellSearcher(make_method("seminas-re", nb201.space, 2, tiny_config()), metric=METRIC)
    keys = drive(remote, nb201)
    inline = drive(AskTellSearcher(make_method("seminas-re", nb201.space, 2, tiny_config()), metric=METRIC,
                                   remote_work=False), nb201)
    assert sorted(keys) == sorted(inline) and len(keys) == 30
    log = remote.optimizer.rounds_log
    assert log and all("n_from_mutation" in r and "n_from_pool" in r for r in log)
