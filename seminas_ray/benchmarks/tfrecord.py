"""TensorFlow-free reader and writer for the NAS-Bench-101 ``nasbench_*.tfrecord`` files (numpy + stdlib only).

Why by hand: the released benchmark is a TFRecord file of JSON payloads with a base64 protobuf inside; reading it
through TensorFlow (and the ``protobuf`` package) would pull a large framework into a framework-free layer. The
formats are small and fully specified (see ``shared/reference/nasbench101_format.md``):

* **Container.** Each record is ``u64le length | u32le masked_crc32c(length bytes) | payload | u32le
  masked_crc32c(payload)``. CRC-32C (Castagnoli) is checked for many records at once with numpy (one vectorised
  table step per byte column, across every record of a read chunk), because a per-byte Python loop would take
  minutes on the real 499 MB file.
* **Payload.** UTF-8 JSON ``[module_hash, epochs, raw_adjacency, raw_operations, raw_metrics]`` where
  ``raw_metrics`` is base64 of a proto2 ``nasbench.ModelMetrics``. The protobuf is decoded by hand and unknown
  fields of every wire type are skipped (the EC-NAS-Bench files carry energy and timestamp fields).

Errors: a corrupt or truncated container raises :class:`TFRecordError`, a malformed payload
:class:`NB101RecordError` (a subclass); both messages name the file and the byte offset of the bad record.

The writer (:func:`write_tfrecord`, :func:`write_nb101_tfrecord`) lives here, not in the tests, because synthetic
files in the exact format are useful to users and to other tests and benchmarks too.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import struct
import secrets
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Callable
from typing import Iterable
from typing import Iterator
from typing import NamedTuple
from typing import Sequence

import numpy as np

__all__ = [
    "TFRecordError",
    "NB101RecordError",
    "Evaluation",
    "NB101Record",
    "crc32c",
    "crc32c_many",
    "masked_crc32c",
    "iter_tfrecord",
    "parse_nb101_record",
    "iter_nb101_records",
    "encode_model_metrics",
    "encode_nb101_payload",
    "write_tfrecord",
    "write_nb101_tfrecord",
]

# Bytes read per step. Large enough that the per-column numpy CRC loop runs over tens of thousands of records at
# once (amortising the per-call overhead), small enough to keep memory modest.
DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024
_HEADER = 12  # u64 length + u32 length CRC
_FOOTER = 4  # u32 payload CRC
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


class TFRecordError(ValueError):
    """A TFRecord container is corrupt or truncated (the message names the file and the byte offset)."""


class NB101RecordError(TFRecordError):
    """A record's payload is not a valid NAS-Bench-101 record (the message names the file and the byte offset)."""


# ---------------------------------------------------------------------------------------------------------------
# CRC-32C
# ---------------------------------------------------------------------------------------------------------------
def _make_crc_table() -> np.ndarray:
    """The 256-entry table of the reflected Castagnoli polynomial 0x82F63B78."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


_CRC_TABLE = _make_crc_table()
_CRC_TABLE_LIST = [int(v) for v in _CRC_TABLE]


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C of ``data`` (plain Python; meant for short inputs such as the 8 length bytes of a header)."""
    crc = _U32
    table = _CRC_TABLE_LIST
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _U32


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """The TFRecord "masked" CRC-32C of ``data`` (rotate right by 15, add a constant)."""
    return _mask(crc32c(data))


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _U32


def _mask_many(crc: np.ndarray) -> np.ndarray:
    crc = crc.astype(np.uint32, copy=False)
    # uint32 arithmetic wraps modulo 2**32, which is exactly the masking rule.
    return ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(_MASK_DELTA)


def crc32c_many(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """CRC-32C of many byte ranges ``buffer[starts[i] : starts[i] + lengths[i]]`` at once (uint32 array).

    Vectorised across records: records are ordered by length (longest first) and the table step is applied to
    byte column ``j`` of every record still longer than ``j``, so the Python loop runs ``max(lengths)`` times
    however many records there are, and no work is spent on padding.
    """
    buffer = np.asarray(buffer, dtype=np.uint8)
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    count = len(starts)
    if count == 0:
        return np.zeros(0, dtype=np.uint32)
    order = np.argsort(-lengths, kind="stable")
    pos = starts[order].copy()
    sorted_lengths = lengths[order]
    max_len = int(sorted_lengths[0]) if count else 0
    # active[j] = how many records are longer than j (a prefix of the longest-first order).
    active = np.searchsorted(-sorted_lengths, -np.arange(max_len, dtype=np.int64), side="left")
    crc = np.full(count, _U32, dtype=np.uint32)
    table = _CRC_TABLE
    mask = np.uint32(0xFF)
    shift = np.uint32(8)
    for j in range(max_len):
        n = int(active[j])
        c = crc[:n]
        index = (c ^ buffer[pos[:n]]) & mask
        crc[:n] = table[index] ^ (c >> shift)
        pos[:n] += 1
    out = np.empty(count, dtype=np.uint32)
    out[order] = crc ^ np.uint32(_U32)
    return out


def _gather_u32le(buffer: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Little-endian u32 values stored at ``buffer[starts]`` (unaligned gather)."""
    b = [buffer[starts + k].astype(np.uint32) for k in range(4)]
    return b[0] | (b[1] << np.uint32(8)) | (b[2] << np.uint32(16)) | (b[3] << np.uint32(24))


# ---------------------------------------------------------------------------------------------------------------
# Container reader
# ---------------------------------------------------------------------------------------------------------------
def iter_tfrecord(
    path: str | os.PathLike[str],
    *,
    verify_crc: bool = True,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(byte_offset, payload)`` for every record of a TFRecord file, in file order.

    ``verify_crc`` checks both CRCs of every record (vectorised per read chunk). ``on_progress(n)`` is called
    with the number of file bytes consumed after each chunk (for a progress bar). Records before a bad one are
    yielded, then :class:`TFRecordError` is raised naming the file, the bad record's byte offset and the
    problem (bad length CRC, bad data CRC, truncated header, truncated payload).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        file_size = os.fstat(fh.fileno()).st_size
        carry = b""
        base = 0  # file offset of carry[0]
        while True:
            data = fh.read(max(int(chunk_bytes), 1))
            at_eof = not data
            buf = carry + data if carry else data
            starts, lengths, stop, problem = _walk_headers(buf, base, file_size, path, verify_crc)
            bad = _first_crc_failure(buf, starts, lengths, base, path) if verify_crc and starts else None
            if bad is not None:
                index, message = bad
                starts = starts[:index]
                problem = message
            for s, n in zip(starts, lengths):
                yield base + s, buf[s + _HEADER : s + _HEADER + n]
            if problem is not None:
                raise TFRecordError(problem)
            if on_progress is not None and stop:
                on_progress(stop)
            carry = buf[stop:]
            base += stop
            if at_eof:
                if carry:  # cannot happen: _walk_headers reports every incomplete tail against the file size
                    raise TFRecordError(f"{path}: truncated record at byte offset {base}")
                return


def _walk_headers(
    buf: bytes, base: int, file_size: int, path: Path, verify_crc: bool
) -> tuple[list[int], list[int], int, str | None]:
    """Find the complete records in ``buf`` (which starts at file offset ``base``).

    Returns the record starts and payload lengths, how many bytes they span, and an error message when the
    data can never complete a record (decided against the file size, so a corrupt huge length fails at once
    instead of reading the rest of the file).
    """
    starts: list[int] = []
    lengths: list[int] = []
    unpack = struct.Struct("<Q").unpack_from
    pos = 0
    size = len(buf)
    while True:
        remaining = size - pos
        if remaining < _HEADER:
            if remaining > 0 and base + size >= file_size:
                return starts, lengths, pos, (
                    f"{path}: truncated header at byte offset {base + pos}: "
                    f"{remaining} of {_HEADER} header bytes present"
                )
            return starts, lengths, pos, None
        (length,) = unpack(buf, pos)
        end = pos + _HEADER + length + _FOOTER
        if end > size:
            # Check this one length now (once per chunk at most): a corrupt length must not make us buffer the
            # rest of the file, or be reported as a truncation.
            if verify_crc:
                (stored,) = struct.unpack_from("<I", buf, pos + 8)
                if masked_crc32c(buf[pos : pos + 8]) != stored:
                    return starts, lengths, pos, (
                        f"{path}: bad length CRC at byte offset {base + pos} (length field reads {length})"
                    )
            if base + end <= file_size:
                return starts, lengths, pos, None  # the rest of this record is in the next chunk
            have = file_size - (base + pos) - _HEADER
            return starts, lengths, pos, (
                f"{path}: truncated payload at byte offset {base + pos}: the record needs {length} payload bytes "
                f"+ {_FOOTER} CRC bytes, the file has {max(have, 0)} left"
            )
        starts.append(pos)
        lengths.append(length)
        pos = end


def _first_crc_failure(
    buf: bytes, starts: list[int], lengths: list[int], base: int, path: Path
) -> tuple[int, str] | None:
    """Index and message of the first record in ``buf`` with a bad length or payload CRC, else ``None``."""
    array = np.frombuffer(buf, dtype=np.uint8)
    s = np.asarray(starts, dtype=np.int64)
    n = np.asarray(lengths, dtype=np.int64)
    length_ok = _mask_many(crc32c_many(array, s, np.full(len(s), 8, dtype=np.int64))) == _gather_u32le(array, s + 8)
    data_ok = _mask_many(crc32c_many(array, s + _HEADER, n)) == _gather_u32le(array, s + _HEADER + n)
    bad = np.flatnonzero(~(length_ok & data_ok))
    if len(bad) == 0:
        return None
    i = int(bad[0])
    offset = base + starts[i]
    if not length_ok[i]:
        return i, f"{path}: bad length CRC at byte offset {offset} (length field reads {lengths[i]})"
    return i, f"{path}: bad data CRC at byte offset {offset} (payload of {lengths[i]} bytes)"


# ---------------------------------------------------------------------------------------------------------------
# NAS-Bench-101 records
# ---------------------------------------------------------------------------------------------------------------
class Evaluation(NamedTuple):
    """One ``nasbench.EvaluationData`` message (the checkpoint path is dropped)."""

    current_epoch: float
    training_time: float
    train_accuracy: float
    validation_accuracy: float
    test_accuracy: float


@dataclass(frozen=True)
class NB101Record:
    """One training run: (architecture, epoch budget, repeat), as stored in a ``nasbench_*.tfrecord`` file."""

    module_hash: str
    epochs: int
    matrix: np.ndarray = field(repr=False)  # uint8 [n, n], pruned, upper-triangular
    ops: list[str]
    trainable_parameters: int
    total_time: float
    evaluations: list[Evaluation] = field(repr=False)

    @property
    def halfway(self) -> Evaluation:
        """``evaluation_data[1]``: the metrics halfway through training (as the nasbench API reads them)."""
        return self._evaluation(1)

    @property
    def final(self) -> Evaluation:
        """``evaluation_data[2]``: the metrics at the end of training (as the nasbench API reads them)."""
        return self._evaluation(2)

    def _evaluation(self, index: int) -> Evaluation:
        if len(self.evaluations) <= index:
            raise ValueError(
                f"record {self.module_hash} ({self.epochs} epochs) has {len(self.evaluations)} evaluations, "
                f"the nasbench API needs at least {index + 1}"
            )
        return self.evaluations[index]


class _Malformed(Exception):
    """Internal: a decoding problem, re-raised as NB101RecordError with the file and offset attached."""


def _where(source: str | os.PathLike[str] | None, offset: int | None) -> str:
    name = str(source) if source is not None else "<payload>"
    return f"{name}: record at byte offset {offset}" if offset is not None else f"{name}: record"


_JSON = json.JSONDecoder()


def _split_payload(payload: bytes) -> tuple[str, int, str, str, str]:
    """The five JSON fields of a payload, type-checked (raises ``_Malformed``)."""
    try:
        fields = _JSON.decode(payload.decode("utf-8"))  # decode first: skips json.loads' encoding sniffing
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Malformed(f"payload is not UTF-8 JSON ({exc})") from None
    if not isinstance(fields, list) or len(fields) != 5:
        raise _Malformed("payload is not a JSON list of 5 fields [hash, epochs, adjacency, operations, metrics]")
    module_hash, epochs, adjacency, operations, metrics = fields
    if not isinstance(module_hash, str) or len(module_hash) != 32:
        raise _Malformed(f"module hash {module_hash!r} is not a 32-character string")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs <= 0:
        raise _Malformed(f"epochs {epochs!r} is not a positive integer")
    if not isinstance(adjacency, str) or not isinstance(operations, str) or not isinstance(metrics, str):
        raise _Malformed("adjacency, operations and metrics must be strings")
    return module_hash, epochs, adjacency, operations, metrics


def _adjacency_size(adjacency: str) -> int:
    n = int(round(len(adjacency) ** 0.5))
    if n < 1 or n * n != len(adjacency):
        raise _Malformed(f"adjacency string of length {len(adjacency)} is not a square matrix")
    return n


def _decode_matrix(adjacency: str) -> np.ndarray:
    n = _adjacency_size(adjacency)
    if adjacency.strip("01"):  # a str method: far cheaper per record than a numpy range check
        raise _Malformed(f"adjacency {adjacency!r} has characters other than '0' and '1'")
    return (np.frombuffer(adjacency.encode("ascii"), dtype=np.uint8) - _ZERO).reshape(n, n)


_ZERO = np.uint8(ord("0"))


def _b64(metrics: str) -> bytes:
    """Strict base64, except that line breaks and other whitespace are allowed (EC-NAS-Bench wraps its lines)."""
    try:
        return binascii.a2b_base64(metrics, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return binascii.a2b_base64("".join(metrics.split()), strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise _Malformed(f"metrics field is not base64 ({exc})") from None


# -- protobuf (proto2 wire format) ------------------------------------------------------------------------------
_DOUBLE = struct.Struct("<d")
_FIVE_DOUBLES = struct.Struct("<xdxdxdxdxd")  # tag byte, double, ... for EvaluationData fields 1..5
_FIVE_TAGS = bytes([0x09, 0x11, 0x19, 0x21, 0x29])


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise _Malformed("protobuf varint runs past the end of its message")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Malformed("protobuf varint is longer than 10 bytes")


def _skip(buf: bytes, pos: int, end: int, wire_type: int, number: int) -> int:
    """Skip one unknown field's value (varint, fixed64, length-delimited, fixed32)."""
    if wire_type == 0:
        _, pos = _varint(buf, pos, end)
    elif wire_type == 1:
        pos += 8
    elif wire_type == 2:
        size, pos = _varint(buf, pos, end)
        pos += size
    elif wire_type == 5:
        pos += 4
    else:
        raise _Malformed(f"protobuf field {number} has unsupported wire type {wire_type}")
    if pos > end:
        raise _Malformed(f"protobuf field {number} runs past the end of its message")
    return pos


def _decode_evaluation(buf: bytes, pos: int, end: int) -> tuple[float, float, float, float, float]:
    """Decode an ``EvaluationData`` message in ``buf[pos:end]`` (missing doubles default to 0.0, as in proto2)."""
    # Fast path: the five doubles in field order, as the nasbench writer emits them.
    if end - pos >= 45 and buf[pos : pos + 45 : 9] == _FIVE_TAGS:
        values = _FIVE_DOUBLES.unpack_from(buf, pos)
        pos += 45
        if pos == end:
            return values  # type: ignore[return-value]
        out = list(values)
    else:
        out = [0.0, 0.0, 0.0, 0.0, 0.0]
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if 1 <= number <= 5 and wire_type == 1:
            if pos + 8 > end:
                raise _Malformed(f"EvaluationData field {number} runs past the end of its message")
            out[number - 1] = _DOUBLE.unpack_from(buf, pos)[0]
            pos += 8
        elif number == 0:
            raise _Malformed("protobuf field number 0 in EvaluationData")
        else:  # checkpoint_path (field 6) and any unknown field
            pos = _skip(buf, pos, end, wire_type, number)
    return out[0], out[1], out[2], out[3], out[4]


def _decode_metrics(buf: bytes) -> tuple[list[tuple[float, float, float, float, float]], int, float]:
    """Decode a serialized ``ModelMetrics``: (evaluations, trainable_parameters, total_time)."""
    evaluations: list[tuple[float, float, float, float, float]] = []
    params = 0
    total_time = 0.0
    pos = 0
    end = len(buf)
    while pos < end:
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 1 and wire_type == 2:
            size = buf[pos] if pos < end else 0x80
            if size < 0x80:  # one-byte length: the common case, inlined
                pos += 1
            else:
                size, pos = _varint(buf, pos, end)
            if pos + size > end:
                raise _Malformed("ModelMetrics.evaluation_data runs past the end of the message")
            evaluations.append(_decode_evaluation(buf, pos, pos + size))
            pos += size
        elif number == 2 and wire_type == 0:
            value, pos = _varint(buf, pos, end)
            value &= 0xFFFFFFFF  # int32: negative values are sign-extended 10-byte varints
            params = value - (1 << 32) if value >= 1 << 31 else value
        elif number == 3 and wire_type == 1:
            if pos + 8 > end:
                raise _Malformed("ModelMetrics.total_time runs past the end of the message")
            total_time = _DOUBLE.unpack_from(buf, pos)[0]
            pos += 8
        elif number == 0:
            raise _Malformed("protobuf field number 0 in ModelMetrics")
        else:
            pos = _skip(buf, pos, end, wire_type, number)
    return evaluations, params, total_time


def parse_nb101_record(
    payload: bytes,
    *,
    source: str | os.PathLike[str] | None = None,
    offset: int | None = None,
) -> NB101Record:
    """Decode one NAS-Bench-101 payload (JSON + base64 protobuf) into an :class:`NB101Record`.

    ``source`` and ``offset`` only serve the error message: a malformed payload raises
    :class:`NB101RecordError` naming them and what is wrong.
    """
    try:
        module_hash, epochs, adjacency, operations, metrics = _split_payload(payload)
        matrix = _decode_matrix(adjacency)
        ops = operations.split(",")
        if len(ops) != matrix.shape[0]:
            raise _Malformed(f"{len(ops)} operations for a {matrix.shape[0]}x{matrix.shape[0]} adjacency matrix")
        evaluations, params, total_time = _decode_metrics(_b64(metrics))
    except _Malformed as exc:
        raise NB101RecordError(f"{_where(source, offset)}: {exc}") from None
    return NB101Record(
        module_hash=module_hash,
        epochs=epochs,
        matrix=matrix,
        ops=ops,
        trainable_parameters=params,
        total_time=total_time,
        evaluations=[Evaluation(*e) for e in evaluations],
    )


def iter_nb101_records(
    path: str | os.PathLike[str],
    *,
    verify_crc: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[NB101Record]:
    """Every record of a ``nasbench_*.tfrecord`` file, decoded, in file order."""
    for offset, payload in iter_tfrecord(path, verify_crc=verify_crc, on_progress=on_progress):
        yield parse_nb101_record(payload, source=path, offset=offset)


# ---------------------------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------------------------
def _encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # proto int32/int64: two's complement as a 10-byte varint
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_model_metrics(
    evaluations: Sequence[Sequence[float]],
    trainable_parameters: int,
    total_time: float,
    *,
    extra_fields: bytes = b"",
) -> bytes:
    """Serialize a ``nasbench.ModelMetrics`` message (proto2 wire format, fields in number order).

    ``extra_fields`` is appended verbatim (already-encoded fields), e.g. to test that readers skip unknown ones.
    """
    out = bytearray()
    for evaluation in evaluations:
        if len(evaluation) != 5:
            raise ValueError(f"an evaluation needs 5 values (epoch, time, train, valid, test), got {evaluation!r}")
        body = b"".join(bytes([(number << 3) | 1]) + _DOUBLE.pack(float(v)) for number, v in enumerate(evaluation, 1))
        out += b"\x0a" + _encode_varint(len(body)) + body
    out += b"\x10" + _encode_varint(int(trainable_parameters))
    out += b"\x19" + _DOUBLE.pack(float(total_time))
    out += extra_fields
    return bytes(out)


def encode_nb101_payload(record: NB101Record, *, extra_fields: bytes = b"") -> bytes:
    """The JSON payload the nasbench generator writes for ``record`` (inverse of :func:`parse_nb101_record`)."""
    matrix = np.asarray(record.matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(record.ops):
        raise ValueError(f"matrix of shape {matrix.shape} does not fit {len(record.ops)} operations")
    flat = matrix.reshape(-1)
    if flat.size and (flat.min() < 0 or flat.max() > 1):
        raise ValueError(f"adjacency matrix for {record.module_hash} has entries other than 0 and 1")
    adjacency = (flat.astype(np.uint8) + _ZERO).tobytes().decode("ascii")
    metrics = encode_model_metrics(
        record.evaluations, record.trainable_parameters, record.total_time, extra_fields=extra_fields
    )
    fields = [record.module_hash, int(record.epochs), adjacency, ",".join(record.ops),
              base64.b64encode(metrics).decode("ascii")]
    return json.dumps(fields).encode("utf-8")


def _frame_many(payloads: list[bytes]) -> bytes:
    """TFRecord framing of ``payloads`` (CRCs computed for the whole batch at once)."""
    lengths = np.array([len(p) for p in payloads], dtype=np.int64)
    length_bytes = lengths.astype("<u8").tobytes()
    length_crc = _mask_many(crc32c_many(np.frombuffer(length_bytes, np.uint8), np.arange(len(payloads)) * 8,
                                        np.full(len(payloads), 8)))
    joined = np.frombuffer(b"".join(payloads), dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    data_crc = _mask_many(crc32c_many(joined, starts, lengths))
    pack = struct.Struct("<QI").pack
    crc_pack = struct.Struct("<I").pack
    return b"".join(
        pack(len(p), int(lc)) + p + crc_pack(int(dc)) for p, lc, dc in zip(payloads, length_crc, data_crc)
    )


def _temp_path_beside(path: Path) -> Path:
    """A fresh temp file name in ``path``'s folder (same file system, so ``os.replace`` is atomic).

    Opened with mode ``"xb"`` rather than ``tempfile.mkstemp`` so the final file gets the usual umask permissions
    instead of mkstemp's private 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"


def write_tfrecord(path: str | os.PathLike[str], payloads: Iterable[bytes], *, batch: int = 20_000) -> Path:
    """Write ``payloads`` as a TFRecord file, atomically (temp file in the same folder, then ``os.replace``)."""
    path = Path(path)
    tmp_name = _temp_path_beside(path)
    try:
        with open(tmp_name, "xb") as fh:
            pending: list[bytes] = []
            for payload in payloads:
                pending.append(bytes(payload))
                if len(pending) >= batch:
                    fh.write(_frame_many(pending))
                    pending = []
            if pending:
                fh.write(_frame_many(pending))
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def write_nb101_tfrecord(path: str | os.PathLike[str], records: Iterable[NB101Record]) -> Path:
    """Write NAS-Bench-101 records in the exact ``nasbench_*.tfrecord`` format (atomically)."""
    return write_tfrecord(path, (encode_nb101_payload(r) for r in records))
