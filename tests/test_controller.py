"""Tests of the NAO encoder-predictor-decoder controller on real NAS-Bench-101 / NAS-Bench-201 encodings.

The training runs are short (a few hundred steps on 64 real NB101 cells) so the file stays within about a minute on
two cores; the hyper-parameters of the shared fixture are raised (lr, smaller batch, no dropout) so the model
memorises quickly — the tests check behaviour, not the paper's defaults.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from seminas_ray.controller import ControllerConfig
from seminas_ray.controller import EarlyStopping
from seminas_ray.controller import NAOController
from seminas_ray.controller import TokenSpec
from seminas_ray.controller import predict_with_weights
from seminas_ray.controller.model import EPD
from seminas_ray.spaces.nasbench101 import NB101Space
from seminas_ray.spaces.nasbench201 import NB201Space
from seminas_ray.spaces.nb101_encoding import encode_arrays

MEAN_VAL, STD_VAL = 0.908192301, 0.023961  # the Dec-2020 target normalisation
FAST_CFG = dict(lr=5e-3, batch_size=8, dropout=0.0, trade_off=0.3)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small-batch training is fastest on one thread here, and one thread does not collapse when other processes
    share the two cores (OpenMP workers spin-wait for each other); restored after the module."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def nb101(nb101_subset_path: Path) -> dict[str, np.ndarray]:
    """Token sequences and normalised targets of the real 20k NB101 table."""
    with np.load(nb101_subset_path) as d:
        seqs = encode_arrays(d["adjacency"], d["labels"], d["n_vertices"])
        val = d["val_acc_108"].astype(np.float64)
        n_vertices = d["n_vertices"].astype(np.int64)
    return {"seqs": seqs, "y": (val - MEAN_VAL) / STD_VAL, "val": val, "n_vertices": n_vertices}


@pytest.fixture(scope="module")
def small_set(nb101: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """64 real 7-vertex cells with val acc >= 0.85 (the decoder's masks only emit full 7-vertex encodings,
    as in the authors' code, and sub-0.85 outliers would dominate a 64-sample MSE)."""
    ok = np.flatnonzero((nb101["val"] >= 0.85) & (nb101["n_vertices"] == 7))
    idx = np.random.default_rng(1).choice(ok, 64, replace=False)
    return nb101["seqs"][idx], nb101["y"][idx]


@pytest.fixture(scope="module")
def trained(small_set: tuple[np.ndarray, np.ndarray]) -> dict:
    """One controller trained to memorise the small set (shared by the overfit, round-trip and generation tests)."""
    seqs, y = small_set
    ctl = NAOController(NB101Space(), ControllerConfig(**FAST_CFG), seed=0, device="cpu")
    before = ctl.predict(seqs)
    fit = ctl.fit(seqs, y, epochs=120)
    return {"ctl": ctl, "before": before, "fit": fit}


def test_overfits_small_labelled_set(trained: dict, small_set: tuple[np.ndarray, np.ndarray]) -> None:
    seqs, y = small_set
    ctl, fit = trained["ctl"], trained["fit"]
    mse_before = float(np.mean((trained["before"] - y) ** 2))
    after = ctl.predict(seqs)
    mse_after = float(np.mean((after - y) ** 2))
    assert mse_after < mse_before / 10, (mse_before, mse_after)
    assert kendalltau(after, y)[0] > 0.85
    assert fit.epochs_run == 120 and fit.steps == 120 * 8 and len(fit.history) == 120
    assert fit.history[-1]["nll"] < fit.history[0]["nll"] / 5
    assert after.dtype == np.float64 and after.shape == (64,)


def test_reconstruct_round_trips_training_sequences(trained: dict, small_set: tuple[np.ndarray, np.ndarray]) -> None:
    seqs, _ = small_set
    rec = trained["ctl"].reconstruct(seqs)
    assert rec.shape == seqs.shape and rec.dtype == np.int64
    assert (rec == seqs).mean() > 0.97
    assert (rec == seqs).all(axis=1).mean() > 0.75


def test_constrained_decoding_emits_only_allowed_tokens() -> None:
    for space in (NB101Space(), NB201Space()):
        mask = space.token_mask()
        ctl = NAOController(space, seed=3, device="cpu")  # untrained: unconstrained argmax would emit anything
        seqs = np.random.default_rng(0).integers(0, space.vocab_size, size=(300, space.seq_len))
        rec = ctl.reconstruct(seqs)
        assert mask[np.arange(space.seq_len)[None, :], rec].all()
    # a mask allowing one token per position forces exactly that sequence
    forced = np.array([1, 2, 3, 4, 5, 1])
    one = np.zeros((6, 6), dtype=bool)
    one[np.arange(6), forced] = True
    ctl = NAOController(TokenSpec(6, 6, one), seed=0, device="cpu")
    rec = ctl.reconstruct(np.random.default_rng(0).integers(0, 6, size=(10, 6)))
    assert (rec == forced).all()


def test_generation_raises_predicted_score_in_seed_order(trained: dict, small_set: tuple[np.ndarray, np.ndarray]
                                                          ) -> None:
    ctl: NAOController = trained["ctl"]
    space = NB101Space()
    seqs, _ = small_set
    n_seeds = 20
    seeds = seqs[np.argsort(ctl.predict(seqs))[:n_seeds]]  # the lowest-predicted: room to climb

    def make_accept(calls: list[np.ndarray], accepted_at: list[int]):
        seen = {tuple(s) for s in seqs}

        def accept(tokens: np.ndarray) -> bool:
            calls.append(tokens.copy())
            if space.decode(tokens) is None or tuple(tokens) in seen:
                return False
            seen.add(tuple(tokens))
            accepted_at.append(len(calls) - 1)
            return True

        return accept

    calls: list[np.ndarray] = []
    accepted_at: list[int] = []
    n_new = 15
    res = ctl.generate(seeds, n_new=n_new, accept=make_accept(calls, accepted_at), max_step_size=60.0)
    assert res.n_accepted == len(res.seqs) == n_new  # stops exactly at n_new ...
    assert res.n_decoded == len(calls) == accepted_at[-1] + 1  # ... right after the n_new-th acceptance
    assert res.step_sizes_tried == [float(k) for k in range(1, len(res.step_sizes_tried) + 1)]
    # accept sees step-size-major, seed-order sequences: call k decodes seed k % 20 at step size k // 20 + 1
    assert res.seed_indices == [k % n_seeds for k in accepted_at]
    assert res.step_sizes == [float(k // n_seeds + 1) for k in accepted_at]
    assert all(np.array_equal(calls[k], s) for k, s in zip(accepted_at, res.seqs))
    assert np.mean(ctl.predict(np.stack(res.seqs))) > np.mean(ctl.predict(seeds))

    # the first 20 calls are the step-size-1 decodes of the seeds, computed here by hand with the reference modules
    model = ctl.model.eval()
    outputs, _ = model.encoder(torch.from_numpy(seeds))
    leaf = outputs.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.predictor(torch.nn.functional.normalize(leaf.mean(1), dim=-1)).sum(), leaf)
    new = torch.nn.functional.normalize(leaf.detach() + 1.0 * grad, dim=-1)
    by_hand = model.decoder.greedy(torch.nn.functional.normalize(new.mean(1), dim=-1), new,
                                   torch.from_numpy(space.token_mask())).numpy()
    assert sum(np.array_equal(calls[b], by_hand[b]) for b in range(n_seeds)) >= n_seeds - 1

    # deterministic, and decoding one step size per batch instead of several changes nothing
    calls2: list[np.ndarray] = []
    one_eta = dataclasses.replace(ctl.config, generate_eta_batch=1)  # the config is frozen: a rebuilt controller
    ctl2 = NAOController.from_state_dict(space, {**ctl.state_dict(), "config": one_eta.to_dict()}, device="cpu")
    res2 = ctl2.generate(seeds, n_new=n_new, accept=make_accept(calls2, []), max_step_size=60.0)
    assert len(calls2) == len(calls) and all(np.array_equal(a, b) for a, b in zip(calls, calls2))
    assert res2.step_sizes_tried == res.step_sizes_tried


def test_generation_stops_at_max_step_size() -> None:
    ctl = NAOController(NB201Space(), seed=0, device="cpu")
    seeds = np.array([[1, 2, 3, 4, 5, 1], [2, 2, 2, 2, 2, 2]])
    calls = []
    res = ctl.generate(seeds, n_new=5, accept=lambda s: calls.append(s) and False, step_size_start=0.1,
                       step_size_increment=0.1, max_step_size=1.0)
    assert res.n_accepted == 0 and res.n_decoded == 2 * 10 == len(calls)
    assert np.allclose(res.step_sizes_tried, np.arange(1, 11) / 10)


def test_fit_is_deterministic_and_resumable(small_set: tuple[np.ndarray, np.ndarray]) -> None:
    seqs, y = small_set
    cfg = ControllerConfig(batch_size=16)  # with dropout: the RNG state must be saved and restored too

    def run(ctl: NAOController) -> np.ndarray:
        ctl.fit(seqs, y, epochs=3)
        return ctl.predict(seqs)

    a = NAOController(NB101Space(), cfg, seed=7, device="cpu")
    b = NAOController(NB101Space(), cfg, seed=7, device="cpu")
    pa, pb = run(a), run(b)
    np.testing.assert_array_equal(pa, pb)
    wa, wb = a.get_weights(), b.get_weights()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    c = NAOController(NB101Space(), cfg, seed=8, device="cpu")
    assert not np.array_equal(run(c), pa)

    # save after the first fit, restore into a fresh controller, continue: identical to uninterrupted
    state = a.state_dict()
    a.fit(seqs, y, epochs=2)
    resumed = NAOController(NB101Space(), cfg, seed=123, device="cpu")
    resumed.load_state_dict(state)
    resumed.fit(seqs, y, epochs=2)
    np.testing.assert_array_equal(resumed.predict(seqs), a.predict(seqs))
    rebuilt = NAOController.from_state_dict(NB101Space(), state, device="cpu")
    rebuilt.fit(seqs, y, epochs=2)
    np.testing.assert_array_equal(rebuilt.predict(seqs), a.predict(seqs))
    with pytest.raises(ValueError, match="config differs"):
        NAOController(NB101Space(), ControllerConfig(batch_size=32), device="cpu").load_state_dict(state)
    # the controller's RNGs are its own: fitting does not move PyTorch's global RNG
    before = torch.get_rng_state()
    a.fit(seqs[:8], y[:8], epochs=1)
    assert torch.equal(before, torch.get_rng_state())


def test_predict_with_weights_matches_predict(nb101: dict[str, np.ndarray], small_set) -> None:
    seqs, y = small_set
    ctl = NAOController(NB101Space(), ControllerConfig(batch_size=32), seed=1, device="cpu")
    ctl.fit(seqs, y, epochs=2)
    pool = nb101["seqs"][:3000]
    expected = ctl.predict(pool)
    weights = ctl.get_weights()
    assert all(isinstance(v, np.ndarray) for v in weights.values())
    got = predict_with_weights(NB101Space(), ctl.config.to_dict(), weights, pool)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)  # same maths; BLAS may round by alignment
    # chunk size does not matter beyond float rounding; neither does the (reference vs table-driven) LSTM path
    np.testing.assert_allclose(ctl.predict(pool, batch_size=700), expected, rtol=0, atol=1e-5)
    ref_cfg = ControllerConfig.from_dict({**ctl.config.to_dict(), "fast_inference": False})
    np.testing.assert_allclose(predict_with_weights((7, 27), ref_cfg, weights, pool), expected, rtol=0, atol=1e-5)
    # set_weights round-trip
    other = NAOController(NB101Space(), ControllerConfig(batch_size=32), seed=99, device="cpu")
    other.set_weights(weights)
    np.testing.assert_array_equal(other.predict(pool), expected)


def test_table_driven_inference_matches_reference_modules() -> None:
    torch.manual_seed(0)
    model = EPD(7, ControllerConfig(residual_scale=True)).eval()
    tokens = torch.randint(0, 7, (64, 27))
    with torch.no_grad():
        out_ref, emb_ref = model.encoder(tokens)
        out_fast, emb_fast = model.encoder.forward_fast(tokens)
        torch.testing.assert_close(out_fast, out_ref, rtol=0, atol=1e-5)
        torch.testing.assert_close(emb_fast, emb_ref, rtol=0, atol=1e-5)
        # greedy decoding agrees with the teacher-forced decoder fed its own output
        mask = torch.from_numpy(NB101Space().token_mask())
        greedy = model.decoder.greedy(emb_ref, out_ref, mask)
        dec_in = torch.cat([torch.zeros_like(greedy[:, :1]), greedy[:, :-1]], dim=1)
        log_probs = model.decoder(dec_in, emb_ref, out_ref)
        assert torch.equal(log_probs.masked_fill(~mask, float("-inf")).argmax(-1), greedy)


def test_works_for_nb201(nb201_csv_path: Path) -> None:
    import pandas as pd

    space = NB201Space()
    table = pd.read_csv(nb201_csv_path)
    rows = table.sample(150, random_state=0)
    seqs = np.stack([space.encode(space.parse(s)) for s in rows["cellstr"]])
    acc = rows["cifar10-val"].to_numpy(dtype=np.float64)
    y = (acc - acc.mean()) / acc.std()
    ctl = NAOController(space, ControllerConfig(**FAST_CFG), seed=0, device="cpu")
    assert ctl.model.decoder.out.out_features == space.vocab_size == 6
    mse0 = float(np.mean((ctl.predict(seqs) - y) ** 2))
    ctl.fit(seqs, y, epochs=40)
    pred = ctl.predict(seqs)
    assert float(np.mean((pred - y) ** 2)) < mse0 / 3
    assert kendalltau(pred, y)[0] > 0.6
    rec = ctl.reconstruct(seqs)
    assert (rec == seqs).all(axis=1).mean() > 0.85
    best = seqs[np.argsort(-pred)[:10]]
    res = ctl.generate(best, n_new=3, accept=lambda s: space.decode(s) is not None)
    assert res.n_accepted == 3 and all(len(s) == 6 for s in res.seqs)


def test_early_stopping_restores_best(small_set: tuple[np.ndarray, np.ndarray]) -> None:
    seqs, y = small_set
    up = np.tile(seqs, (3, 1))  # up-sampled copies: the split must keep each sequence on one side
    ctl = NAOController(NB101Space(), ControllerConfig(lr=5e-3, batch_size=32), seed=0, device="cpu")
    res = ctl.fit(up, np.tile(y, 3), epochs=40, early_stopping=EarlyStopping(valid_fraction=0.25, patience=3))
    assert res.best_valid is not None and res.best_epoch is not None
    assert res.n_train == 3 * 48  # 16 of 64 unique sequences held out, with all their copies
    valid_losses = [h["valid_loss"] for h in res.history]
    assert res.best_valid == min(valid_losses) and res.best_epoch == 1 + int(np.argmin(valid_losses))
    if res.stopped_early:
        assert res.epochs_run == res.best_epoch + 3 < 40


def test_config_dict_round_trip_and_unknown_key() -> None:
    cfg = ControllerConfig(hidden_size=16, mlp_hidden_size=64, output_activation="sigmoid", residual_scale=True)
    assert ControllerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown ControllerConfig key.*hiden_size"):
        ControllerConfig.from_dict({"hiden_size": 32})
    with pytest.raises(ValueError, match="output_activation"):
        ControllerConfig(output_activation="relu")
    assert ControllerConfig(lr_batch_scaling="linear", batch_size=400).effective_lr == pytest.approx(4e-3)
    with pytest.raises(dataclasses.FrozenInstanceError):  # a frozen value: nothing changes a config during a run
        cfg.batch_size = 32  # type: ignore[misc]
    with pytest.raises(ValueError, match="batch_size"):
        dataclasses.replace(cfg, batch_size=0)  # a replaced config is validated like a new one


def test_sigmoid_variant_and_bad_inputs() -> None:
    ctl = NAOController(NB201Space(), ControllerConfig(hidden_size=16, mlp_hidden_size=64,
                                                       output_activation="sigmoid", residual_scale=True),
                        seed=0, device="cpu")
    pred = ctl.predict(np.array([[1, 2, 3, 4, 5, 1]]))
    assert 0.0 < pred[0] < 1.0
    with pytest.raises(ValueError, match=r"shape \[N, 6\]"):
        ctl.predict(np.zeros((3, 27), dtype=np.int64))
    with pytest.raises(ValueError, match="outside"):
        ctl.predict(np.full((1, 6), 9))
    with pytest.raises(ValueError, match="targets"):
        ctl.fit(np.ones((2, 6), dtype=np.int64), np.ones(3), epochs=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_and_is_resumable(small_set: tuple[np.ndarray, np.ndarray]) -> None:
    seqs, y = small_set
    cfg = ControllerConfig(batch_size=16)
    gpu = NAOController(NB101Space(), cfg, seed=5, device="cuda")
    cpu = NAOController(NB101Space(), cfg, seed=5, device="cpu")
    np.testing.assert_allclose(gpu.predict(seqs), cpu.predict(seqs), rtol=0, atol=1e-4)  # same initial weights
    state = gpu.state_dict()
    gpu.fit(seqs, y, epochs=3)
    weights = gpu.get_weights()
    assert all(isinstance(v, np.ndarray) for v in weights.values())
    np.testing.assert_allclose(predict_with_weights(NB101Space(), cfg, weights, seqs, device="cpu"),
                               gpu.predict(seqs), rtol=0, atol=1e-4)
    again = NAOController(NB101Space(), cfg, seed=0, device="cuda")
    again.load_state_dict(state)
    again.fit(seqs, y, epochs=3)
    np.testing.assert_allclose(again.predict(seqs), gpu.predict(seqs), rtol=0, atol=1e-5)
    res = gpu.generate(seqs[:10], n_new=5, accept=lambda s: True)
    assert res.n_accepted == 5 and res.seed_indices == [0, 1, 2, 3, 4]
    mask = NB101Space().token_mask()
    assert mask[np.arange(27)[None, :], np.stack(res.seqs)].all()
    assert mask[np.arange(27)[None, :], gpu.reconstruct(seqs)].all()
