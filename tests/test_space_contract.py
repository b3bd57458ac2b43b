"""The search-space contract, checked once for every space of the registry (Optuna-style sampler contract tests).

Every layer above the spaces (controller, pseudo-labelling, optimizers, Tune searcher) relies only on this
protocol, so it is tested generically here: a space added to ``seminas_ray.spaces.SPACES`` is covered by this
module without a new test (add constructor arguments to ``_BUILD_KWARGS`` only if building it with the defaults
is slow). Space-specific facts (known hashes, enumeration counts, exact token layouts) stay in
``test_space_<name>.py``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from typing import Callable

import numpy as np
import pytest

from seminas_ray.benchmarks.loading import load_table
from seminas_ray.spaces import SPACES
from seminas_ray.spaces import InvalidArchitecture
from seminas_ray.spaces import SearchSpace
from seminas_ray.spaces import make_space
from seminas_ray.spaces.nb101_arrays import NB101Arrays

N_SAMPLES = 60
RESTRICTED_NB101 = "nasbench101[20k slice]"


def _nb101_slice_pool(subset_path: Path) -> dict[str, Any]:
    # The default NB101 space samples from the 423,624-cell enumeration (built in ~20 s when not cached); drawing
    # from the 20k slice instead keeps this module fast and leaves keys, encoding and validity those of the full space.
    with np.load(subset_path) as npz:
        return {"enumeration": NB101Arrays(npz["hash"], npz["n_vertices"], npz["adjacency"], npz["labels"])}


#: Constructor arguments per registry name, for spaces whose default construction is slow.
_BUILD_KWARGS: dict[str, Callable[[Path], dict[str, Any]]] = {"nasbench101": _nb101_slice_pool}

#: Every registry space, plus NB101 restricted to the members of the 20k table slice.
CASES = sorted(SPACES) + [RESTRICTED_NB101]


@pytest.fixture(scope="module", params=CASES)
def case(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def space(case: str, nb101_subset_path: Path) -> SearchSpace:
    if case == RESTRICTED_NB101:
        return load_table(nb101_subset_path).restricted_space()
    build = _BUILD_KWARGS.get(case)
    return make_space(case, **(build(nb101_subset_path) if build else {}))


@pytest.fixture(scope="module")
def archs(space: SearchSpace) -> list[Any]:
    return space.sample(np.random.default_rng(0), N_SAMPLES)


def _keys(space: SearchSpace, archs: list[Any]) -> list[str]:
    return [space.key(a) for a in archs]


def test_attributes(case: str, space: SearchSpace) -> None:
    if case in SPACES:
        assert space.name == case  # the registry name is the space's own name
    assert isinstance(space.name, str) and space.name
    assert isinstance(space.vocab_size, int) and space.vocab_size >= 2  # token 0 (SOS/pad) plus at least one token
    assert isinstance(space.seq_len, int) and space.seq_len >= 1


# -- sampling and mutation ---------------------------------------------------------------------------------
def test_sampled_archs_are_valid_and_distinct(space: SearchSpace, archs: list[Any]) -> None:
    assert len(archs) == N_SAMPLES
    assert all(space.is_valid(a) for a in archs)
    keys = _keys(space, archs)
    assert all(isinstance(k, str) and k for k in keys)
    assert len(set(keys)) == N_SAMPLES  # spaces far larger than the sample: no duplicates


def test_seeded_sampling_is_reproducible(space: SearchSpace, archs: list[Any]) -> None:
    assert _keys(space, space.sample(np.random.default_rng(0), N_SAMPLES)) == _keys(space, archs)
    assert _keys(space, space.sample(np.random.default_rng(1), N_SAMPLES)) != _keys(space, archs)


def test_mutate_changes_the_key_and_stays_valid(space: SearchSpace, archs: list[Any]) -> None:
    rng = np.random.default_rng(1)
    children = [space.mutate(a, rng) for a in archs[:30]]
    for parent, child in zip(archs, children):
        assert space.is_valid(child)
        assert space.key(child) != space.key(parent)
    again = [space.mutate(a, np.random.default_rng(1)) for a in archs[:5]]
    assert _keys(space, again) == _keys(space, [space.mutate(a, np.random.default_rng(1)) for a in archs[:5]])


# -- encoding ----------------------------------------------------------------------------------------------
def test_encode_shape_dtype_and_range(space: SearchSpace, archs: list[Any]) -> None:
    for arch in archs:
        tokens = space.encode(arch)
        assert tokens.shape == (space.seq_len,) and tokens.dtype == np.int64
        assert ((tokens >= 0) & (tokens < space.vocab_size)).all()
    many = space.encode_many(archs)
    assert many.shape == (N_SAMPLES, space.seq_len) and many.dtype == np.int64
    assert np.array_equal(many, np.stack([space.encode(a) for a in archs]))
    assert space.encode_many([]).shape == (0, space.seq_len)


def test_decode_of_encode_preserves_the_key(space: SearchSpace, archs: list[Any]) -> None:
    for arch in archs:
        decoded = space.decode(space.encode(arch))
        assert decoded is not None and space.is_valid(decoded)
        assert space.key(decoded) == space.key(arch)


def test_decode_returns_none_for_garbage(space: SearchSpace) -> None:
    n, v = space.seq_len, space.vocab_size
    for tokens in ([0] * n, [v] * n, [1] * (n + 1), [], "not tokens"):
        assert space.decode(tokens) is None


def test_token_mask_matches_allowed_tokens(space: SearchSpace, archs: list[Any]) -> None:
    mask = space.token_mask()
    assert mask.shape == (space.seq_len, space.vocab_size) and mask.dtype == bool
    for pos in range(space.seq_len):
        allowed = space.allowed_tokens(pos)
        assert allowed and 0 not in allowed  # token 0 is SOS/pad, never emitted
        assert sorted(np.flatnonzero(mask[pos]).tolist()) == sorted(allowed)
    with pytest.raises(IndexError):
        space.allowed_tokens(space.seq_len)
    for tokens in space.encode_many(archs):
        # only allowed tokens, except the trailing pad of a short cell (NB101 zero-fills after the output column)
        used = np.flatnonzero(tokens)
        end = int(used[-1]) + 1 if used.size else 0
        assert mask[np.arange(end), tokens[:end]].all(), tokens.tolist()


# -- identity and configs ----------------------------------------------------------------------------------
def test_config_round_trip(space: SearchSpace, archs: list[Any]) -> None:
    for arch in archs:
        config = space.to_config(arch)
        assert json.loads(json.dumps(config)) == config  # JSON-able as it is (Tune configs, result files)
        rebuilt = space.from_config(config)
        assert space.key(rebuilt) == space.key(arch)
        assert space.to_config(rebuilt) == config


def _malformed_configs(config: dict[str, Any]) -> list[Any]:
    """Non-dicts, missing and renamed entries, and each entry replaced by junk of other types."""
    out: list[Any] = [None, [], "garbage", 42, {}]
    for name, value in config.items():
        rest = {k: v for k, v in config.items() if k != name}
        out += [rest, {**rest, f"{name}_typo": value}]
        out += [{**config, name: junk} for junk in (None, 12345, "garbage", [], [[1, 2], [3]])]
        if isinstance(value, str):
            out.append({**config, name: value + " 99 |x"})
    return out


def test_malformed_configs_raise_invalid_architecture(space: SearchSpace, archs: list[Any]) -> None:
    for bad in _malformed_configs(space.to_config(archs[0])):
        with pytest.raises(InvalidArchitecture):
            space.from_config(bad)


def test_is_valid_never_raises(space: SearchSpace) -> None:
    for junk in (None, 42, "garbage", [], {"x": 1}, np.zeros(3)):
        assert space.is_valid(junk) is False
