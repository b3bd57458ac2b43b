"""The TensorFlow-free NAS-Bench-101 tfrecord reader, writer and npz conversion, on the real fixture files."""
from __future__ import annotations

import base64
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from seminas_ray.benchmarks.nb101_convert import OP_LABELS
from seminas_ray.benchmarks.nb101_convert import convert_tfrecord
from seminas_ray.benchmarks.nb101_convert import load_or_convert
from seminas_ray.benchmarks.nb101_convert import read_table_metadata
from seminas_ray.benchmarks.tfrecord import Evaluation
from seminas_ray.benchmarks.tfrecord import NB101Record
from seminas_ray.benchmarks.tfrecord import NB101RecordError
from seminas_ray.benchmarks.tfrecord import TFRecordError
from seminas_ray.benchmarks.tfrecord import crc32c
from seminas_ray.benchmarks.tfrecord import crc32c_many
from seminas_ray.benchmarks.tfrecord import encode_model_metrics
from seminas_ray.benchmarks.tfrecord import encode_nb101_payload
from seminas_ray.benchmarks.tfrecord import iter_nb101_records
from seminas_ray.benchmarks.tfrecord import iter_tfrecord
from seminas_ray.benchmarks.tfrecord import masked_crc32c
from seminas_ray.benchmarks.tfrecord import parse_nb101_record
from seminas_ray.benchmarks.tfrecord import write_nb101_tfrecord
from seminas_ray.benchmarks.tfrecord import write_tfrecord

FIXTURE_COUNTS = {
    "carbon_3V9E.tfrecord": 63,
    "carbon_4V9E.tfrecord": 84,
    "epochs_4_spec_3V9E.tfrecord": 21,
    "synthetic_only108_2archs_6records.tfrecord": 6,
}
EC_NAS = ["carbon_3V9E.tfrecord", "carbon_4V9E.tfrecord", "epochs_4_spec_3V9E.tfrecord"]
SYNTHETIC = "synthetic_only108_2archs_6records.tfrecord"
MIDDLE_OPS = {"conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"}


@pytest.fixture(scope="module")
def fixtures(data_dir: Path) -> Path:
    return data_dir / "nb101" / "fixtures"


@pytest.fixture(scope="module")
def records(fixtures: Path) -> dict[str, list[NB101Record]]:
    return {name: list(iter_nb101_records(fixtures / name)) for name in FIXTURE_COUNTS}


def _offsets(path: Path) -> list[int]:
    return [offset for offset, _ in iter_tfrecord(path, verify_crc=False)]


def _small_file(tmp_path: Path, fixtures: Path, name: str = "small.tfrecord") -> Path:
    """A file written by our writer from the real carbon_4V9E payloads (84 records)."""
    payloads = [p for _, p in iter_tfrecord(fixtures / "carbon_4V9E.tfrecord")]
    return write_tfrecord(tmp_path / name, payloads)


# -- CRC -------------------------------------------------------------------------------------------------------
def test_crc32c_matches_the_standard_check_value_and_the_batch_version() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720 / Castagnoli)
    assert crc32c(b"") == 0
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 300, size=200)
    lengths[:3] = [0, 1, 299]
    buffer = rng.integers(0, 256, size=int(lengths.sum()) + 10, dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) + 5
    batch = crc32c_many(buffer, starts, lengths)
    expected = [crc32c(buffer[s : s + n].tobytes()) for s, n in zip(starts, lengths)]
    assert batch.tolist() == expected
    # The TFRecord mask: rotate right 15, add 0xA282EAD8.
    c = crc32c(b"abc")
    assert masked_crc32c(b"abc") == ((((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


# -- reading the real fixtures ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name,count", sorted(FIXTURE_COUNTS.items()))
def test_every_fixture_reads_with_the_expected_record_count(fixtures: Path, name: str, count: int) -> None:
    assert sum(1 for _ in iter_tfrecord(fixtures / name)) == count
    assert len(list(iter_nb101_records(fixtures / name))) == count


def test_fixture_fields_are_sane(records: dict[str, list[NB101Record]]) -> None:
    for name, recs in records.items():
        for r in recs:
            assert len(r.module_hash) == 32 and int(r.module_hash, 16) >= 0
            assert r.epochs in {4, 12, 36, 108}, name
            n = len(r.ops)
            assert r.matrix.shape == (n, n) and r.matrix.dtype == np.uint8
            assert 2 <= n <= 7
            assert np.array_equal(r.matrix, np.triu(r.matrix, 1)), f"{name}: matrix not strictly upper-triangular"
            assert r.ops[0] == "input" and r.ops[-1] == "output"
            assert set(r.ops[1:-1]) <= MIDDLE_OPS
            assert r.trainable_parameters > 0 and r.total_time > 0
            assert len(r.evaluations) == 3
            for e in r.evaluations:
                for acc in (e.train_accuracy, e.validation_accuracy, e.test_accuracy):
                    assert 0.0 <= acc <= 1.0
            # The API's halfway/final picks: evaluation_data[1] and [2]; final is at the full budget.
            assert r.final is r.evaluations[2] and r.halfway is r.evaluations[1]
            assert r.final.current_epoch == r.epochs
            assert 0 < r.halfway.current_epoch < r.epochs
            assert r.final.training_time >= r.halfway.training_time > 0


def test_synthetic_fixture_values(records: dict[str, list[NB101Record]]) -> None:
    recs = records[SYNTHETIC]
    assert [r.epochs for r in recs] == [108] * 6
    assert len({r.module_hash for r in recs}) == 2
    first = recs[0]
    assert first.trainable_parameters == 123456 and first.total_time == 1234.5
    assert first.final == Evaluation(108.0, 1000.0, 1.0, 0.9, 0.89)


def test_records_of_one_hash_share_their_cell(records: dict[str, list[NB101Record]]) -> None:
    for recs in records.values():
        cells: dict[str, tuple[bytes, list[str]]] = {}
        for r in recs:
            cell = (r.matrix.tobytes(), r.ops)
            assert cells.setdefault(r.module_hash, cell) == cell


@pytest.mark.parametrize("name", EC_NAS)
def test_ec_nas_extra_protobuf_fields_are_skipped(fixtures: Path, name: str) -> None:
    """EC-NAS-Bench records carry energy/timestamp fields: the known values decode and the rest is skipped."""
    for offset, payload in iter_tfrecord(fixtures / name):
        raw = json.loads(payload)[4]
        assert "\n" in raw  # EC-NAS breaks its base64 into lines: decoding must be lenient
        metrics = base64.b64decode(raw)
        record = parse_nb101_record(payload)
        known = encode_model_metrics(record.evaluations, record.trainable_parameters, record.total_time)
        if name.startswith("carbon"):
            assert len(metrics) > len(known), f"{name}@{offset}: expected extra fields"
            # EvaluationData field 6 is a double in EC-NAS (a string in nasbench), 7..10 are extras.
            assert b"\x31" in metrics and b"\x4a" in metrics
        else:  # no extras here: re-encoding the decoded values reproduces the stored bytes exactly
            assert metrics == known, f"{name}@{offset}"


def test_every_stored_hash_equals_the_hash_recomputed_from_the_cell(records: dict[str, list[NB101Record]]) -> None:
    from seminas_ray.spaces.nb101_hash import nb101_hash

    checked = 0
    for name, recs in records.items():
        for r in recs:
            assert nb101_hash(r.matrix, r.ops) == r.module_hash, f"{name}: {r.ops} {r.matrix.tolist()}"
            checked += 1
    assert checked == sum(FIXTURE_COUNTS.values())


# -- writer round trips ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(FIXTURE_COUNTS))
def test_rewriting_the_payloads_reproduces_each_fixture_byte_for_byte(fixtures: Path, tmp_path: Path,
                                                                       name: str) -> None:
    payloads = [p for _, p in iter_tfrecord(fixtures / name)]
    out = write_tfrecord(tmp_path / name, payloads, batch=7)  # several batches
    assert out.read_bytes() == (fixtures / name).read_bytes()


def test_written_records_round_trip_exactly(records: dict[str, list[NB101Record]], tmp_path: Path) -> None:
    originals = [r for recs in records.values() for r in recs]
    # Edge values: a large parameter count, a negative int32 (10-byte varint), extreme doubles.
    extra = NB101Record("f" * 32, 12, np.triu(np.ones((7, 7), np.uint8), 1),
                        ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu",
                         "maxpool3x3", "output"],
                        2_147_483_647, 1e-300, [Evaluation(0.0, 0.0, 0.0, 0.0, 0.0),
                                                Evaluation(6.0, 1.5e9, 1.0, 0.5, 0.25),
                                                Evaluation(12.0, 3.0e9, 1.0, 0.75, 0.125)])
    negative = NB101Record("0" * 32, 4, np.array([[0, 1], [0, 0]], np.uint8), ["input", "output"], -5, 0.0, [])
    path = write_nb101_tfrecord(tmp_path / "roundtrip.tfrecord", [*originals, extra, negative])
    back = list(iter_nb101_records(path))
    assert len(back) == len(originals) + 2
    for a, b in zip([*originals, extra, negative], back):
        assert (a.module_hash, a.epochs, a.ops, a.trainable_parameters, a.total_time) == (
            b.module_hash, b.epochs, b.ops, b.trainable_parameters, b.total_time)
        assert np.array_equal(a.matrix, b.matrix)
        assert [tuple(e) for e in a.evaluations] == [tuple(e) for e in b.evaluations]
    with pytest.raises(ValueError, match="has 0 evaluations"):
        _ = back[-1].final


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    """Varint, fixed64, length-delimited and fixed32 unknown fields, in ModelMetrics and in EvaluationData."""
    unknown = (b"\x20\x96\x01"            # field 4 varint 150
               b"\x29" + struct.pack("<d", 7.0) +  # field 5 fixed64
               b"\x32\x03abc"             # field 6 length-delimited
               b"\x3d" + struct.pack("<f", 1.0) +  # field 7 fixed32
               b"\xa0\x1f\x01")           # field 500 varint (two-byte key)
    fields = b"".join(bytes([(k << 3) | 1]) + struct.pack("<d", v) for k, v in enumerate([36.0, 9.5, 0.9, 0.8, 0.7], 1))
    evaluation = (b"\x3d" + struct.pack("<f", 2.0) + fields[:18] + b"\x32\x05/ckpt" + fields[18:]
                  + b"\x48\x01" + b"\x51" + struct.pack("<d", 3.0))  # checkpoint path + EC-NAS-style extras
    metrics = b"\x0a" + bytes([len(evaluation)]) + evaluation
    metrics = unknown + metrics * 3 + b"\x10\x80\x01" + unknown + b"\x19" + struct.pack("<d", 12.5)
    payload = json.dumps(["a" * 32, 36, "0100", "input,output", base64.encodebytes(metrics).decode()]).encode()
    record = parse_nb101_record(payload)
    assert record.trainable_parameters == 128 and record.total_time == 12.5
    assert record.evaluations == [Evaluation(36.0, 9.5, 0.9, 0.8, 0.7)] * 3


# -- corruption and truncation ---------------------------------------------------------------------------------
def test_chunk_boundaries_do_not_change_what_is_read(fixtures: Path, tmp_path: Path) -> None:
    path = _small_file(tmp_path, fixtures)
    whole = list(iter_tfrecord(path))
    for chunk in (1, 100, 813, 4096):
        assert list(iter_tfrecord(path, chunk_bytes=chunk)) == whole
    seen: list[int] = []
    list(iter_tfrecord(path, chunk_bytes=5000, on_progress=seen.append))
    assert sum(seen) == path.stat().st_size


def _flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("chunk", [1 << 25, 700])
def test_flipped_payload_byte_names_file_and_offset(fixtures: Path, tmp_path: Path, chunk: int) -> None:
    path = _small_file(tmp_path, fixtures)
    offsets = _offsets(path)
    _flip(path, offsets[40] + 12 + 50)
    seen = []
    with pytest.raises(TFRecordError, match="bad data CRC") as info:
        for offset, _ in iter_tfrecord(path, chunk_bytes=chunk):
            seen.append(offset)
    assert str(path) in str(info.value) and f"byte offset {offsets[40]}" in str(info.value)
    assert seen == offsets[:40]  # the good records before it were delivered
    assert len(list(iter_tfrecord(path, verify_crc=False))) == 84  # without CRC checks the file still frames


@pytest.mark.parametrize("chunk", [1 << 25, 700])
def test_flipped_length_byte_names_file_and_offset(fixtures: Path, tmp_path: Path, chunk: int) -> None:
    path = _small_file(tmp_path, fixtures)
    offsets = _offsets(path)
    for byte, bit in [(1, 0x01), (7, 0x80)]:  # a small change, and a huge (past end of file) length
        data = bytearray(path.read_bytes())
        data[offsets[10] + byte] ^= bit
        bad = tmp_path / f"bad_length_{byte}.tfrecord"
        bad.write_bytes(bytes(data))
        with pytest.raises(TFRecordError, match="bad length CRC") as info:
            list(iter_tfrecord(bad, chunk_bytes=chunk))
        assert str(bad) in str(info.value) and f"byte offset {offsets[10]}" in str(info.value)


def test_flipped_crc_bytes_are_reported(fixtures: Path, tmp_path: Path) -> None:
    path = _small_file(tmp_path, fixtures)
    offsets = _offsets(path)
    _flip(path, offsets[3] + 9)  # the stored length CRC itself
    with pytest.raises(TFRecordError, match=f"bad length CRC at byte offset {offsets[3]}"):
        list(iter_tfrecord(path))
    path = _small_file(tmp_path, fixtures, "b.tfrecord")
    _flip(path, offsets[5] - 2)  # the stored data CRC of record 4
    with pytest.raises(TFRecordError, match=f"bad data CRC at byte offset {offsets[4]}"):
        list(iter_tfrecord(path))


@pytest.mark.parametrize("cut,problem", [(5, "truncated header"), (12, "truncated payload"),
                                         (300, "truncated payload"), (-2, "truncated payload")])
@pytest.mark.parametrize("verify", [True, False])
def test_truncated_file_names_file_and_offset(fixtures: Path, tmp_path: Path, cut: int, problem: str,
                                              verify: bool) -> None:
    path = _small_file(tmp_path, fixtures)
    offsets = _offsets(path)
    target = offsets[-1] if cut < 0 else offsets[60]
    end = offsets[-1] + (path.stat().st_size - offsets[-1]) + cut if cut < 0 else target + cut
    path.write_bytes(path.read_bytes()[:end])
    seen = []
    with pytest.raises(TFRecordError, match=problem) as info:
        for offset, _ in iter_tfrecord(path, verify_crc=verify, chunk_bytes=1000):
            seen.append(offset)
    assert str(path) in str(info.value) and f"byte offset {target}" in str(info.value)
    assert seen == [o for o in offsets if o < target]


def test_empty_file_has_no_records(tmp_path: Path) -> None:
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    assert list(iter_tfrecord(path)) == []


@pytest.mark.parametrize("payload,problem", [
    (b"not json", "not UTF-8 JSON"),
    (b"\xff\xfe", "not UTF-8 JSON"),
    (json.dumps(["a" * 32, 108, "0100"]).encode(), "list of 5 fields"),
    (json.dumps(["abc", 108, "0100", "input,output", ""]).encode(), "32-character"),
    (json.dumps(["a" * 32, "108", "0100", "input,output", ""]).encode(), "epochs"),
    (json.dumps(["a" * 32, 108, "010", "input,output", ""]).encode(), "not a square matrix"),
    (json.dumps(["a" * 32, 108, "0120", "input,output", ""]).encode(), "other than '0' and '1'"),
    (json.dumps(["a" * 32, 108, "0100", "input,conv3x3-bn-relu,output", ""]).encode(), "3 operations"),
    (json.dumps(["a" * 32, 108, "0100", "input,output", "@@@"]).encode(), "not base64"),
    (json.dumps(["a" * 32, 108, "0100", "input,output",
                 base64.b64encode(b"\x0a\x30\x09").decode()]).encode(), "past the end"),
    (json.dumps(["a" * 32, 108, "0100", "input,output",
                 base64.b64encode(b"\x0b\x00").decode()]).encode(), "wire type 3"),
    (json.dumps(["a" * 32, 108, "0100", "input,output",
                 base64.b64encode(b"\x10\xff\xff").decode()]).encode(), "varint"),
])
def test_malformed_payload_names_file_and_offset(fixtures: Path, tmp_path: Path, payload: bytes,
                                                 problem: str) -> None:
    good = [p for _, p in iter_tfrecord(fixtures / SYNTHETIC)]
    path = write_tfrecord(tmp_path / "malformed.tfrecord", [*good[:2], payload, good[2]])
    offset = _offsets(path)[2]
    with pytest.raises(NB101RecordError, match=problem) as info:
        list(iter_nb101_records(path))
    assert str(path) in str(info.value) and f"byte offset {offset}" in str(info.value)
    with pytest.raises(NB101RecordError, match=problem):
        convert_tfrecord(path, tmp_path / "table.npz", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["malformed.tfrecord"]


# -- conversion ------------------------------------------------------------------------------------------------
def _check_table_against_records(table: Path, recs: list[NB101Record]) -> None:
    data = np.load(table, allow_pickle=False)  # plain np.load: no pickled objects inside
    hashes = [h.decode() for h in data["hash"]]
    assert hashes == sorted(set(r.module_hash for r in recs))
    row = {h: i for i, h in enumerate(hashes)}
    budgets = sorted({r.epochs for r in recs})
    runs: dict[tuple[str, int], list[NB101Record]] = {}
    for r in recs:
        runs.setdefault((r.module_hash, r.epochs), []).append(r)
    n_repeats = max(len(v) for v in runs.values())
    for (h, e), group in runs.items():
        i = row[h]
        cell = group[0]
        n = len(cell.ops)
        assert data["n_vertices"][i] == n
        assert np.array_equal(data["adjacency"][i, :n, :n], cell.matrix) and not data["adjacency"][i, n:].any()
        assert data["labels"][i, :n].tolist() == [OP_LABELS[o] for o in cell.ops]
        assert (data["labels"][i, n:] == -3).all()
        assert data["trainable_parameters"][i] == cell.trainable_parameters
        for k in range(n_repeats):
            got = {m: data[f"{m}_{e}_runs"][i, k] for m in
                   ("val_acc", "test_acc", "train_acc", "train_time", "halfway_val_acc", "halfway_test_acc",
                    "halfway_train_acc", "halfway_train_time")}
            if k >= len(group):
                assert all(np.isnan(v) for v in got.values())
                continue
            f, hw = group[k].final, group[k].halfway
            expected = {"val_acc": f.validation_accuracy, "test_acc": f.test_accuracy,
                        "train_acc": f.train_accuracy, "train_time": f.training_time,
                        "halfway_val_acc": hw.validation_accuracy, "halfway_test_acc": hw.test_accuracy,
                        "halfway_train_acc": hw.train_accuracy, "halfway_train_time": hw.training_time}
            for m, v in expected.items():
                assert got[m] == np.float32(v), (h, e, k, m)
        assert data[f"val_acc_{e}"][i] == np.float32(group[0].final.validation_accuracy)
    top = budgets[-1]
    for h, i in row.items():
        times = [r.final.training_time for r in runs[(h, top)]]
        assert data["final_training_time"][i] == pytest.approx(np.mean(times), rel=1e-6)
    for e in budgets:
        assert data[f"val_acc_{e}_runs"].dtype == np.float32
        assert data[f"val_acc_{e}_runs"].shape == (len(hashes), n_repeats)


def test_conversion_of_the_synthetic_fixture(fixtures: Path, records: dict[str, list[NB101Record]],
                                             tmp_path: Path) -> None:
    table = convert_tfrecord(fixtures / SYNTHETIC, tmp_path / "synthetic.npz", progress=False)
    data = np.load(table, allow_pickle=False)
    assert data["hash"].shape == (2,) and data["val_acc_108_runs"].shape == (2, 3)
    # Per-repeat values in file order, checked by hand: repeats train 1000/1001/1002 s to 0.90/0.91/0.92 valid.
    assert np.allclose(data["val_acc_108_runs"], [[0.90, 0.91, 0.92]] * 2)
    assert np.allclose(data["test_acc_108_runs"], [[0.89, 0.90, 0.91]] * 2)
    assert np.allclose(data["train_time_108_runs"], [[1000, 1001, 1002]] * 2)
    assert np.allclose(data["final_training_time"], [1001, 1001])
    assert np.allclose(data["val_acc_108"], [0.90, 0.90])
    _check_table_against_records(table, records[SYNTHETIC])
    meta = read_table_metadata(table)
    assert meta["schema"]["format"] == "seminas_ray.nb101_table"
    assert meta["source"]["records"] == 6 and meta["source"]["repeats"] == 3 and meta["source"]["epochs"] == [108]
    assert meta["source"]["size"] == (fixtures / SYNTHETIC).stat().st_size


@pytest.mark.parametrize("name", EC_NAS)
def test_conversion_of_multi_budget_fixtures(fixtures: Path, records: dict[str, list[NB101Record]],
                                             tmp_path: Path, name: str) -> None:
    table = convert_tfrecord(fixtures / name, tmp_path / "t.npz", progress=False)
    _check_table_against_records(table, records[name])


def test_converted_table_is_a_superset_of_the_shared_subset_schema(fixtures: Path, data_dir: Path,
                                                                     tmp_path: Path) -> None:
    table = np.load(convert_tfrecord(fixtures / "carbon_4V9E.tfrecord", tmp_path / "t.npz", progress=False))
    subset = np.load(data_dir / "nb101" / "nb101_subset20k.npz")
    for key in subset.files:
        assert key in table.files, key
        assert table[key].dtype == subset[key].dtype, key
        assert table[key].shape[1:] == subset[key].shape[1:], key


def test_uneven_repeats_are_padded_with_nan(fixtures: Path, records: dict[str, list[NB101Record]],
                                            tmp_path: Path) -> None:
    recs = records["carbon_4V9E.tfrecord"]
    first = recs[0].module_hash
    # Drop the later repeats of one cell at 108 epochs: that row keeps 1 run, every other row keeps 3.
    kept = [r for r in recs if not (r.module_hash == first and r.epochs == 108)]
    kept += [r for r in recs if r.module_hash == first and r.epochs == 108][:1]
    path = write_nb101_tfrecord(tmp_path / "uneven.tfrecord", kept)
    table = convert_tfrecord(path, tmp_path / "t.npz", progress=False)
    _check_table_against_records(table, kept)
    data = np.load(table)
    i = [h.decode() for h in data["hash"]].index(first)
    assert np.isnan(data["val_acc_108_runs"][i, 1:]).all() and not np.isnan(data["val_acc_108_runs"][i, 0])


def test_conversion_of_a_truncated_file_leaves_nothing_behind(fixtures: Path, tmp_path: Path) -> None:
    src_dir, out_dir = tmp_path / "src", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    data = (fixtures / "carbon_4V9E.tfrecord").read_bytes()
    src = src_dir / "truncated.tfrecord"
    src.write_bytes(data[: len(data) - 100])
    with pytest.raises(TFRecordError, match="truncated payload"):
        convert_tfrecord(src, out_dir / "table.npz", progress=False)
    assert list(out_dir.iterdir()) == []


def test_conversion_rejects_a_hash_stored_with_two_cells(records: dict[str, list[NB101Record]],
                                                        tmp_path: Path) -> None:
    a = records["carbon_4V9E.tfrecord"][0]
    b = next(r for r in records["carbon_4V9E.tfrecord"] if r.module_hash != a.module_hash)
    clash = NB101Record(a.module_hash, b.epochs, b.matrix, b.ops, b.trainable_parameters, b.total_time,
                        b.evaluations)
    path = write_nb101_tfrecord(tmp_path / "clash.tfrecord", [a, clash])
    with pytest.raises(NB101RecordError, match="different adjacency or operations"):
        convert_tfrecord(path, tmp_path / "t.npz", progress=False)
    assert not (tmp_path / "t.npz").exists()


def test_load_or_convert_reuses_an_up_to_date_table(fixtures: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMINAS_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "nasbench_tiny.tfrecord"
    src.write_bytes((fixtures / SYNTHETIC).read_bytes())
    table = load_or_convert(src, progress=False)
    assert table == tmp_path / "cache" / "nasbench101" / "nasbench_tiny.npz"
    stamp = table.stat().st_mtime_ns
    assert load_or_convert(src, progress=False) == table
    assert table.stat().st_mtime_ns == stamp  # reused, not rewritten
    # A replaced source (different content and size, newer mtime) is converted again.
    src.write_bytes((fixtures / "epochs_4_spec_3V9E.tfrecord").read_bytes())
    os.utime(src, ns=(stamp + 10**9, stamp + 10**9))
    load_or_convert(src, progress=False)
    meta = read_table_metadata(table)
    assert meta["source"]["records"] == 21 and meta["source"]["size"] == src.stat().st_size
    # A damaged table is replaced, not trusted.
    table.write_bytes(b"not an npz")
    os.utime(table, ns=(stamp + 2 * 10**9, stamp + 2 * 10**9))
    assert read_table_metadata(load_or_convert(src, progress=False))["source"]["records"] == 21


def test_encode_nb101_payload_matches_the_nasbench_layout(records: dict[str, list[NB101Record]]) -> None:
    r = records[SYNTHETIC][0]
    fields = json.loads(encode_nb101_payload(r))
    assert fields[:4] == [r.module_hash, 108, "010001000", "input,conv3x3-bn-relu,output"]
    assert parse_nb101_record(encode_nb101_payload(r)).final == r.final


@pytest.mark.parametrize("name", sorted(FIXTURE_COUNTS))
def test_converted_cells_rehash_to_their_hash_column(fixtures: Path, tmp_path: Path, name: str) -> None:
    """The padded adjacency/labels layout is the shared schema: re-hashing each row reproduces its hash."""
    from seminas_ray.spaces.nb101_hash import nb101_hash_arrays

    data = np.load(convert_tfrecord(fixtures / name, tmp_path / "t.npz", progress=False))
    rehashed = nb101_hash_arrays(data["adjacency"], data["labels"], data["n_vertices"])
    assert rehashed.tolist() == data["hash"].tolist()
