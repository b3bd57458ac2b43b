"""NAS-Bench-201 space specifics: the 15,625 cells, cell strings, token values, uniformity, one-edge mutation,
restriction (the generic space contract is in ``test_space_contract.py``)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from seminas_ray.spaces.base import InvalidArchitecture
from seminas_ray.spaces.nasbench201 import N_CELLS
from seminas_ray.spaces.nasbench201 import OPS
from seminas_ray.spaces.nasbench201 import NB201Cell
from seminas_ray.spaces.nasbench201 import NB201Space
from seminas_ray.spaces.nasbench201 import all_cells
from seminas_ray.spaces.nasbench201 import cell_from_index
from seminas_ray.spaces.nasbench201 import parse_cell
from seminas_ray.spaces.restricted import RestrictedSpace

SPACE = NB201Space()
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def test_all_cells_are_15625_unique_keys_in_index_order() -> None:
    cells = SPACE.all_cells()
    assert len(cells) == N_CELLS == 15_625
    keys = {SPACE.key(c) for c in cells}
    assert len(keys) == 15_625
    assert [c.index for c in cells[:50]] == list(range(50))
    assert cell_from_index(12_345) == cells[12_345]
    assert all(SPACE.is_valid(c) for c in cells[::97])


def test_string_round_trip_and_edge_order() -> None:
    cell = parse_cell(EXAMPLE)
    # edges in the order 0->1; 0->2, 1->2; 0->3, 1->3, 2->3
    assert cell.ops == ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")
    assert str(cell) == EXAMPLE == SPACE.key(cell) == SPACE.key(EXAMPLE) == SPACE.key(list(cell.ops))
    for c in list(all_cells())[::131]:
        assert parse_cell(SPACE.key(c)) == c


def test_round_trip_on_every_string_of_the_real_csv(nb201_csv_path: Path) -> None:
    with open(nb201_csv_path, newline="") as fh:
        strings = [row["cellstr"] for row in csv.DictReader(fh)]
    assert len(strings) == 15_625
    assert {SPACE.key(parse_cell(s)) for s in strings} == set(strings)
    assert set(strings) == {SPACE.key(c) for c in all_cells()}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "3 nodes"),
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "conv_5x5"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "none~1"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "needs 2 inputs"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "none~0|"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2", "none~2"),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "'none'"),
    ],
)
def test_bad_strings_name_the_offending_part(text: str, fragment: str) -> None:
    with pytest.raises(InvalidArchitecture) as info:
        parse_cell(text)
    assert fragment in str(info.value)
    assert not SPACE.is_valid(text)


def test_bad_cells_name_the_problem() -> None:
    with pytest.raises(InvalidArchitecture, match="6 edges"):
        NB201Cell(("none",) * 5)
    with pytest.raises(InvalidArchitecture, match="sep_conv"):
        NB201Cell(("none",) * 5 + ("sep_conv",))
    with pytest.raises(InvalidArchitecture, match="'cell' entry"):
        SPACE.from_config({"arch": EXAMPLE})


def test_tokens() -> None:
    assert (SPACE.seq_len, SPACE.vocab_size) == (6, 6)
    cell = parse_cell(EXAMPLE)
    tokens = SPACE.encode(cell)
    assert tokens.tolist() == [OPS.index(op) + 1 for op in cell.ops] == [4, 4, 4, 2, 3, 4]
    assert SPACE.decode(tokens) == cell
    assert SPACE.decode([0, 4, 4, 2, 3, 4]) is None  # SOS/pad is not an op
    assert SPACE.decode([6, 4, 4, 2, 3, 4]) is None
    assert all(SPACE.allowed_tokens(p) == (1, 2, 3, 4, 5) for p in range(6))


def test_sampling_is_uniform() -> None:
    a = SPACE.sample(np.random.default_rng(1), 6000)
    assert len({c.index for c in a}) == 6000  # distinct while n <= 15,625
    assert len(SPACE.sample(np.random.default_rng(1), 20_000)) == 20_000  # beyond that, with replacement
    counts = np.bincount(SPACE.encode_many(a).ravel(), minlength=6)[1:]
    # 36,000 op draws over 5 ops: each share within 1.5 points of 20%
    assert np.all(np.abs(counts / counts.sum() - 0.2) < 0.015), counts


def test_mutate_changes_exactly_one_edge() -> None:
    rng = np.random.default_rng(2)
    cell = parse_cell(EXAMPLE)
    changed_edges = set()
    for _ in range(300):
        child = SPACE.mutate(cell, rng)
        diff = [i for i, (a, b) in enumerate(zip(cell.ops, child.ops)) if a != b]
        assert len(diff) == 1
        assert SPACE.key(child) != SPACE.key(cell)
        changed_edges.add(diff[0])
    assert changed_edges == set(range(6))


def test_restricted_space_only_proposes_members() -> None:
    rng = np.random.default_rng(3)
    members = SPACE.sample(rng, 40)
    keys = [SPACE.key(c) for c in members]
    space = RestrictedSpace(SPACE, keys, {SPACE.key(c): c for c in members})
    assert len(space) == len(set(keys))
    assert (space.seq_len, space.vocab_size) == (6, 6)
    assert all(SPACE.key(c) in set(keys) for c in space.sample(rng, 200))
    assert {SPACE.key(c) for c in space.sample(rng, len(space))} == set(keys)  # n <= members: distinct
    outsider = next(c for c in all_cells() if SPACE.key(c) not in set(keys))
    assert not space.is_valid(outsider) and SPACE.is_valid(outsider)
    assert space.decode(SPACE.encode(outsider)) is None
    assert space.decode(SPACE.encode(members[0])) == members[0]
    # mutation lands on a (different) member: by a one-edge move when one exists, else by the fallback
    for c in members[:10]:
        child = space.mutate(c, rng)
        assert space.is_valid(child) and SPACE.key(child) != SPACE.key(c)
    assert space.parse(EXAMPLE) == parse_cell(EXAMPLE)  # base helpers stay reachable
    np.testing.assert_array_equal(space.token_mask(), SPACE.token_mask())
