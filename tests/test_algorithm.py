"""The ask/tell optimizers (no Ray): SemiNAS rounds, baselines, configs, determinism and state."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from seminas_ray.algorithm import RandomSearch
from seminas_ray.algorithm import RegularizedEvolution
from seminas_ray.algorithm import SemiNAS
from seminas_ray.algorithm import SemiNASConfig
from seminas_ray.algorithm import build_config
from seminas_ray.algorithm import config_for_table
from seminas_ray.algorithm import make_method
from seminas_ray.algorithm import run_direct
from seminas_ray.algorithm import search_space
from seminas_ray.algorithm.config import parse_override
from seminas_ray.algorithm.seminas import early_stopper
from seminas_ray.benchmarks.loading import load_table


@pytest.fixture(scope="module")
def nb201(nb201_csv_path):
    return load_table(nb201_csv_path, dataset="cifar10")


def small_config(**extra) -> SemiNASConfig:
    base = dict(n_seed=20, n_unlabelled=300, n_per_round=10, n_rounds=2, top_k=10, up_sample=2,
                pretrain_epochs=40, train_epochs=10, patience=5, target_norm="zscore",
                controller={"hidden_size": 16, "mlp_hidden_size": 16, "batch_size": 32})
    base.update(extra)
    return SemiNASConfig.from_dict({**SemiNASConfig().to_dict(), **base,
                                    "controller": {**SemiNASConfig().controller.to_dict(), **base["controller"]}})


def test_presets_and_overrides():
    cfg = build_config("paper-2000")
    assert (cfg.n_seed, cfg.n_unlabelled, cfg.n_per_round, cfg.n_rounds, cfg.total_queries) == (1100, 10000, 300, 3, 2000)
    assert (cfg.controller.hidden_size, cfg.controller.mlp_hidden_size, cfg.up_sample) == (64, 16, 10)
    cfg = build_config("paper-300")
    assert (cfg.n_seed, cfg.n_per_round, cfg.n_rounds, cfg.total_queries, cfg.up_sample) == (100, 100, 2, 300, 100)
    assert cfg.controller.hidden_size == 16 and cfg.controller.output_activation == "sigmoid"
    assert build_config("supervised").self_training is False
    cfg = build_config("paper-300", overrides=["controller.hidden_size=32", "n_unlabelled=500"], budget=400)
    assert cfg.controller.hidden_size == 32 and cfg.n_unlabelled == 500 and cfg.total_queries == 400
    assert cfg.effective_rounds == 3
    assert parse_override("a.b=1") == {"a": {"b": 1}}


def test_recommended_preset_and_screen_settings():
    """``--preset recommended`` is SemiNAS (RE); the paper presets keep the NAO generation; ``screen.*`` overrides are
    validated like every other setting."""
    assert build_config("paper-300").generator == build_config("paper-2000").generator == "nao"
    cfg = build_config("recommended", budget=1000)
    assert cfg.generator == "evolution" and cfg.n_seed == 20 and cfg.total_queries == 1000
    assert (cfg.screen.pool_share, cfg.screen.population_size, cfg.controller.hidden_size) == (0.5, 100, 16)
    cfg = build_config("recommended", overrides=["screen.pool_share=1", "generator=random"])
    assert cfg.screen.pool_share == 1.0 and cfg.generator == "random"
    assert SemiNASConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="generator"):
        build_config("recommended", overrides=["generator=gradient"])
    with pytest.raises(ValueError, match="pool_share"):
        build_config("recommended", overrides=["screen.pool_share=2"])
    with pytest.raises(ValueError, match="tournament_size"):
        build_config("recommended", overrides=["screen.tournament_size=500"])
    with pytest.raises(ValueError, match="unknown|Extra|extra"):
        build_config("recommended", overrides=["screen.pool=3"])


def test_min_holdout_turns_off_early_stopping_on_small_label_sets():
    """``min_holdout=100`` (the recommended preset's): early stopping only with >= 100 held-out labels; the paper
    presets as before (>= 1)."""
    cfg = build_config("recommended")
    assert cfg.min_holdout == 100
    assert early_stopper(cfg, 999, 0) is None and early_stopper(cfg, 1000, 0) is not None
    paper = build_config("paper-300")
    assert paper.min_holdout == 1 and early_stopper(paper, 10, 0) is not None and early_stopper(paper, 9, 0) is None
    assert early_stopper(build_config("paper-300", schedule="exact"), 1000, 0) is None
    with pytest.raises(ValueError, match="min_holdout"):
        build_config("recommended", overrides=["min_holdout=0"])


def test_bad_configs_are_clear():
    with pytest.raises(ValueError, match="unknown preset"):
        build_config("paper-9000")
    with pytest.raises(ValueError, match="unknown SemiNAS setting"):
        build_config("paper-300", overrides=["n_sed=3"])
    with pytest.raises(ValueError, match="below the seed set"):
        build_config("paper-300", budget=50)
    with pytest.raises(ValueError, match="schedule"):
        build_config("paper-300", overrides=["schedule=slow"])
    with pytest.raises(ValueError, match="not of the form"):
        parse_override("n_seed")


def test_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("n_seed: 50\ncontroller:\n  hidden_size: 8\n")
    cfg = build_config("paper-300", path, ["n_seed=60"])
    assert cfg.n_seed == 60 and cfg.controller.hidden_size == 8 and cfg.controller.mlp_hidden_size == 64
    with pytest.raises(FileNotFoundError):
        build_config("paper-300", tmp_path / "missing.yaml")


@pytest.mark.parametrize("cls", [RandomSearch, RegularizedEvolution])
def test_baselines_never_repeat_a_key(nb201, cls):
    opt = cls(nb201.space, seed=3)
    oracle = run_direct(nb201, opt, budget=250, seed=0)
    keys = [e["key"] for e in oracle.log]
    assert len(keys) == len(set(keys)) == 250 == oracle.n_queries


def test_evolution_uses_the_population(nb201):
    opt = RegularizedEvolution(nb201.space, seed=0, population_size=20, sample_size=5)
    oracle = run_direct(nb201, opt, budget=200, seed=0)
    # after the random phase, children are mutations: each differs from some earlier arch in exactly one edge
    ops = [nb201.arch(e["key"]).ops for e in oracle.log]
    later = ops[40:60]
    earlier = ops[:40]
    assert all(any(sum(a != b for a, b in zip(child, parent)) == 1 for parent in ops[:i + 40])
               for i, child in enumerate(later))
    assert len(earlier) == 40


def test_seminas_rounds_on_nb201(nb201):
    cfg = small_config()
    opt = SemiNAS(nb201.space, cfg, seed=0)
    oracle = run_direct(nb201, opt, budget=cfg.total_queries, seed=0)
    keys = [e["key"] for e in oracle.log]
    assert oracle.n_queries == len(set(keys)) == 40
    assert opt.finished and opt.round == 2 and len(opt.rounds_log) == 2
    for log in opt.rounds_log:
        assert log["n_proposed"] == 10 and log["n_pseudo"] == 300
        assert log["pretrain_epochs"] >= 1 and np.isfinite(log["pretrain_loss"])
        assert "heldout_kendall_tau" in log
    # proposals of round 1 are what the controller predicted to be good: predictions exist for each of them
    assert all(opt.predicted_score(nb201.arch(k)) is not None for k in keys[20:])


def test_seminas_is_deterministic_and_resumable(nb201):
    cfg = small_config()
    first = run_direct(nb201, SemiNAS(nb201.space, cfg, seed=7), budget=40, seed=1)
    second = run_direct(nb201, SemiNAS(nb201.space, cfg, seed=7), budget=40, seed=1)
    assert [e["key"] for e in first.log] == [e["key"] for e in second.log]

    # interrupt after round 1 has been generated and 5 of its archs told; continue in a new optimizer
    from seminas_ray.utils.state_io import dumps_state
    from seminas_ray.utils.state_io import loads_state

    opt = SemiNAS(nb201.space, cfg, seed=7)
    asked = []
    from seminas_ray.benchmarks.oracle import Oracle

    oracle = Oracle(nb201, budget=40, seed=1)
    while len(asked) < 25:
        archs = opt.ask(1)
        if not archs:
            opt.do_work()
            continue
        asked.append(archs[0])
        opt.tell(archs[0], oracle.query(archs[0]).search_value)
    state = loads_state(dumps_state(opt.state_dict()))
    resumed = SemiNAS(nb201.space, SemiNASConfig(), seed=0)
    resumed.load_state_dict(state)
    while True:
        archs = resumed.ask(1)
        if not archs:
            if resumed.needs_work():
                resumed.do_work()
                continue
            break
        asked.append(archs[0])
        resumed.tell(archs[0], oracle.query(archs[0]).search_value)
    assert [nb201.space.key(a) for a in asked] == [e["key"] for e in first.log]


def test_supervised_never_trains_on_pseudo_labels(nb201):

    opt = make_method("supervised", nb201.space, 0, small_config())
    run_direct(nb201, opt, budget=40, seed=0)
    assert opt.config.self_training is False and opt.rounds_log
    assert all("train_epochs" not in r for r in opt.rounds_log)  # never trained on pseudo-labels
    # same seeds and pretraining as SemiNAS: only the self-training differs
    semi = make_method("seminas", nb201.space, 0, small_config())
    run_direct(nb201, semi, budget=40, seed=0)
    assert all("train_epochs" in r for r in semi.rounds_log)
    assert semi.rounds_log[0]["pretrain_loss"] == opt.rounds_log[0]["pretrain_loss"]


def test_seed_filter_queries_are_counted(nb201):
    # the paper's seed rule keeps drawing until n_seed pass; every rejected draw is still a counted query
    cfg = small_config(seed_filter=float(np.quantile(nb201.search_values_mean(), 0.5)), n_rounds=1)
    opt = SemiNAS(nb201.space, cfg, seed=0)
    oracle = run_direct(nb201, opt, budget=cfg.total_queries, seed=0)
    kept = [k for k, v in opt._labelled.items()]
    assert oracle.n_queries == cfg.total_queries and len(kept) < oracle.n_queries


def test_nasbench_config_adapts_units(nb201):
    assert config_for_table(nb201, "paper-300").target_norm == "minmax"  # the Apr-2020 code's own normalisation
    cfg = config_for_table(nb201, "paper-2000")
    assert cfg.target_norm == "zscore"  # NB201 is in percent: the authors' NB101 constants do not apply
    with pytest.raises(ValueError, match="exceeds"):
        config_for_table(nb201, "paper-300", budget=20000)
    assert search_space(nb201) is nb201.space
    assert config_for_table(nb201, "paper-2000", overrides=["target_norm=zscore-fixed"]).target_norm == "zscore-fixed"


def test_configs_are_frozen_values():
    cfg = build_config("paper-300")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.budget = 250  # type: ignore[misc]
    smaller = dataclasses.replace(cfg, budget=250)
    assert (cfg.total_queries, smaller.total_queries) == (300, 250)
    with pytest.raises(ValueError, match="below the seed set"):
        dataclasses.replace(cfg, budget=50)  # a replaced config is validated like a new one


def test_seminas_ends_early_when_a_round_generates_nothing(nb201):
    """A round that decodes nothing new ends the search (finished, no more work) without touching the config."""
    from seminas_ray.algorithm import RoundResult

    cfg = small_config()
    opt = SemiNAS(nb201.space, cfg, seed=0)
    for arch in opt.ask(cfg.n_seed):
        opt.tell(arch, nb201.search_value_mean(nb201.space.key(arch)))
    assert opt.needs_work() and not opt.finished
    opt.apply_work(RoundResult(round=1, archs=[], predicted=[], controller_state=None))
    assert opt.finished and not opt.needs_work() and opt.ask(1) == []
    assert opt.budget == cfg.total_queries == opt.config.total_queries  # the budget is what was asked for
    assert opt.rounds_log[-1]["note"] == "no new architecture could be generated"
    resumed = SemiNAS(nb201.space, cfg, seed=0)
    resumed.load_state_dict(opt.state_dict())
    assert resumed.finished and resumed.round == 1
