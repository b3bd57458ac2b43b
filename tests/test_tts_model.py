"""The TTS search space, the searchable Transformer-TTS model (ops, supernet, child) and its training/scoring code.

Real computation on small synthetic data: random tensors for shapes and causality, and a toy "alignment-learnable"
corpus (each character is a fixed random mel frame held for r frames) for training.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from seminas_ray.spaces.base import InvalidArchitecture
from seminas_ray.spaces.tts import LOW_RESOURCE_ARCH
from seminas_ray.spaces.tts import OP_TOKENS
from seminas_ray.spaces.tts import PAPER_ARCHS
from seminas_ray.spaces.tts import ROBUSTNESS_ARCH
from seminas_ray.spaces.tts import SA_HEADS
from seminas_ray.spaces.tts import TRANSFORMER_TTS_ARCH
from seminas_ray.spaces.tts import TTSArch
from seminas_ray.spaces.tts import TTSSpace
from seminas_ray.spaces.tts import op_param_count
from seminas_ray.spaces.tts import token_from_name
from seminas_ray.tasks.tts.model import ChildModel
from seminas_ray.tasks.tts.model import Supernet
from seminas_ray.tasks.tts.model import TTSModelConfig
from seminas_ray.tasks.tts.model import build_op
from seminas_ray.tasks.tts.model import count_parameters
from seminas_ray.tasks.tts.model import decoder_inputs
from seminas_ray.tasks.tts.model import preset
from seminas_ray.tasks.tts.training import alignment_errors
from seminas_ray.tasks.tts.training import collate
from seminas_ray.tasks.tts.training import diagonal_focus_rate
from seminas_ray.tasks.tts.training import make_batches
from seminas_ray.tasks.tts.training import make_optimizer
from seminas_ray.tasks.tts.training import make_scheduler
from seminas_ray.tasks.tts.training import noam_lr
from seminas_ray.tasks.tts.training import score_archs
from seminas_ray.tasks.tts.training import select_best_attention
from seminas_ray.tasks.tts.training import synthesize
from seminas_ray.tasks.tts.training import train_step
from seminas_ray.tasks.tts.training import train_steps
from seminas_ray.tasks.tts.training import uniform_arch_sampler
from seminas_ray.tasks.tts.training import word_spans

VOCAB = 12
CFG = TTSModelConfig(hidden=32, vocab_size=VOCAB, ffn_kernel=3, postnet_layers=2, postnet_channels=16,
                     prenet_hidden=16, lr_scale=1.0, warmup_steps=100)


@pytest.fixture(autouse=True)
def _one_thread():
    # tests stay small; one thread keeps them from fighting other jobs on a 2-core box
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(old)


def toy_corpus(n: int, seed: int, k: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each character id maps to a fixed random 80-dim frame held for ``k`` frames: the alignment is learnable."""
    rng = np.random.default_rng(seed)
    table = np.random.default_rng(123).standard_normal((VOCAB, 80)).astype(np.float32)
    items = []
    for _ in range(n):
        chars = rng.integers(2, VOCAB, size=int(rng.integers(4, 13)))
        items.append((chars, np.repeat(table[chars], k, axis=0)))
    return items


# ---------------------------------------------------------------------------------------------------------------
# space
# ---------------------------------------------------------------------------------------------------------------
def test_space_constants_and_tokens():
    space = TTSSpace()
    assert space.size == 11**12 and space.seq_len == 12 and space.vocab_size == 12
    for pos in range(12):
        assert space.allowed_tokens(pos) == tuple(range(1, 12))
    mask = space.token_mask()
    assert mask.shape == (12, 12) and not mask[:, 0].any() and mask[:, 1:].all()
    with pytest.raises(IndexError):
        space.allowed_tokens(12)


def test_space_key_parse_encode_round_trip():
    space = TTSSpace()
    rng = np.random.default_rng(0)
    archs = space.sample(rng, 200)
    assert len({space.key(a) for a in archs}) == 200  # uniform over 11^12: no collisions expected
    for arch in archs:
        key = space.key(arch)
        assert space.parse(key) == arch
        assert space.decode(space.encode(arch)) == arch
        assert space.from_config(space.to_config(arch)) == arch
        assert space.is_valid(arch) and space.is_valid(key)
    enc = space.encode_many(archs)
    assert enc.shape == (200, 12) and enc.dtype == np.int64 and enc.min() >= 1 and enc.max() <= 11
    # every op appears in every position over 200 draws (uniform sampling)
    assert all(len(set(enc[:, p])) == 11 for p in range(12))


def test_space_rejects_malformed():
    space = TTSSpace()
    assert space.decode([0] * 12) is None
    assert space.decode([12] + [1] * 11) is None
    assert space.decode([1] * 11) is None
    for bad in ("1 2 3", "1 2 3 4 5 6 | 1 2 3 4 5", "1 2 3 4 5 6 | 7 8 9 10 11 12", "a b c d e f | 1 2 3 4 5 6",
                "1 2 | 3 4 | 5 6"):
        with pytest.raises(InvalidArchitecture):
            space.parse(bad)
        assert not space.is_valid(bad)
    with pytest.raises(InvalidArchitecture):
        TTSArch((1, 2, 3, 4, 5, 6), (1, 2, 3, 4, 5, 0))
    with pytest.raises(InvalidArchitecture):
        space.from_config({"cell": "x"})


def test_space_mutate_changes_exactly_one_layer():
    space = TTSSpace()
    rng = np.random.default_rng(1)
    for arch in space.sample(rng, 50):
        child = space.mutate(arch, rng)
        diff = [a != b for a, b in zip(arch.tokens, child.tokens)]
        assert sum(diff) == 1 and space.key(child) != space.key(arch)


def test_paper_archs():
    space = TTSSpace()
    assert space.key(LOW_RESOURCE_ARCH) == "10 10 4 3 6 3 | 9 2 4 2 11 6"
    assert space.describe(LOW_RESOURCE_ARCH) == (
        "enc: SA8 SA8 conv13 conv9 conv21 conv9 | dec: SA4 conv5 conv13 conv5 LSTM conv21"
    )
    assert space.key(ROBUSTNESS_ARCH) == "8 6 3 2 11 7 | 9 1 4 11 6 2"
    assert set(TRANSFORMER_TTS_ARCH.tokens) <= set(SA_HEADS)  # self-attention everywhere
    assert set(PAPER_ARCHS.values()) == {LOW_RESOURCE_ARCH, ROBUSTNESS_ARCH, TRANSFORMER_TTS_ARCH}
    # no bar: 12 bare tokens parse too, and names map back to tokens
    assert space.parse("10 10 4 3 6 3 9 2 4 2 11 6") == LOW_RESOURCE_ARCH
    assert [token_from_name(n) for n in ("conv1", "conv25", "SA2", "sa8", "LSTM")] == [1, 7, 8, 10, 11]


@pytest.mark.parametrize("ffn_kernel", [1, 9])
def test_cost_matches_model_parameter_counts(ffn_kernel):
    cfg = TTSModelConfig(hidden=32, ffn_kernel=ffn_kernel)
    for tok, pos in itertools.product(OP_TOKENS, ("encoder", "decoder")):
        assert op_param_count(tok, pos, 32, ffn_kernel) == count_parameters(build_op(tok, pos, cfg)), (tok, pos)
    space = TTSSpace(hidden=32, ffn_kernel=ffn_kernel)
    child = ChildModel(LOW_RESOURCE_ARCH, cfg)
    layer_params = sum(count_parameters(m) for m in list(child.encoder) + list(child.decoder))
    assert space.cost(LOW_RESOURCE_ARCH)["params_layers"] == layer_params


# ---------------------------------------------------------------------------------------------------------------
# ops
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("token", OP_TOKENS)
def test_every_op_forward_backward_shapes(token):
    c = CFG.hidden
    enc = build_op(token, "encoder", CFG)
    x = torch.randn(3, 9, c, requires_grad=True)
    padding = torch.zeros(3, 9, dtype=torch.bool)
    padding[1, 6:] = True
    y = enc(x, padding)
    assert y.shape == x.shape and torch.all(y[1, 6:] == 0)
    y.sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in enc.parameters())

    dec = build_op(token, "decoder", CFG)
    q = torch.randn(3, 7, c, requires_grad=True)
    memory = torch.randn(3, 9, c)
    out, w = dec(q, memory, padding)
    heads = SA_HEADS.get(token, 1)
    assert out.shape == q.shape and w.shape == (3, heads, 7, 9)
    assert torch.allclose(w.sum(-1), torch.ones(3, heads, 7), atol=1e-5)
    assert torch.all(w[1, :, :, 6:] == 0)  # never attends to padding
    out.sum().backward()
    assert q.grad is not None and all(p.grad is not None for p in dec.parameters())


@pytest.mark.parametrize("token", OP_TOKENS)
def test_decoder_ops_are_causal(token):
    dec = build_op(token, "decoder", CFG).eval()
    x = torch.randn(2, 12, CFG.hidden)
    memory = torch.randn(2, 5, CFG.hidden)
    padding = torch.zeros(2, 5, dtype=torch.bool)
    x2 = x.clone()
    x2[:, 7:] = torch.randn(2, 5, CFG.hidden) * 3
    y1, w1 = dec(x, memory, padding)
    y2, w2 = dec(x2, memory, padding)
    assert torch.allclose(y1[:, :7], y2[:, :7], atol=1e-5)
    assert torch.allclose(w1[:, :, :7], w2[:, :, :7], atol=1e-5)
    assert not torch.allclose(y1[:, 7:], y2[:, 7:])


@pytest.mark.parametrize("token", OP_TOKENS)
def test_encoder_ops_ignore_padding(token):
    enc = build_op(token, "encoder", CFG).eval()
    x = torch.randn(1, 6, CFG.hidden)
    alone = enc(x, torch.zeros(1, 6, dtype=torch.bool))
    padded_x = torch.cat([x, torch.randn(1, 4, CFG.hidden)], dim=1)
    padding = torch.zeros(1, 10, dtype=torch.bool)
    padding[0, 6:] = True
    padded = enc(padded_x, padding)
    assert torch.allclose(alone, padded[:, :6], atol=1e-5)


def test_full_model_is_causal_in_the_mel_input():
    cfg = TTSModelConfig(**{**CFG.to_dict(), "prenet_dropout_at_inference": False, "postnet_layers": 0})
    torch.manual_seed(1)
    net = Supernet(cfg).eval()
    chars = torch.randint(2, VOCAB, (2, 8))
    mels = torch.randn(2, 30, 80)
    mels2 = mels.clone()
    mels2[:, 14:] = torch.randn(2, 16, 80)  # frames 14+ feed decoder steps 5+ (step s sees frame s*3-1)
    for arch in (LOW_RESOURCE_ARCH, ROBUSTNESS_ARCH, TRANSFORMER_TTS_ARCH, "11 11 11 11 11 11 | 11 11 11 11 11 11",
                 "7 7 7 7 7 7 | 7 7 7 7 7 7"):
        with torch.no_grad():
            a = net(chars, mels, arch)
            b = net(chars, mels2, arch)
        assert torch.allclose(a.mel[:, :15], b.mel[:, :15], atol=1e-5), arch
        assert torch.allclose(a.stop_logits[:, :15], b.stop_logits[:, :15], atol=1e-5), arch
        assert not torch.allclose(a.mel[:, 15:], b.mel[:, 15:]), arch


def test_decoder_inputs_shift_by_one_group():
    mels = torch.arange(2 * 7 * 1, dtype=torch.float32).view(2, 7, 1)
    inp = decoder_inputs(mels, 3)  # 7 frames -> 3 steps: GO, frame 2, frame 5
    assert inp.shape == (2, 3, 1)
    assert inp[0, :, 0].tolist() == [0.0, 2.0, 5.0]


# ---------------------------------------------------------------------------------------------------------------
# supernet and child
# ---------------------------------------------------------------------------------------------------------------
def test_child_from_supernet_matches_supernet_path():
    torch.manual_seed(2)
    net = Supernet(CFG)
    # one training step so the shared weights are not at their init
    batch = collate(toy_corpus(4, 0), CFG.r)
    opt = make_optimizer(net, CFG)
    train_step(net, batch, ROBUSTNESS_ARCH, opt, None, CFG)
    child = ChildModel.from_supernet(net, ROBUSTNESS_ARCH)
    assert count_parameters(child) < count_parameters(net)
    assert count_parameters(child) == count_parameters(net, net.path_parameter_names(ROBUSTNESS_ARCH))
    net.eval()
    child.eval()
    torch.manual_seed(5)
    a = net(batch["chars"], batch["mels"], ROBUSTNESS_ARCH, text_lens=batch["text_lens"])
    torch.manual_seed(5)  # the prenet dropout stays on at inference: same seed -> same masks
    b = child(batch["chars"], batch["mels"], text_lens=batch["text_lens"])
    assert torch.allclose(a.mel_post, b.mel_post, atol=1e-5)
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a.attn, b.attn))
    with pytest.raises(KeyError):
        child(batch["chars"], batch["mels"], LOW_RESOURCE_ARCH)


def test_single_path_training_touches_only_the_chosen_ops():
    net = Supernet(CFG)
    opt = make_optimizer(net, CFG)
    batch = collate(toy_corpus(4, 0), CFG.r)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    train_step(net, batch, LOW_RESOURCE_ARCH, opt, None, CFG)
    on_path = net.path_parameter_names(LOW_RESOURCE_ARCH)
    for name, p in net.named_parameters():
        if name in on_path:
            assert p.grad is not None, name
        else:
            assert p.grad is None, name
            assert torch.equal(p, before[name]), name  # no update, no weight decay off the path
    changed = [n for n in on_path if not torch.equal(dict(net.named_parameters())[n], before[n])]
    assert len(changed) > 0.9 * len(on_path)


def test_toy_training_raises_dfr_and_lowers_loss():
    torch.manual_seed(0)
    cfg = CFG
    net = Supernet(cfg)
    space = TTSSpace()
    pool = space.sample(np.random.default_rng(0), 3)
    train = make_batches(toy_corpus(72, 0), cfg.r, batch_size=12, rng=np.random.default_rng(0))
    valid = make_batches(toy_corpus(24, 1), cfg.r, batch_size=12)
    before = score_archs(net, pool, valid, cfg)
    opt = make_optimizer(net, cfg)
    sched = make_scheduler(opt, cfg)
    summary = train_steps(net, train, 120, opt, sched, cfg, arch_sampler=uniform_arch_sampler(pool, seed=0))
    assert summary["steps"] == 120
    after = score_archs(net, pool, valid, cfg)
    for b, a in zip(before, after):
        assert 0.0 <= b["dfr"] <= 1.0 and 0.0 <= a["dfr"] <= 1.0
        assert a["dfr"] > b["dfr"] + 0.3, (b, a)
        assert a["loss"] < 0.75 * b["loss"], (b, a)
        assert a["loss_mel"] < b["loss_mel"]
    # scoring is deterministic (seeded prenet dropout) and leaves the global RNG alone
    state = torch.get_rng_state()
    again = score_archs(net, pool, valid, cfg)
    assert torch.equal(state, torch.get_rng_state())
    assert [a["dfr"] for a in again] == [a["dfr"] for a in after]


# ---------------------------------------------------------------------------------------------------------------
# inference and metrics
# ---------------------------------------------------------------------------------------------------------------
def test_synthesize_stops_on_the_stop_token_and_respects_max_frames():
    net = ChildModel(LOW_RESOURCE_ARCH, CFG)
    chars = torch.randint(2, VOCAB, (2, 6))
    with torch.no_grad():
        net.stop_proj.bias.fill_(-50.0)  # never stops
    res = synthesize(net, None, chars, max_frames=17)
    assert res.stop_steps == [None, None] and res.lengths == [17, 17]
    assert res.mels.shape == (2, 17, 80) and res.n_steps == [6, 6]
    assert res.attn[0].shape == (6, 6)
    with torch.no_grad():
        net.stop_proj.bias.fill_(-50.0)
        net.stop_proj.bias[1] = 50.0  # fires at the 2nd frame of the first step
    res = synthesize(net, None, chars, max_frames=60)
    assert res.stop_steps == [0, 0] and res.lengths == [2, 2] and res.mels.shape[1] == 2
    one = synthesize(net, None, chars[0], max_frames=60)  # a single 1-D text works too
    assert one.lengths == [2]


def test_diagonal_focus_rate_and_head_selection():
    s, l_ = 30, 20
    diag = torch.zeros(1, s, l_)
    diag[0, torch.arange(s), (torch.arange(s) * l_) // s] = 1.0
    uniform = torch.full((1, s, l_), 1.0 / l_)
    lens, steps = torch.tensor([l_]), torch.tensor([s])
    assert diagonal_focus_rate(diag, lens, steps).item() == pytest.approx(1.0)
    u = diagonal_focus_rate(uniform, lens, steps).item()
    assert 0.3 < u < 0.5  # band |l - k s| <= k*min(S/5, 50) = 4 characters either side
    # the most focused of several heads/layers is chosen
    layer1 = torch.stack([uniform[0], uniform[0]])[None]  # [1, 2, S, L]
    layer2 = torch.stack([uniform[0], diag[0]])[None]
    best = select_best_attention([layer1, layer2], lens, steps)
    assert torch.equal(best, diag)


def _alignment_from_path(path: list[int], n_chars: int) -> torch.Tensor:
    """One-hot alignment: step s attends only to character path[s]."""
    a = torch.zeros(len(path), n_chars)
    a[torch.arange(len(path)), torch.tensor(path)] = 1.0
    return a


def test_alignment_errors_flags_skips_repeats_and_jumps():
    n = 20
    # a clean diagonal, ~2 steps per character
    clean = _alignment_from_path([i // 2 for i in range(2 * n)], n)
    res = alignment_errors(clean)
    assert res["ok"] and res["skipped"] == [] and res["repeats"] == 0 and res["jumps"] == 0
    assert res["coverage"] == [1.0] * n and len(res["centroid"]) == 2 * n

    # characters 8..13 (a word) never attended: the centroid jumps 7 characters in one step
    path = [i // 2 for i in range(16)] + [14 + i // 2 for i in range(12)]  # 0..7, then 14..19
    skipping = _alignment_from_path(path, n)
    res = alignment_errors(skipping)
    assert not res["ok"] and res["skipped"] == list(range(8, 14)) and res["jumps"] == 1 and res["repeats"] == 0
    words = [(0, 4), (5, 8), (8, 14), (15, 20)]  # as word_spans would give with separators at 4 and 14
    res = alignment_errors(skipping, words=words)
    assert res["skipped"] == [2] and res["n_skipped"] == 1
    # one silent letter inside a word is not a skipped word
    one_letter = _alignment_from_path([i // 2 for i in range(2 * n) if i // 2 != 10], n)
    assert alignment_errors(one_letter)["skipped"] == [10]
    assert alignment_errors(one_letter, words=words)["ok"]

    # read to character 11, fall back to 4 and read on: one repeat episode; the end (16..19) is never reached
    path = [i // 2 for i in range(24)] + [4 + i // 2 for i in range(24)]
    repeating = _alignment_from_path(path, n)
    res = alignment_errors(repeating)
    assert not res["ok"] and res["repeats"] == 1 and res["skipped"] == [16, 17, 18, 19]
    assert alignment_errors(repeating, back_tolerance=8.0)["repeats"] == 0
    with pytest.raises(ValueError):
        alignment_errors(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError):
        alignment_errors(clean, words=[(0, 30)])


def test_word_spans():
    space, comma, eos = 2, 8, 1
    ids = [20, 21, space, 22, comma, space, 23, 24, 25, eos]
    assert word_spans(ids, [space, comma, eos]) == [(0, 2), (3, 4), (6, 9)]
    assert word_spans(np.array([20, 21]), [space]) == [(0, 2)]
    assert word_spans([space, space], [space]) == []


def test_collate_and_batching():
    items = toy_corpus(10, 3)
    batch = collate(items[:3], r=3)
    lens = [len(m) for _, m in items[:3]]
    assert batch["mels"].shape[1] % 3 == 0 and batch["mels"].shape[1] >= max(lens)
    assert batch["mel_lens"].tolist() == lens
    assert batch["stop"].sum().item() == 3 and all(batch["stop"][i, n - 1] == 1 for i, n in enumerate(lens))
    assert batch["text_lens"].tolist() == [len(c) for c, _ in items[:3]]
    batches = make_batches(items, r=3, batch_size=4, max_frames=60)
    assert sum(b["chars"].shape[0] for b in batches) == 10
    assert all(b["chars"].shape[0] * b["mels"].shape[1] <= 60 + 3 * b["chars"].shape[0] for b in batches)
    with pytest.raises(ValueError):
        collate([(np.zeros((0,), np.int64), np.zeros((3, 80), np.float32))], r=3)


def test_noam_schedule_and_presets():
    assert noam_lr(4000, 256) == pytest.approx(2.0 * 4000**-0.5 * 256**-0.5)
    assert noam_lr(2000, 256) == pytest.approx(noam_lr(4000, 256) / 2)
    assert noam_lr(16000, 256) == pytest.approx(noam_lr(4000, 256) / 2)
    # the scheduler follows noam_lr from step 1, and from start_step + 1 when resuming
    cfg = preset("default")
    for start in (0, 500):
        param = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.AdamW([param], lr=1.0)
        sched = make_scheduler(opt, cfg, start_step=start)
        for k in range(1, 4):
            assert opt.param_groups[0]["lr"] == pytest.approx(noam_lr(start + k, cfg.hidden, cfg.lr_scale,
                                                                      cfg.warmup_steps))
            opt.step()
            sched.step()
    assert preset("paper_final").hidden == 256 and preset("paper_search").hidden == 64
    assert preset("default", vocab_size=40).vocab_size == 40
    cfg = preset("smoke")
    assert TTSModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        TTSModelConfig.from_dict({"hidden": 32, "bogus": 1})
