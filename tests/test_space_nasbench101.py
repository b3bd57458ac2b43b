"""NAS-Bench-101 specifics: hash, pruning, validity, token layout, sampling, mutation and the full enumeration
(the generic space contract is in ``test_space_contract.py``).

Real data: the 20,001 cells of ``nb101_subset20k.npz`` (stored module hashes) and the 30 API records of
``nasbench_api_sample30.json``.
"""
from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from seminas_ray.spaces import nb101_enumerate as nb101_enum
from seminas_ray.spaces.base import InvalidArchitecture
from seminas_ray.spaces.nasbench101 import NB101Space
from seminas_ray.spaces.nb101_arrays import NB101Arrays
from seminas_ray.spaces.nb101_arrays import arrays_from_specs
from seminas_ray.spaces.nb101_arrays import specs_from_arrays
from seminas_ray.spaces.nb101_cell import CONV1X1
from seminas_ray.spaces.nb101_cell import CONV3X3
from seminas_ray.spaces.nb101_cell import MAXPOOL3X3
from seminas_ray.spaces.nb101_cell import N_CELLS
from seminas_ray.spaces.nb101_cell import N_CELLS_BY_SIZE
from seminas_ray.spaces.nb101_cell import CellSpec
from seminas_ray.spaces.nb101_cell import _validate_uncached
from seminas_ray.spaces.nb101_cell import is_valid
from seminas_ray.spaces.nb101_cell import prune
from seminas_ray.spaces.nb101_cell import validate
from seminas_ray.spaces.nb101_encoding import OP_POSITIONS
from seminas_ray.spaces.nb101_encoding import decode
from seminas_ray.spaces.nb101_encoding import encode
from seminas_ray.spaces.nb101_encoding import encode_arrays
from seminas_ray.spaces.nb101_enumerate import enumerate_nb101
from seminas_ray.spaces.nb101_hash import hash_module
from seminas_ray.spaces.nb101_hash import nb101_hash
from seminas_ray.spaces.nb101_hash import nb101_hash_arrays
from seminas_ray.spaces.nb101_hash import op_labels

IN, OUT = "input", "output"


@pytest.fixture(scope="module")
def table(data_dir: Path) -> NB101Arrays:
    """The 20,001 real cells with their stored NB101 hashes."""
    with np.load(data_dir / "nb101" / "nb101_subset20k.npz") as npz:
        return NB101Arrays(npz["hash"], npz["n_vertices"], npz["adjacency"], npz["labels"])


@pytest.fixture(scope="module")
def table_specs(table: NB101Arrays) -> list[CellSpec]:
    return table.specs()


@pytest.fixture(scope="module")
def space(table: NB101Arrays) -> NB101Space:
    """A space that samples from the 20,001 table cells (the full enumeration is tested separately)."""
    return NB101Space(enumeration=table)


def chain(n: int, ops: list[str] | None = None) -> CellSpec:
    """input -> v1 -> ... -> output, a pruned cell of n vertices."""
    matrix = np.zeros((n, n), dtype=np.uint8)
    for v in range(n - 1):
        matrix[v, v + 1] = 1
    inner = ops if ops is not None else [(CONV3X3, CONV1X1, MAXPOOL3X3)[i % 3] for i in range(n - 2)]
    return CellSpec(matrix, [IN, *inner, OUT])


# ---------------------------------------------------------------------------------------------------------
# module hash
def test_vectorised_hash_reproduces_every_stored_hash(table: NB101Arrays) -> None:
    recomputed = nb101_hash_arrays(table.adjacency, table.labels, table.n_vertices)
    assert len(table) == 20_001 and recomputed.dtype == np.dtype("S32")
    mismatched = np.flatnonzero(recomputed != table.hash)
    assert mismatched.size == 0, f"{mismatched.size} mismatches, first at row {mismatched[:1]}"
    assert set(np.unique(table.n_vertices).tolist()) == {2, 3, 4, 5, 6, 7}  # every pruned size is covered


def test_key_reproduces_every_stored_hash(table: NB101Arrays, table_specs: list[CellSpec]) -> None:
    space = NB101Space(enumeration=table)
    keys = [space.key(s) for s in table_specs]  # the scalar graph_util port, through validate + prune
    assert keys == table.keys()
    assert space.keys(table_specs[:500]) == keys[:500]  # the bulk path agrees


def test_hash_of_the_api_records(data_dir: Path) -> None:
    records = json.loads((data_dir / "nb101" / "nasbench_api_sample30.json").read_text())
    assert len(records) == 30
    for key, rec in records.items():
        assert nb101_hash(np.array(rec["module_adjacency"]), rec["module_operations"]) == key


def test_isomorphic_relabellings_share_the_key(table_specs: list[CellSpec]) -> None:
    space = NB101Space()
    checked = 0
    for spec in table_specs[:150]:
        n = spec.n_vertices
        key = space.key(spec)
        for perm in itertools.permutations(range(1, n - 1)):
            order = [0, *perm, n - 1]
            matrix = spec.matrix[np.ix_(order, order)]
            if np.tril(matrix).any():  # not a topological order: not a valid NB101 matrix
                continue
            relabelled = CellSpec(matrix, [spec.ops[i] for i in order])
            assert space.key(relabelled) == key
            checked += relabelled != spec
    assert checked > 150  # many genuinely different matrices were compared
    # ... while changing one op changes the key
    spec = table_specs[0]
    ops = list(spec.ops)
    ops[1] = CONV1X1 if ops[1] != CONV1X1 else CONV3X3
    assert space.key(CellSpec(spec.matrix, ops)) != space.key(spec)


def test_unpruned_duplicate_has_the_key_of_its_pruned_cell(table_specs: list[CellSpec]) -> None:
    space = NB101Space()
    spec = next(s for s in table_specs if s.n_vertices == 5)
    big = np.zeros((7, 7), dtype=np.uint8)
    big[:4, :4] = spec.matrix[:4, :4]
    big[:4, 6] = spec.matrix[:4, 4]  # edges into the output move with it
    big[0, 4] = 1  # input -> dead end (reaches nothing)
    big[5, 6] = 1  # unreachable from input -> output
    ops = [*spec.ops[:-1], MAXPOOL3X3, CONV1X1, OUT]
    assert space.key(CellSpec(big, ops)) == space.key(spec)
    assert prune(CellSpec(big, ops)) == spec


# ---------------------------------------------------------------------------------------------------------
# pruning and validity
def test_prune_drops_vertices_off_every_input_output_path() -> None:
    # 0 -> 1 -> 4; 0 -> 2 (dead end); 3 -> 4 (not reachable from input)
    m = np.zeros((5, 5), dtype=np.uint8)
    m[0, 1] = m[1, 4] = m[0, 2] = m[3, 4] = 1
    spec = CellSpec(m, [IN, CONV3X3, MAXPOOL3X3, CONV1X1, OUT])
    pruned = prune(spec)
    assert pruned == CellSpec(np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]]), [IN, CONV3X3, OUT])
    assert is_valid(spec) and validate(spec) == pruned
    assert prune(pruned) is pruned  # nothing to prune: the same object
    # input straight to output, interior vertices dangling: a 2-vertex cell
    m2 = np.zeros((4, 4), dtype=np.uint8)
    m2[0, 3] = m2[1, 2] = 1
    assert prune(CellSpec(m2, [IN, CONV3X3, CONV3X3, OUT])) == CellSpec(np.array([[0, 1], [0, 0]]), [IN, OUT])


def test_prune_returns_none_when_output_is_unreachable() -> None:
    m = np.zeros((4, 4), dtype=np.uint8)
    m[0, 1] = m[2, 3] = 1  # input -> 1, 2 -> output: no path
    spec = CellSpec(m, [IN, CONV3X3, CONV1X1, OUT])
    assert prune(spec) is None and not is_valid(spec)
    with pytest.raises(InvalidArchitecture, match="output is not reachable from input"):
        validate(spec)
    with pytest.raises(InvalidArchitecture, match="not reachable"):
        NB101Space().key(spec)


def _ten_edges() -> CellSpec:
    m = np.zeros((7, 7), dtype=np.uint8)
    pairs = [(0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (3, 5), (4, 5), (4, 6), (5, 6), (1, 6)]
    for a, b in pairs:
        m[a, b] = 1
    return CellSpec(m, [IN, CONV3X3, CONV3X3, CONV1X1, MAXPOOL3X3, CONV3X3, OUT])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_ten_edges, "10 edges > 9 after pruning"),
        (lambda: chain(8), "8 vertices > 7 after pruning"),
        (lambda: CellSpec(chain(3).matrix, [CONV3X3, CONV3X3, OUT]), "first op must be 'input'"),
        (lambda: CellSpec(chain(3).matrix, [IN, CONV3X3, CONV3X3]), "last op must be 'output'"),
        (lambda: CellSpec(chain(3).matrix, [IN, "conv5x5", OUT]), "op 'conv5x5' of vertex 1"),
        (lambda: CellSpec(chain(4).matrix, [IN, OUT, CONV3X3, OUT]), "op 'output' of vertex 1"),
    ],
)
def test_invalid_cells_explain_why(make, message: str) -> None:
    spec = make()
    assert not is_valid(spec) and not NB101Space().is_valid(spec)
    with pytest.raises(InvalidArchitecture, match=message):
        validate(spec)
    with pytest.raises(InvalidArchitecture, match=message):
        encode(spec)


def test_malformed_cellspecs_are_rejected_on_construction() -> None:
    with pytest.raises(InvalidArchitecture, match="square"):
        CellSpec(np.zeros((2, 3)), [IN, OUT])
    with pytest.raises(InvalidArchitecture, match="upper-triangular.*\\[1,0\\]"):
        CellSpec(np.array([[0, 1], [1, 0]]), [IN, OUT])
    with pytest.raises(InvalidArchitecture, match="0 or 1"):
        CellSpec(np.array([[0, 2], [0, 0]]), [IN, OUT])
    with pytest.raises(InvalidArchitecture, match="3 ops for a 2x2 matrix"):
        CellSpec(np.array([[0, 1], [0, 0]]), [IN, CONV3X3, OUT])
    with pytest.raises(InvalidArchitecture, match="at least 2 vertices"):
        CellSpec(np.zeros((1, 1)), [IN])
    with pytest.raises(InvalidArchitecture, match="op name"):
        CellSpec(np.array([[0, 1], [0, 0]]), [IN, 3])
    assert not is_valid("not a cell") and not is_valid(None)


def test_validity_is_judged_after_pruning_like_nasbench() -> None:
    # 12 edges, but only 9 survive pruning; and an unknown op on a pruned-away vertex does not matter
    m = np.zeros((7, 7), dtype=np.uint8)
    for a, b in [(0, 1), (1, 2), (2, 6), (0, 6), (0, 3), (1, 3), (2, 3), (3, 4), (3, 5), (4, 5), (0, 2), (1, 6)]:
        m[a, b] = 1
    spec = CellSpec(m, [IN, CONV3X3, CONV1X1, "weird-op", MAXPOOL3X3, CONV3X3, OUT])
    assert spec.n_edges == 12 and is_valid(spec)
    assert validate(spec).n_vertices == 4 and validate(spec).n_edges == 6


def test_cellspec_value_semantics() -> None:
    a = CellSpec(np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=np.int64), [IN, CONV3X3, OUT])
    b = CellSpec([[0, 1, 1], [0, 0, 1], [0, 0, 0]], (IN, CONV3X3, OUT))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a.matrix.dtype == np.uint8 and isinstance(a.ops, tuple)
    assert a != CellSpec(a.matrix, [IN, CONV1X1, OUT])
    with pytest.raises(ValueError):
        a.matrix[0, 1] = 0  # read-only: a CellSpec never changes under a set or dict
    assert repr(a) == "CellSpec(matrix=[[0, 1, 1], [0, 0, 1], [0, 0, 0]], ops=['input', 'conv3x3-bn-relu', 'output'])"


# ---------------------------------------------------------------------------------------------------------
# tokens
def test_encoding_of_a_known_cell() -> None:
    # 0->1, 0->2, 1->3, 2->3 with ops conv1x1, maxpool: a 4-vertex cell
    m = np.zeros((4, 4), dtype=np.uint8)
    m[0, 1] = m[0, 2] = m[1, 3] = m[2, 3] = 1
    spec = CellSpec(m, [IN, CONV1X1, MAXPOOL3X3, OUT])
    expected = [2, 3, 2, 1, 5, 1, 2, 2, 6] + [0] * 18
    assert encode(spec).tolist() == expected
    assert decode(expected) == spec
    full = chain(7, [CONV3X3, CONV1X1, MAXPOOL3X3, CONV3X3, CONV1X1])
    tokens = encode(full)
    assert [int(tokens[p]) for p in OP_POSITIONS] == [4, 3, 5, 4, 3, 6]  # 3 = conv1x1, 4 = conv3x3, 5 = maxpool


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7])
def test_round_trip_for_every_pruned_size(n: int) -> None:
    spec = chain(n)
    tokens = encode(spec)
    output_column = n - 1
    assert tokens[OP_POSITIONS[output_column - 1]] == 6
    assert (tokens[OP_POSITIONS[output_column - 1] + 1 :] == 0).all()  # zeros after the output column
    assert (tokens[: OP_POSITIONS[output_column - 1]] != 0).all()
    assert decode(tokens) == spec


def test_round_trip_of_all_table_cells(table: NB101Arrays, table_specs: list[CellSpec]) -> None:
    tokens = encode_arrays(table.adjacency, table.labels, table.n_vertices)
    assert tokens.shape == (20_001, 27) and tokens.dtype == np.int64
    assert np.array_equal(tokens, np.stack([encode(s) for s in table_specs]))
    assert np.array_equal(NB101Space().encode_many(table_specs[:1000]), tokens[:1000])
    decoded = [decode(t) for t in tokens]
    assert decoded == table_specs
    # and back to the padded arrays
    adjacency, labels, n_vertices = arrays_from_specs(decoded)
    assert np.array_equal(adjacency, table.adjacency) and np.array_equal(labels, table.labels)
    assert np.array_equal(n_vertices, table.n_vertices)


def test_decode_of_unpadded_constrained_decoder_output() -> None:
    rng = np.random.default_rng(3)
    space = NB101Space()
    mask = space.token_mask()
    for n in range(2, 7):
        spec = chain(n)
        tokens = encode(spec)
        # what constrained greedy decoding emits: allowed tokens everywhere, no zeros after the output column
        for _ in range(20):
            noisy = tokens.copy()
            for pos in range(OP_POSITIONS[n - 2] + 1, 27):
                noisy[pos] = rng.choice(np.flatnonzero(mask[pos]))
            assert (noisy != 0).all()
            assert decode(noisy) == spec
    # no output token anywhere: column 6's op must be the output
    tokens = encode(chain(7))
    tokens[26] = 4
    assert decode(tokens) is None


@pytest.mark.parametrize(
    "tokens",
    [
        [0] * 27,  # nothing
        [2, 7] + [0] * 25,  # out of vocabulary
        [2, -1] + [0] * 25,
        [2, 4, 2, 0, 4] + [0] * 22,  # a zero inside a read column
        [2, 2] + [0] * 25,  # an edge token at an op position
        [6, 6] + [0] * 25,  # an op token at an edge position
        [2, 4, 2, 1, 6] + [0] * 21,  # 26 tokens
        [1, 6] + [0] * 25,  # input not connected to output
        "not tokens",
        [[2, 6]] * 27,
        [2.5] * 27,
    ],
)
def test_decode_never_raises(tokens) -> None:
    assert decode(tokens) is None


def test_decode_ignores_everything_after_the_output_column() -> None:
    two = CellSpec(np.array([[0, 1], [0, 0]]), [IN, OUT])
    assert decode([2, 6] + [0] * 25) == two
    assert decode([2, 6] + [7] * 25) == two
    assert decode(np.array([2, 6] + [1] * 25, dtype=np.int32)) == two
    assert decode(np.array([2.0, 6.0] + [0.0] * 25)) == two


def test_decode_prunes() -> None:
    # 0->1, 1->3, 0->2 (dead end), 2 has no out-edge: decodes to the pruned 3-vertex cell
    m = np.zeros((4, 4), dtype=np.uint8)
    m[0, 1] = m[1, 3] = m[0, 2] = 1
    tokens = encode_unchecked(m, [IN, CONV3X3, MAXPOOL3X3, OUT])
    assert decode(tokens) == CellSpec(np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]]), [IN, CONV3X3, OUT])


def encode_unchecked(matrix: np.ndarray, ops: list[str]) -> list[int]:
    """Tokens of an arbitrary (possibly unpruned) graph, written out by the documented rule."""
    op_token = {CONV1X1: 3, CONV3X3: 4, MAXPOOL3X3: 5, OUT: 6}
    n = len(ops)
    seq: list[int] = []
    for col in range(1, 7):
        if col < n:
            seq += [int(matrix[row, col]) + 1 for row in range(col)] + [op_token[ops[col]]]
        else:
            seq += [0] * (col + 1)
    return seq


def test_allowed_tokens_and_mask() -> None:
    space = NB101Space()
    assert (space.name, space.vocab_size, space.seq_len) == ("nasbench101", 7, 27)
    assert OP_POSITIONS == (1, 4, 8, 13, 19, 26)
    for pos in range(27):
        assert space.allowed_tokens(pos) == ((3, 4, 5, 6) if pos in OP_POSITIONS else (1, 2))
    assert space.token_mask().sum() == 6 * 4 + 21 * 2


# ---------------------------------------------------------------------------------------------------------
# configs, arrays
def test_config_prunes_and_explains_errors() -> None:
    space = NB101Space()
    for spec in [chain(2), chain(3)]:  # the smallest cells (the generic round trip is in test_space_contract)
        assert space.from_config(space.to_config(spec)) == spec
    unpruned = {"matrix": [[0, 1, 1], [0, 0, 0], [0, 0, 0]], "ops": [IN, CONV3X3, OUT]}  # vertex 1 is a dead end
    assert space.from_config(unpruned) == CellSpec([[0, 1], [0, 0]], [IN, OUT])
    with pytest.raises(InvalidArchitecture, match="lacks ops"):
        space.from_config({"matrix": [[0, 1], [0, 0]]})
    with pytest.raises(InvalidArchitecture, match="dict"):
        space.from_config([[0, 1], [0, 0]])  # type: ignore[arg-type]
    with pytest.raises(InvalidArchitecture, match="square"):
        space.from_config({"matrix": [[0, 1]], "ops": [IN, OUT]})
    with pytest.raises(InvalidArchitecture, match="edges > 9"):
        space.from_config({"matrix": _ten_edges().matrix.tolist(), "ops": list(_ten_edges().ops)})
    assert space.cost(chain(3)) == {}
    assert space.describe(chain(4, [CONV3X3, MAXPOOL3X3])).endswith("4v/3e: c3,mp")


def test_arrays_helpers(table: NB101Arrays, table_specs: list[CellSpec]) -> None:
    some = table.take([5, 0, 19_999])
    assert some.specs() == [table_specs[5], table_specs[0], table_specs[19_999]]
    assert table.index_of([table.hash[7], b"f" * 32, table.hash[20_000]]).tolist() == [7, -1, 20_000]
    with pytest.raises(InvalidArchitecture, match="spec 1"):
        arrays_from_specs([chain(3), _ten_edges()])
    with pytest.raises(InvalidArchitecture, match="shape"):
        specs_from_arrays(table.adjacency[:3, :6], table.labels[:3], table.n_vertices[:3])
    bad_labels = table.labels[:3].copy()
    bad_labels[1, 0] = 0
    with pytest.raises(InvalidArchitecture, match="row 1"):
        encode_arrays(table.adjacency[:3], bad_labels, table.n_vertices[:3])


# ---------------------------------------------------------------------------------------------------------
# sampling and mutation
def test_sampling_is_uniform_over_the_pool(space: NB101Space, table: NB101Arrays) -> None:
    a = space.sample(np.random.default_rng(11), 300)
    keys = space.keys(a)
    assert len(set(keys)) == 300  # drawn without replacement
    assert (table.index_of(keys) >= 0).all()
    arrays = space.sample_arrays(np.random.default_rng(11), 300)
    assert arrays.specs() == a
    with pytest.raises(ValueError, match="cannot draw"):
        space.sample(np.random.default_rng(0), len(table) + 1)
    # uniform over the pool: the cell-size mix of a large sample follows the pool's
    big = space.sample_arrays(np.random.default_rng(5), 10_000)
    assert abs(np.mean(big.n_vertices == 7) - np.mean(table.n_vertices == 7)) < 0.02


def test_mutate_returns_pruned_cells_and_can_grow_small_ones(space: NB101Space, table_specs: list[CellSpec]) -> None:
    rng = np.random.default_rng(0)
    parents = table_specs[:150] + [chain(n) for n in range(2, 8)]
    grew = 0
    for parent in parents:
        child = space.mutate(parent, rng)
        assert prune(child) == child and space.key(child) != space.key(parent)
        grew += child.n_vertices > parent.n_vertices
    assert grew > 0  # small cells can grow (they are embedded in 7 vertices)


# ---------------------------------------------------------------------------------------------------------
# the full enumeration
@pytest.mark.slow
def test_full_enumeration(tmp_path: Path, table: NB101Arrays, data_dir: Path) -> None:
    cache = tmp_path / "nb101_enumeration_v1.npz"
    cache.write_bytes(b"not an npz")  # a corrupt cache is rebuilt with a warning, never trusted
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        built = enumerate_nb101(progress=False, cache_path=cache)
    assert len(built) == N_CELLS == 423_624
    counts = np.bincount(built.n_vertices, minlength=8)
    assert {n: int(counts[n]) for n in range(2, 8)} == N_CELLS_BY_SIZE
    assert N_CELLS_BY_SIZE == {7: 359_082, 6: 62_010, 5: 2_441, 4: 84, 3: 6, 2: 1}
    assert len(np.unique(built.hash)) == N_CELLS
    # the table is the first 20,001 hashes in sorted order, and the enumeration stores the same (first
    # generate_graphs) matrix and labels per hash as the benchmark does
    assert (built.index_of(table.hash) >= 0).all()
    first = built.take(np.arange(20_001))
    for name in ("hash", "n_vertices", "adjacency", "labels"):
        assert np.array_equal(getattr(first, name), getattr(table, name)), name
    records = json.loads((data_dir / "nb101" / "nasbench_api_sample30.json").read_text())
    rows = built.index_of(list(records))
    assert (rows >= 0).all()
    for row, rec in zip(rows.tolist(), records.values()):
        assert built.take([row]).specs()[0] == CellSpec(np.array(rec["module_adjacency"]), rec["module_operations"])

    # the cache file loads, passes the checks and equals the build; within the process it is shared read-only
    loaded = nb101_enum.load_enumeration(cache)
    for name in ("hash", "n_vertices", "adjacency", "labels"):
        assert np.array_equal(getattr(loaded, name), getattr(built, name)), name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert enumerate_nb101(progress=False, cache_path=cache) is built
    assert not built.adjacency.flags.writeable

    # tampered contents are caught by the load-time checks (row 0 is always among the spot-checked rows)
    def tampered(row: int | None = None, **change: np.ndarray) -> NB101Arrays:
        fields = {k: getattr(built, k).copy() for k in ("hash", "n_vertices", "adjacency", "labels")}
        fields.update(change)
        return NB101Arrays(**fields)

    assert built.n_vertices[0] == 7
    hashes = built.hash.copy()
    hashes[[10, 11]] = hashes[[11, 10]]
    lower = built.adjacency.copy()
    lower[0, 3, 2] = 1
    dangling = built.adjacency.copy()
    dangling[0, 1, :] = 0
    other_op = built.labels.copy()
    other_op[0, 1] = (other_op[0, 1] + 1) % 3
    cases = [
        (tampered(hash=hashes), "strictly increasing"),
        (tampered(labels=np.where(built.labels == -3, 0, built.labels).astype(np.int8)), "label layout"),
        (tampered(adjacency=lower), "upper-triangular"),
        (tampered(adjacency=dangling), "off every input->output path"),
        (tampered(labels=other_op), "row 0: stored hash"),
        (built.take(np.arange(len(built) - 1)), "423623 cells"),
    ]
    for bad, reason in cases:
        with pytest.raises(nb101_enum.EnumerationCacheError, match=reason):
            nb101_enum.check_enumeration(bad)
    nb101_enum.save_enumeration(tampered(hash=hashes), cache)
    with pytest.raises(nb101_enum.EnumerationCacheError, match="strictly increasing"):
        nb101_enum.load_enumeration(cache)

    # uniform sampling over all unique cells, seeded
    space = NB101Space(enumeration=loaded)
    a = space.sample(np.random.default_rng(1), 10_000)
    assert a == space.sample(np.random.default_rng(1), 10_000)
    assert len(set(a)) == 10_000 and all(is_valid(s) for s in a[:500])
    assert np.array_equal(space.encode_many(a[:2000]), np.stack([encode(s) for s in a[:2000]]))


def test_memoised_validation_and_hash_match_the_uncached_code() -> None:
    space = NB101Space()
    rng = np.random.default_rng(0)
    parent = chain(5)
    assert validate(parent) is parent  # nothing to prune: the cell itself, as before the memo
    for _ in range(200):  # mutation revisits neighbours, so most of these calls hit the memo
        child = space.mutate(parent, rng)
        again = CellSpec(np.array(child.matrix), list(child.ops))  # a fresh, equal object
        assert validate(again) == _validate_uncached(again)
        assert nb101_hash(child.matrix, child.ops) == hash_module(child.matrix, op_labels(child.ops))
        # the memo keys on exact values, so a bool matrix and a list of lists hash like the uint8 array
        assert nb101_hash(child.matrix.astype(bool), child.ops) == nb101_hash(child.matrix.tolist(), child.ops)
    with pytest.raises(InvalidArchitecture, match="10 edges"):
        validate(_ten_edges())
    with pytest.raises(InvalidArchitecture, match="10 edges"):  # the cached failure keeps its reason
        validate(_ten_edges())
