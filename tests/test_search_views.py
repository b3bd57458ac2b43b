"""The views the runner adds to every search (distributed/search_views.py): the query bar and the search-level
TensorBoard file, driven by a real searcher over a real NAS-Bench-201 table (random search: no Ray work needed),
and their pickling (Tune pickles the searcher with its callbacks; bars and writers must not travel)."""
from __future__ import annotations

import io
import pickle

import pytest
from results_checks import tensorboard_scalars

from seminas_ray.algorithm.registry import make_method
from seminas_ray.benchmarks.loading import load_table
from seminas_ray.distributed.search_views import QueryProgress
from seminas_ray.distributed.search_views import SearchTensorBoard
from seminas_ray.distributed.search_views import close_views
from seminas_ray.distributed.searcher import AskTellSearcher


def test_views_follow_a_real_search_and_pickle_without_their_handles(nb201_csv_path, tmp_path, monkeypatch):
    table = load_table(nb201_csv_path, dataset="cifar10")
    bar_stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", bar_stream)  # tqdm writes the bar to stderr
    views = [QueryProgress("acc", enabled=True), SearchTensorBoard(tmp_path / "tb", "acc")]
    searcher = AskTellSearcher(make_method("random", table.space, seed=3, budget=12), metric="acc", mode="max",
                               callbacks=views)
    values = []
    for i in range(12):
        config = searcher.suggest(f"t{i}")
        value = table.search_value(config["key"])
        values.append(value)
        searcher.on_trial_complete(f"t{i}", {"acc": value})
    # Tune pickles the searcher (tuner.pkl) while the bar and the writer are open: neither travels
    state = pickle.loads(pickle.dumps(views))
    assert state[0]._bar is None and state[1]._writer is None and state[1]._written == 0
    close_views(views)

    assert "12/12" in bar_stream.getvalue() and f"best acc {max(values):.5g}" in bar_stream.getvalue()
    scalars = tensorboard_scalars(tmp_path / "tb")
    assert [scalars["search/value"][q] for q in range(1, 13)] == pytest.approx(values)
    running = [max(values[:q]) for q in range(1, 13)]
    assert [scalars["search/best_so_far"][q] for q in range(1, 13)] == pytest.approx(running)
    assert "search/predicted" not in scalars  # random search predicts nothing
