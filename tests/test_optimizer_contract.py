"""The contract every registered search method keeps (in the style of Optuna's sampler tests).

Parametrized over ``seminas_ray.algorithm.METHODS``: a method added to the registry is tested here with no new
test code. Each method searches the real NB201 cifar10 table with a tiny SemiNAS config (20 queries: a seed round
of 10 and two rounds of 5), asked three at a time, with some evaluations failing, and must

- never ask a key twice, never go past its budget, and be ``finished`` once the budget is spent;
- give the same asks, predictions and round structure for the same seed;
- after a save (to a state file) in the middle of a round and a restore into a fresh optimizer, finish exactly
  as the uninterrupted run;
- expose the common interface: ``round``, ``rounds_log``, ``predicted_score``, ``arch_for_key``, ``budget``.
"""
from __future__ import annotations

from typing import Any

import pytest

from seminas_ray.algorithm import METHODS
from seminas_ray.algorithm import AskTellOptimizer
from seminas_ray.algorithm import SemiNASConfig
from seminas_ray.algorithm import make_method
from seminas_ray.benchmarks.loading import load_table
from seminas_ray.benchmarks.oracle import evaluate
from seminas_ray.benchmarks.tables import Table
from seminas_ray.utils.state_io import load_state
from seminas_ray.utils.state_io import save_state

BUDGET = 20
BATCH = 3
SEED = 5


def tiny_config() -> SemiNASConfig:
    data = SemiNASConfig().to_dict()
    data.update(n_seed=10, n_unlabelled=40, n_per_round=5, n_rounds=2, top_k=5, up_sample=2, pretrain_epochs=8,
                train_epochs=3, patience=3, fast_sample_budget=400, target_norm="zscore")
    data["controller"].update(hidden_size=8, mlp_hidden_size=8, batch_size=16)
    return SemiNASConfig.from_dict(data)


@pytest.fixture(scope="module")
def nb201(nb201_csv_path) -> Table:
    return load_table(nb201_csv_path, dataset="cifar10")


def build(name: str, table: Table, seed: int = SEED) -> AskTellOptimizer:
    return make_method(name, table.space, seed, tiny_config())


def score_of(table: Table, key: str, index: int) -> float | None:
    """The table's value, except that every 7th evaluation fails (optimizers must cope with ``tell(arch, None)``)."""
    return None if index % 7 == 3 else evaluate(table, key, seed=0).search_value


def drive(opt: AskTellOptimizer, table: Table, log: list[tuple[Any, ...]], stop_at: int | None = None) -> None:
    """Ask ``BATCH`` at a time and tell in ask order until finished (or ``stop_at`` asks); appends to ``log``."""
    while not opt.finished and (stop_at is None or opt.n_asked < stop_at):
        want = BATCH if stop_at is None else min(BATCH, stop_at - opt.n_asked)
        archs = opt.ask(want)
        assert len(archs) <= want
        if not archs:
            if opt.needs_work():
                opt.do_work()
                continue
            break
        for arch in archs:
            key = opt.space.key(arch)
            assert opt.arch_for_key(key) == arch
            log.append((key, opt.round, opt.predicted_score(arch)))
            opt.tell(arch, score_of(table, key, len(log)))


@pytest.fixture(scope="module")
def reference(nb201) -> dict[str, tuple[list[tuple[Any, ...]], AskTellOptimizer]]:
    """One uninterrupted run per method, shared by the tests below."""
    runs = {}
    for name in METHODS:
        opt, log = build(name, nb201), []
        drive(opt, nb201, log)
        runs[name] = (log, opt)
    return runs


@pytest.mark.parametrize("name", sorted(METHODS))
def test_never_reasks_and_honours_the_budget(name, nb201, reference):
    log, opt = reference[name]
    keys = [k for k, _, _ in log]
    assert len(keys) == len(set(keys)) == opt.n_asked == opt.n_told
    assert opt.budget == BUDGET and len(keys) == BUDGET  # the tiny round structure fills the budget exactly
    assert opt.finished and opt.ask(BATCH) == [] and not opt.pending_keys()
    fresh = build(name, nb201)
    assert len(fresh.ask(BUDGET + 10)) <= BUDGET  # one big ask cannot overrun the budget either
    assert fresh.n_asked <= BUDGET


@pytest.mark.parametrize("name", sorted(METHODS))
def test_same_seed_same_search(name, nb201, reference):
    log, opt = reference[name]
    again, log2 = build(name, nb201), []
    drive(again, nb201, log2)
    assert log2 == log
    assert again.round == opt.round and len(again.rounds_log) == len(opt.rounds_log)
    other, log3 = build(name, nb201, seed=SEED + 1), []
    drive(other, nb201, log3, stop_at=BATCH)
    assert [k for k, _, _ in log3] != [k for k, _, _ in log[:BATCH]]  # the seed does matter


@pytest.mark.parametrize("name", sorted(METHODS))
def test_save_mid_run_and_restore_gives_the_same_rest(name, nb201, reference, tmp_path):
    log, opt = reference[name]
    first, done = build(name, nb201), []
    drive(first, nb201, done, stop_at=12)  # mid round 1 of SemiNAS (10 seeds + 2 of 5); whole batches of 3
    assert done == log[:12]
    path = save_state(tmp_path / f"{name}.state", first.state_dict())
    restored = make_method(name, nb201.space, seed=SEED + 100)  # other seed, default config: the state wins
    restored.load_state_dict(load_state(path))
    assert restored.budget == BUDGET and restored.n_asked == 12 and restored.round == first.round
    rest = list(done)
    drive(restored, nb201, rest)
    assert rest == log
    assert [r.get("n_proposed") for r in restored.rounds_log] == [r.get("n_proposed") for r in opt.rounds_log]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_common_interface(name, nb201, reference):
    log, opt = reference[name]
    assert isinstance(opt.round, int) and isinstance(opt.rounds_log, list)
    assert all(isinstance(r, dict) for r in opt.rounds_log)
    if METHODS[name].uses_config:  # round-based: seed round, then 2 controller rounds with predictions
        assert opt.round == 2 and len(opt.rounds_log) == 2
        assert [r for _, r, _ in log] == [0] * 10 + [1] * 5 + [2] * 5
        assert all(p is None for _, _, p in log[:10]) and all(isinstance(p, float) for _, _, p in log[10:])
    else:
        assert opt.round == 0 and opt.rounds_log == [] and all(p is None for _, _, p in log)
    with pytest.raises(KeyError):
        opt.arch_for_key("never-asked")
    state = opt.state_dict()
    assert state["name"] == opt.name and state["budget"] == BUDGET


def test_registry_rejects_unknown_methods_and_budgets(nb201):
    with pytest.raises(ValueError, match="unknown method"):
        make_method("annealing", nb201.space, 0)
    with pytest.raises(ValueError, match="budget"):
        make_method("random", nb201.space, 0, budget=0)
    assert make_method("random", nb201.space, 0).budget is None  # a baseline without a budget is unbounded
    assert make_method("evolution", nb201.space, 0, budget=7).budget == 7
    assert make_method("seminas", nb201.space, 0, tiny_config(), budget=25).config.total_queries == 25
    supervised = make_method("supervised", nb201.space, 0, tiny_config())
    assert supervised.config.self_training is False and supervised.config.up_sample == 1


@pytest.mark.parametrize("name", sorted(METHODS))
def test_warm_starts_observed_labels_are_not_queries_given_points_are(name, nb201, reference, tmp_path):
    """``observe`` (Tune's evaluated_rewards): labelled data, never asked, not counted; ``add_first`` + ``take_first``
    (points_to_evaluate): asked first and counted. Both survive a state round trip."""
    log, _ = reference[name]
    value = {k: evaluate(nb201, k, seed=0).search_value for k, _, _ in log[:6]}
    known, given = [k for k, _, _ in log[:4]], [k for k, _, _ in log[4:6]]
    opt = build(name, nb201)
    for key in known:
        opt.observe(nb201.arch(key), value[key])
    with pytest.raises(KeyError):
        opt.observe(nb201.arch(known[0]), 0.0)  # observed twice
    opt.add_first([nb201.arch(k) for k in given])
    first = opt.take_first(5)
    assert [opt.space.key(a) for a in first] == given and opt.n_first == 0 and opt.n_asked == 2
    for arch in first:
        opt.tell(arch, value[opt.space.key(arch)])
    state = opt.state_dict()
    rest: list[tuple[Any, ...]] = []
    drive(opt, nb201, rest)
    asked = given + [k for k, _, _ in rest]
    assert len(asked) == len(set(asked)) == opt.n_asked == BUDGET and opt.n_observed == len(known)
    assert not set(asked) & set(known)
    if opt.rounds_log and "n_labelled" in opt.rounds_log[0]:  # SemiNAS: the observed labels train the controller
        seed_round = given + [k for k, r, _ in rest if r == 0]
        told = [k for k in seed_round if k in given or score_of(nb201, k, 1 + [x for x, _, _ in rest].index(k))
                is not None]
        assert opt.rounds_log[0]["n_labelled"] == len(known) + len(told)
    restored = make_method(name, nb201.space, seed=SEED + 100)
    restored.load_state_dict(load_state(save_state(tmp_path / "warm.state", state)))
    assert restored.n_observed == len(known) and restored.n_asked == 2
    assert all(not restored._is_new(k) for k in known + given)
