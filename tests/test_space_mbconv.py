"""The ``mbconv`` space's own facts: exact costs against a real PyTorch network, the paper's numbers, the
no-skip-at-a-stage-start rule everywhere, and the FLOPs budget in sampling and mutation.

Costs are checked against ``torch.utils.flop_counter.FlopCounterMode`` (which counts 2 FLOPs per multiply-add of
convolutions and matrix products, and nothing for BatchNorm, activations, pooling or additions) and against
``sum(p.numel())`` on the network built by ``seminas_ray.tasks.imagenet.mbconv_net.build_network``.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from seminas_ray.spaces import InvalidArchitecture
from seminas_ray.spaces import make_space
from seminas_ray.spaces.mbconv import ALL_K3E6
from seminas_ray.spaces.mbconv import N_LAYERS
from seminas_ray.spaces.mbconv import PAPER_FLOPS_BUDGET
from seminas_ray.spaces.mbconv import SEMINASNET
from seminas_ray.spaces.mbconv import SKIP
from seminas_ray.spaces.mbconv import STAGE_STARTS
from seminas_ray.spaces.mbconv import MBConvArch
from seminas_ray.spaces.mbconv import MBConvSpace
from seminas_ray.spaces.mbconv import make_divisible
from seminas_ray.spaces.mbconv import parse_arch
from seminas_ray.spaces.mbconv import scaled_budget
from seminas_ray.tasks.imagenet.mbconv_net import build_network

CHEAPEST = MBConvArch(tuple(1 if i in STAGE_STARTS else SKIP for i in range(N_LAYERS)))
DEAREST = MBConvArch((6,) * N_LAYERS)


def _torch_cost(space: MBConvSpace, arch: MBConvArch) -> tuple[int, int]:
    """(FlopCounterMode FLOPs, parameter count) of the real network on one image."""
    net = build_network(arch, space).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        logits = net(torch.randn(1, 3, space.resolution, space.resolution))
    assert logits.shape == (1, space.n_classes)
    return counter.get_total_flops(), sum(p.numel() for p in net.parameters())


# -- exact costs against PyTorch -----------------------------------------------------------------------------
@pytest.mark.parametrize("settings", [
    {"width_mult": 0.5, "resolution": 64, "n_classes": 10},
    {"width_mult": 0.35, "resolution": 57, "n_classes": 10},  # odd sizes: ceil(h / stride) at every stride
    {"width_mult": 1.3, "resolution": 33, "n_classes": 7},  # head grows above width 1; 33 -> 17 -> 9 -> 5 -> 3 -> 2
    {"net": "final", "width_mult": 0.5, "resolution": 40, "n_classes": 100},
])
def test_cost_equals_pytorch_at_small_sizes(settings: dict) -> None:
    torch.manual_seed(0)
    space = MBConvSpace(**settings)
    archs = [ALL_K3E6, SEMINASNET, CHEAPEST, DEAREST, *space.sample(np.random.default_rng(0), 3)]
    for arch in archs:
        flops, params = _torch_cost(space, arch)
        cost = space.cost(arch)
        assert flops == 2 * cost["flops"], space.describe(arch)  # FlopCounterMode counts a multiply-add as 2
        assert params == cost["params"], space.describe(arch)


@pytest.mark.parametrize("net", ["search", "final"])
def test_cost_equals_pytorch_at_224(net: str) -> None:
    space = MBConvSpace(net=net)
    for arch in (ALL_K3E6, SEMINASNET):
        flops, params = _torch_cost(space, arch)
        assert (flops, params) == (2 * space.cost(arch)["flops"], space.cost(arch)["params"])


def test_paper_numbers_at_224() -> None:
    # SemiNASNet in the final widths: the paper's 599M FLOPs (multiply-adds) and 6.32M parameters
    assert MBConvSpace(net="final").cost(SEMINASNET) == {"flops": 598_952_544, "params": 6_319_360}
    search = MBConvSpace()
    assert search.cost(ALL_K3E6) == {"flops": 472_620_800, "params": 4_684_776}
    assert search.cost(CHEAPEST) == {"flops": 102_528_896, "params": 2_154_984}
    assert search.cost(DEAREST) == {"flops": 606_590_720, "params": 5_103_336}
    assert (search.min_flops, search.max_flops) == (102_528_896, 606_590_720)


def test_width_rounding_follows_proxylessnas() -> None:
    assert [make_divisible(v) for v in (12, 20, 33.6, 134.4, 4)] == [16, 24, 32, 136, 8]
    half = MBConvSpace(width_mult=0.5)
    assert (half.widths.stem, half.widths.first, half.widths.stages, half.widths.head) == (
        16, 8, (16, 24, 40, 48, 96, 160), 1280)  # the head never shrinks below 1280
    assert MBConvSpace(width_mult=1.4).widths.head == 1792


# -- cost_many ---------------------------------------------------------------------------------------------------
def test_cost_many_equals_cost_and_is_fast() -> None:
    space = MBConvSpace(resolution=160, width_mult=0.75)
    archs = space.sample(np.random.default_rng(3), 500)
    many = space.cost_many(archs)
    assert many["flops"].dtype == np.int64 and many["params"].shape == (500,)
    for i, arch in enumerate(archs):
        assert space.cost(arch) == {"flops": int(many["flops"][i]), "params": int(many["params"][i])}
    from_tokens = space.cost_many(space.encode_many(archs))
    assert all(np.array_equal(from_tokens[k], many[k]) for k in many)
    assert space.cost_many([])["flops"].shape == (0,)
    tokens = space.sample_tokens(np.random.default_rng(4), 200_000)
    start = time.perf_counter()
    space.cost_many(tokens)
    assert 200_000 / (time.perf_counter() - start) > 50_000  # millions per second when the machine is idle


# -- no skip at a stage start --------------------------------------------------------------------------------
def test_stage_starts_are_never_skipped() -> None:
    space = MBConvSpace()
    assert STAGE_STARTS == (0, 4, 8, 12, 16, 20)
    mask = space.token_mask()
    assert not mask[list(STAGE_STARTS), SKIP].any() and mask[[1, 2, 3, 19], SKIP].all()
    tokens = space.sample_tokens(np.random.default_rng(0), 20_000)
    assert (tokens[:, list(STAGE_STARTS)] != SKIP).all() and (tokens == SKIP).any()
    assert all(space.decode([SKIP if i == s else 2 for i in range(N_LAYERS)]) is None for s in STAGE_STARTS)
    with pytest.raises(InvalidArchitecture, match="starts a stage"):
        parse_arch("7 " + "2 " * 20)
    rng = np.random.default_rng(1)
    arch = CHEAPEST
    for _ in range(2000):
        arch = space.mutate(arch, rng)
        assert SKIP not in [arch.tokens[s] for s in STAGE_STARTS]


def test_keys_names_and_configs() -> None:
    space = make_space("mbconv")
    assert space.key(SEMINASNET) == "6 5 1 7 4 2 5 3 5 2 5 3 3 5 7 3 1 6 3 3 6"
    assert space.describe(SEMINASNET).split()[:4] == ["k7e6", "k7e3", "k3e3", "skip"]
    assert parse_arch(space.describe(SEMINASNET)) == SEMINASNET
    assert space.from_config(space.to_config(SEMINASNET)) == SEMINASNET
    for bad in ("6 5 1", "6 5 1 7 4 2 5 3 5 2 5 3 3 5 7 3 1 6 3 3 8", "k9e6 " * 21, {"arch": 5}):
        with pytest.raises(InvalidArchitecture):
            space.from_config(bad if isinstance(bad, dict) else {"arch": bad})
    assert space.size == 6**6 * 7**15


# -- the FLOPs budget ------------------------------------------------------------------------------------------
def test_budget_binds_sampling_and_mutation() -> None:
    space = MBConvSpace(flops_budget=250_000_000)
    archs = space.sample(np.random.default_rng(0), 3000)
    flops = space.cost_many(archs)["flops"]
    assert flops.max() <= 250_000_000 and flops.max() > 245_000_000
    assert len({a.tokens for a in archs}) == 3000 and all(space.within_budget(a) for a in archs)
    rng = np.random.default_rng(1)
    for parent in archs[:300]:
        child = space.mutate(parent, rng)
        assert child != parent and space.within_budget(child)
    assert not space.within_budget(ALL_K3E6) and MBConvSpace().within_budget(DEAREST)


def test_budget_sampling_is_uniform_over_the_feasible_archs() -> None:
    # the counting sampler must match plain rejection from the uniform space, position by position
    budget = 330_000_000
    space, free = MBConvSpace(flops_budget=budget), MBConvSpace()
    rng = np.random.default_rng(7)
    exact = space.sample_tokens(rng, 40_000)
    pool = free.sample_tokens(rng, 400_000)  # about 13% of the space is within this budget
    reject = pool[free.cost_many(pool)["flops"] <= budget][:40_000]
    assert len(reject) == 40_000
    for pos in range(N_LAYERS):
        p = np.bincount(exact[:, pos], minlength=8) / len(exact)
        q = np.bincount(reject[:, pos], minlength=8) / len(reject)
        assert np.abs(p - q).max() < 0.012, (pos, p, q)  # > 4 standard deviations
    assert abs(space.cost_many(exact)["flops"].mean() - free.cost_many(reject)["flops"].mean()) < 1e6


def test_tight_and_too_small_budgets() -> None:
    cheapest = MBConvSpace().min_flops
    tight = MBConvSpace(flops_budget=cheapest)
    assert {a.tokens for a in tight.sample(np.random.default_rng(0), 5)} == {CHEAPEST.tokens}
    with pytest.raises(ValueError, match="no single-layer change"):
        tight.mutate(CHEAPEST, np.random.default_rng(0))
    with pytest.raises(ValueError, match=f"below the cheapest architecture \\({cheapest:,} multiply-adds"):
        MBConvSpace(flops_budget=cheapest - 1)


def test_scaled_budget() -> None:
    assert scaled_budget(PAPER_FLOPS_BUDGET, 224) == 600_000_000
    assert scaled_budget(PAPER_FLOPS_BUDGET, 128) == 195_918_367
    full = MBConvSpace(net="final").cost(SEMINASNET)["flops"]
    for resolution in (96, 128, 160, 192):  # multiples of 32: every feature map scales exactly
        ratio = MBConvSpace(net="final", resolution=resolution).cost(SEMINASNET)["flops"] / full
        assert 0 < ratio - (resolution / 224) ** 2 < 0.003  # the classifier's MACs do not scale
    odd = MBConvSpace(net="final", resolution=112).cost(SEMINASNET)["flops"] / full
    assert 0.27 < odd < 0.28  # 7x7 maps become 4x4, not 3.5x3.5
    small = MBConvSpace(resolution=128, flops_budget=scaled_budget(PAPER_FLOPS_BUDGET, 128))
    assert all(small.within_budget(a) for a in small.sample(np.random.default_rng(0), 10))
