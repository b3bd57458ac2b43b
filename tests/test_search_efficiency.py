"""The search-efficiency benchmark on the real NB201 table, the Tune-searcher adapter (TPE), and the direct path
against the Tune path."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import ray
from ray import tune
from ray.util.placement_group import placement_group

from seminas_ray.algorithm import run_direct
from seminas_ray.algorithm import search_space
from seminas_ray.benchmarks.loading import load_table
from seminas_ray.benchmarks.oracle import Oracle
from seminas_ray.distributed.runner import lookup_trial_cpus
from seminas_ray.distributed.searcher import AskTellSearcher
from seminas_ray.distributed.tune_searcher_optimizer import TuneSearcherOptimizer
from seminas_ray.distributed.tune_searcher_optimizer import optuna_tpe
from seminas_ray.distributed.tune_searcher_optimizer import token_param_space
from seminas_ray.tasks.nasbench_trial import METRIC
from seminas_ray.tasks.nasbench_trial import nasbench_trainable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import search_efficiency as se  # noqa: E402

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")


def reserve_work_cpus(cpus: float, name: str = "") -> Any:
    """A placement group for the controller rounds, as the runner reserves one before Tune starts."""
    group = placement_group([{"CPU": cpus}], name=name)
    ray.get(group.ready(), timeout=120)
    return group
SMALL = ("fast_sample_budget=2000", "controller.batch_size=32", "top_k=10")


def _run(args: list[str], data_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, SEMINAS_DATA_DIR=str(data_dir), OMP_WAIT_POLICY="PASSIVE")
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "search_efficiency.py"), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def test_benchmark_writes_rows_tables_and_plot(data_dir, tmp_path):
    out = tmp_path / "eff"
    sets = [a for s in SMALL for a in ("--set", s)]
    methods = [*se.DEFAULT_METHODS, "seminas-nao"]
    proc = _run(["--benchmark", "nb201", "--dataset", "cifar10", "--seeds", "2", "--budget", "40",
                 "--checkpoints", "15,40", "--workers", "2", "--methods", ",".join(methods), "--out", str(out),
                 *sets], data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_csv(out / "search_efficiency.csv")
    assert {"method", "seed", "queries", "best_val", "best_test", "regret", "rank"} <= set(df.columns)
    assert set(df["method"]) == set(methods)
    assert (df["regret"] >= 0).all() and (df["rank"] >= 1).all()
    # every (method, seed) has its checkpoint rows; sized methods once per budget
    cps = df[df["checkpoint"]]
    for method in methods:
        for seed in (0, 1):
            got = cps[(cps.method == method) & (cps.seed == seed)]
            assert set(got["queries"]) == {15, 40}, (method, seed)
            if method in se.SIZED:  # one run sized for each checkpoint; the larger run also marks the smaller one
                assert set(zip(got.run_budget, got.queries)) == {(15, 15), (40, 15), (40, 40)}
                assert se.checkpoint_value(df.to_dict("records"), method, seed, 15, "run_budget") == 15
    # the incumbent only improves within a run, and best_test is the table's value of the incumbent
    table = load_table(data_dir / "nb201/nb201_all15625_12epoch.csv", dataset="cifar10")
    for _, g in df.groupby(["method", "seed", "run_budget"]):
        assert np.all(np.diff(g.sort_values("queries")["best_val"].to_numpy()) >= 0)
    row = df.iloc[-1]
    assert row["best_test"] == pytest.approx(table.test_value_mean(row["best_key"]))
    runs = pd.read_csv(out / "runs.csv")
    assert (runs["n_queries"] <= runs["run_budget"]).all()      # never over budget; anytime runs spend it all
    anytime = runs[~runs.method.isin(se.SIZED)]
    assert (anytime["n_queries"] == anytime["run_budget"]).all()
    assert (runs.loc[runs.method == "seminas", "n_queries"] == runs.loc[runs.method == "seminas", "run_budget"]).all()
    assert (runs["n_not_in_benchmark"] == 0).all()
    rounds = pd.read_csv(out / "rounds.csv")
    assert {"controller_seconds", "pretrain_seconds"} <= set(rounds.columns)
    assert set(rounds["method"]) == {"seminas", "supervised", "seminas-nao"}
    assert rounds.loc[rounds.method == "supervised", "train_epochs"].isna().all()   # no self-training
    assert rounds.loc[rounds.method == "seminas", "train_epochs"].notna().all()
    md = (out / "search_efficiency.md").read_text()
    assert "seminas vs random" in md and "seminas vs tpe" in md and "40 queries" in md and "p=" in md
    assert (out / "search_efficiency.png").stat().st_size > 10_000


@pytest.mark.parametrize("args, message", [
    (["--methods", "seminas,gradient"], "unknown method"),
    (["--budget", "100000"], "exceeds"),
    (["--seeds", "0"], "--seeds"),
    (["--first-seed", "-1"], "--first-seed"),
    (["--set", "n_seeds=3", "--budget", "30"], "unknown SemiNAS setting"),
])
def test_bad_input_is_one_clear_line(data_dir, tmp_path, args, message):
    proc = _run(["--benchmark", "nb201", "--dataset", "cifar10", "--out", str(tmp_path / "x"), *args], data_dir)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


def test_bootstrap_band_and_p_values():
    curves = np.array([[np.nan, 3.0, 1.0], [np.nan, 1.0, 1.0], [np.nan, 2.0, 1.0]])
    mean, lo, hi = se.bootstrap_band(curves, seed=0)
    assert np.isnan(mean[0]) and mean[1] == pytest.approx(2.0) and mean[2] == 1.0
    assert 1.0 <= lo[1] < 2.0 < hi[1] <= 3.0 and lo[2] == hi[2] == 1.0
    again = se.bootstrap_band(curves, seed=0)
    assert np.array_equal(lo[1:], again[1][1:]) and np.array_equal(hi[1:], again[2][1:])  # seeded
    assert se.mann_whitney_p([1.0, 1.0], [1.0, 1.0]) == 1.0 and se.mann_whitney_p([1.0], [2.0, 3.0]) is None
    assert se.mann_whitney_p([0.0] * 10, [1.0] * 10) < 0.001


def test_predictor_methods_use_the_recommended_preset(nb201):
    cfg = se.method_config("seminas", nb201, 1000)
    assert cfg.generator == "evolution" and cfg.total_queries == 1000
    assert se.method_config("seminas-nao", nb201, 300).generator == "nao"
    job = se.Job("supervised-re", 0, 50, None, "nb201", "cifar10")
    opt = se.make_optimizer(job, nb201)
    assert opt.name == "seminas-re" and opt.config.self_training is False and opt.budget == 50


def test_first_seed_plans_a_fresh_set_of_seeds(nb201):
    args = se.parse_args(["--benchmark", "nb201", "--seeds", "3", "--first-seed", "10", "--budget", "100",
                          "--methods", "seminas,tpe"])
    jobs, methods, checkpoints = se.plan(args, nb201)
    assert {j.seed for j in jobs} == {10, 11, 12} and methods == ["seminas", "tpe"] and checkpoints == [100]
    assert len(jobs) == 6


def test_sized_presets_scale_with_the_budget():
    assert se.sized_preset(300) == ("paper-300", {})
    assert se.sized_preset(2000) == ("paper-2000", {})
    name, sizes = se.sized_preset(1000)
    assert name == "paper-2000" and sizes["n_seed"] == 550 and sizes["n_seed"] + 3 * sizes["n_per_round"] >= 1000
    name, sizes = se.sized_preset(100)
    assert name == "paper-300" and sizes["n_seed"] + 2 * sizes["n_per_round"] >= 100


def test_tpe_adapter_asks_distinct_members_and_learns(nb101):
    space = search_space(nb101)
    free, fixed = token_param_space(space)
    assert len(free) == 27 and not fixed  # 21 edge bits and 6 op slots (a padded cell may end early)
    members = [nb101.arch(k) for k in nb101.keys()[:3000]]
    member_keys = {space.key(a) for a in members}
    opt = TuneSearcherOptimizer(space, optuna_tpe, members, seed=3)
    oracle = run_direct(nb101, opt, budget=120, seed=3)
    keys = [e.key for e in oracle.evaluations()]
    assert len(keys) == len(set(keys)) == 120 == oracle.n_queries
    assert set(keys) <= member_keys and oracle.report()["n_not_in_benchmark"] == 0
    assert 0 < opt.n_projected <= 120        # most raw TPE proposals are not among 3,000 members
    # the searcher saw every result: Optuna's study holds 120 finished trials
    assert len(opt.searcher._ot_study.trials) == 120
    again = run_direct(nb101, TuneSearcherOptimizer(space, optuna_tpe, members, seed=3), budget=120, seed=3)
    assert [e.key for e in again.evaluations()] == keys  # seeded


def test_direct_and_tune_paths_evaluate_the_same_architectures(ray_local, nb201, tmp_path):
    """For one seed, the benchmark's direct loop and a real Tune run of the same optimizer query the same archs."""
    job = se.Job("seminas", 0, 40, None, "nb201", "cifar10", SMALL)
    direct_opt = se.make_optimizer(job, nb201)
    direct = [e.key for e in run_direct(nb201, direct_opt, job.budget, job.seed).evaluations()]

    searcher = AskTellSearcher(se.make_optimizer(job, nb201), metric=METRIC, mode="max", budget=job.budget)
    searcher.work_placement_group = reserve_work_cpus(1.0)
    total_cpus = ray.cluster_resources().get("CPU", 1.0)
    trainable = tune.with_resources(tune.with_parameters(nasbench_trainable, table=nb201, seed=job.seed),
                                    {"cpu": lookup_trial_cpus(total_cpus, 2, 0.25, reserved=1.0)})
    tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1,
                                                              max_concurrent_trials=2, reuse_actors=True),
                       run_config=tune.RunConfig(name="same", storage_path=str(tmp_path), verbose=0))
    assert tuner.fit().num_errors == 0
    via_tune = [e["key"] for e in searcher.evaluations]
    assert len(via_tune) == len(direct) == 40
    assert sorted(via_tune) == sorted(direct)
    n_seed = direct_opt.config.n_seed
    assert set(via_tune[:n_seed]) == set(direct[:n_seed])  # the seed round, then each controller round
    replayed = Oracle(nb201, budget=40, seed=0)
    for key in via_tune:
        replayed.query_key(key)
    assert replayed.n_queries == 40 and replayed.best_so_far().key == run_direct(
        nb201, se.make_optimizer(job, nb201), job.budget, job.seed).best_so_far().key
