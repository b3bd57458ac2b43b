"""The redesign must not change a search: the same architectures, in the same rounds, with the same values.

`tests/golden/nasbench_queries.json` was recorded with the code before the redesign (the direct ask/tell loop, which
asks exactly what the Tune path asks per round: `test_search_efficiency.py` checks that the two paths agree). Each
entry is the sequence of `[round, key, search value]` of one search.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from seminas_ray.algorithm import config_for_table
from seminas_ray.algorithm import make_method
from seminas_ray.algorithm import search_space
from seminas_ray.benchmarks.oracle import Oracle
from seminas_ray.tasks.nasbench import load_benchmark

GOLDEN = json.loads((Path(__file__).parent / "golden" / "nasbench_queries.json").read_text())

CASES = {
    # name: (benchmark, dataset, method, preset, budget, seed)
    "nb101-seminas-paper-300-seed0": ("nb101", None, "seminas", "paper-300", None, 0),
    "nb101-evolution-300-seed0": ("nb101", None, "evolution", "paper-300", 300, 0),
    "nb201-cifar10-seminas-paper-300-seed0": ("nb201", "cifar10", "seminas", "paper-300", None, 0),
    "nb201-cifar10-supervised-paper-300-seed1": ("nb201", "cifar10", "supervised", "paper-300", 200, 1),
}


def query_log(benchmark: str, dataset: str | None, method: str, preset: str, budget: int | None,
              seed: int) -> list[list]:
    table = load_benchmark(None, benchmark, dataset)
    config = config_for_table(table, preset, budget=budget)
    optimizer = make_method(method, search_space(table), seed, config, budget=config.total_queries)
    oracle = Oracle(table, budget=optimizer.budget, seed=seed)
    rows: list[list] = []
    while not optimizer.finished:
        archs = optimizer.ask(1)
        if not archs:
            assert optimizer.needs_work(), "the optimizer stalled before its budget"
            optimizer.do_work()
            continue
        for arch in archs:
            value = oracle.query(arch).search_value
            rows.append([optimizer.round, optimizer.space.key(arch), value])
            optimizer.tell(arch, value)
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_search_asks_what_it_asked_before_the_redesign(data_dir, name):
    assert query_log(*CASES[name]) == GOLDEN[name]
