"""The semi-supervised predictor behind ``fit(archs, values) / predict(archs)`` on real tables (NB201, the NB101 slice).

It must rank held-out architectures better than a random predictor, its supervised ablation (no pseudo-labels) must
be a different predictor, and everything must be deterministic under a seed.
"""
from __future__ import annotations

import numpy as np
import pytest

from seminas_ray.algorithm import SemiNASConfig
from seminas_ray.algorithm import SemiSupervisedPredictor
from seminas_ray.algorithm import search_space
from seminas_ray.algorithm.metrics import kendall_tau


def small_config(**extra) -> SemiNASConfig:
    data = SemiNASConfig().to_dict()
    data.update(n_unlabelled=1000, up_sample=5, fast_sample_budget=4000, target_norm="zscore")
    data["controller"].update(hidden_size=16, mlp_hidden_size=32)
    data.update(extra)
    return SemiNASConfig.from_dict(data)


def split(table, n_labelled: int, n_heldout: int, seed: int = 0):
    keys = list(table)
    order = np.random.default_rng(seed).permutation(len(keys))
    lab = [keys[i] for i in order[:n_labelled]]
    held = [keys[i] for i in order[n_labelled:n_labelled + n_heldout]]
    value = table.search_value_mean
    return ([table.arch(k) for k in lab], [value(k) for k in lab], [table.arch(k) for k in held],
            np.array([value(k) for k in held]))


@pytest.mark.parametrize("which", ["nb201", "nb101"])
def test_ranks_held_out_architectures_better_than_a_random_predictor(which, request):
    table = request.getfixturevalue(which)
    archs, values, held, truth = split(table, 150, 1000)
    predictor = SemiSupervisedPredictor(search_space(table), small_config(), seed=3)
    stats = predictor.fit(archs, values)
    assert stats["n_labelled"] == 150 and stats["n_pool"] == 1000 and stats["train_epochs"] >= 1
    pred = predictor.predict(held)
    assert pred.shape == (1000,) and np.isfinite(pred).all()
    tau = kendall_tau(pred, truth)
    random_tau = kendall_tau(np.random.default_rng(0).normal(size=len(truth)), truth)
    assert tau > 0.2 and tau > abs(random_tau) + 0.15, (tau, random_tau)


def test_supervised_variant_is_a_different_predictor_and_trains_on_labels_only(nb201):
    archs, values, held, truth = split(nb201, 100, 500, seed=1)
    space = search_space(nb201)
    semi = SemiSupervisedPredictor(space, small_config(), seed=0)
    sup = SemiSupervisedPredictor(space, small_config(self_training=False), seed=0)
    assert not semi.supervised and sup.supervised
    assert SemiSupervisedPredictor(space, small_config(n_unlabelled=0)).supervised
    semi_stats, sup_stats = semi.fit(archs, values), sup.fit(archs, values)
    assert "train_epochs" in semi_stats and "train_epochs" not in sup_stats  # no self-training in the ablation
    assert not np.allclose(semi.predict(held), sup.predict(held))
    assert kendall_tau(sup.predict(held), truth) > 0.2


def test_deterministic_under_a_seed_and_restorable(nb201):
    archs, values, held, _ = split(nb201, 80, 300, seed=2)
    space = search_space(nb201)

    def fitted(seed: int) -> SemiSupervisedPredictor:
        predictor = SemiSupervisedPredictor(space, small_config(n_unlabelled=300), seed=seed)
        predictor.fit(archs, values)
        return predictor

    a, b, c = fitted(5), fitted(5), fitted(6)
    assert np.array_equal(a.predict(held), b.predict(held))
    assert np.array_equal(a.pool[0], b.pool[0])
    assert not np.array_equal(a.predict(held), c.predict(held))
    restored = SemiSupervisedPredictor(space, small_config(n_unlabelled=300))
    restored.load_state_dict(a.state_dict())
    assert np.allclose(restored.predict(held), a.predict(held))


def test_pool_excludes_labelled_and_given_keys_and_bad_input_is_refused(nb201):
    archs, values, held, _ = split(nb201, 40, 50, seed=4)
    space = search_space(nb201)
    predictor = SemiSupervisedPredictor(space, small_config(n_unlabelled=200), seed=0, pool_size=2000)
    with pytest.raises(RuntimeError, match="before fit"):
        predictor.predict(held)
    with pytest.raises(ValueError, match="as many values"):
        predictor.fit(archs, values[:-1])
    excluded = [space.key(a) for a in held]
    predictor.fit(archs, values, exclude=excluded)
    seqs, preds = predictor.pool
    assert len(seqs) == len(preds) == 2000
    pool_keys = {space.key(space.decode(s)) for s in seqs}
    assert len(pool_keys) == 2000
    assert not pool_keys & (set(excluded) | {space.key(a) for a in archs})


def test_fit_is_exactly_a_seminas_round_of_training(nb201):
    """``fit`` = ``pretrain_controller`` + pseudo-labelling + ``self_train_controller`` with a round's seeds, so the
    predictor-quality benchmark (which calls those steps itself to pretrain once per N) measures this predictor."""
    from seminas_ray.algorithm.pseudo_label import LocalPseudoLabeler
    from seminas_ray.algorithm.seminas import normalise_targets
    from seminas_ray.algorithm.seminas import pretrain_controller
    from seminas_ray.algorithm.seminas import self_train_controller
    from seminas_ray.controller import NAOController

    archs, values, held, _ = split(nb201, 60, 200, seed=5)
    space, cfg, seed = search_space(nb201), small_config(n_unlabelled=300), 11
    predictor = SemiSupervisedPredictor(space, cfg, seed=seed)
    predictor.fit(archs, values, exclude=[space.key(a) for a in held])

    seqs = space.encode_many(archs)
    targets, _ = normalise_targets(np.asarray(values), cfg)
    controller = NAOController(space, cfg.controller, seed=seed)
    pretrain_controller(controller, seqs, targets, cfg, seed)
    exclude = frozenset(space.key(a) for a in held + archs)
    pseudo_seqs, pseudo_preds = LocalPseudoLabeler()(space, cfg.controller, controller.get_weights(), 300, seed + 2,
                                                     exclude)
    self_train_controller(controller, seqs, targets, pseudo_seqs.astype(np.int64), pseudo_preds.astype(np.float64),
                          cfg, seed)
    assert np.array_equal(predictor.predict(held), controller.predict(space.encode_many(held)))
