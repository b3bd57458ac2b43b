"""Speed of the TensorFlow-free NAS-Bench-101 tfrecord reader and converter on a synthetic file.

Writes a file of ``--records`` records in the exact ``nasbench_only108.tfrecord`` format (7-vertex cells, 3 repeats
per cell at 108 epochs, so payload sizes match the real file's ~390 bytes/record), then times: the container
read with and without CRC checks, the full record decode, and the conversion to the npz table. Prints a table,
writes ``DIR/tfrecord_read_speed.csv`` and an extrapolation to the real 499 MB / 1,270,872-record file.

    python benchmarks/tfrecord_read_speed.py --records 50000 --out bench_out/
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from seminas_ray.benchmarks.nb101_convert import convert_tfrecord
from seminas_ray.benchmarks.tfrecord import Evaluation
from seminas_ray.benchmarks.tfrecord import NB101Record
from seminas_ray.benchmarks.tfrecord import iter_nb101_records
from seminas_ray.benchmarks.tfrecord import iter_tfrecord
from seminas_ray.benchmarks.tfrecord import write_nb101_tfrecord

REAL_RECORDS = 1_270_872  # nasbench_only108.tfrecord
REAL_BYTES = 499 * 1024 * 1024
OPS = ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"]


def synthetic_records(n_records: int, seed: int = 0) -> list[NB101Record]:
    """Realistic-sized records: 7-vertex upper-triangular cells, 3 repeats each (hashes are just unique)."""
    rng = np.random.default_rng(seed)
    records: list[NB101Record] = []
    cell = 0
    while len(records) < n_records:
        matrix = np.triu(rng.integers(0, 2, size=(7, 7)), 1).astype(np.uint8)
        matrix[0, 1] = matrix[5, 6] = 1
        ops = ["input", *rng.choice(OPS, size=5).tolist(), "output"]
        module_hash = hashlib.md5(f"cell-{cell}".encode()).hexdigest()
        params = int(rng.integers(200_000, 50_000_000))
        for repeat in range(3):
            if len(records) == n_records:
                break
            acc = rng.uniform(0.1, 0.95, size=6)
            evaluations = [
                Evaluation(0.0, 0.0, 0.1, 0.1, 0.1),
                Evaluation(54.0, float(rng.uniform(300, 3000)), *acc[:3]),
                Evaluation(108.0, float(rng.uniform(600, 6000)), *acc[3:]),
            ]
            records.append(NB101Record(module_hash, 108, matrix, ops, params, float(rng.uniform(600, 7000)),
                                       evaluations))
        cell += 1
    return records


def _time(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    count = fn()
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=Path("bench_out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "nasbench_synthetic.tfrecord"
        records = synthetic_records(args.records)
        write_s, _ = _time(lambda: (write_nb101_tfrecord(src, records), len(records))[1])
        size = src.stat().st_size
        steps: list[tuple[str, Callable[[], int]]] = [
            ("read container, CRC checked", lambda: sum(1 for _ in iter_tfrecord(src))),
            ("read container, no CRC", lambda: sum(1 for _ in iter_tfrecord(src, verify_crc=False))),
            ("decode records (CRC checked)", lambda: sum(1 for _ in iter_nb101_records(src))),
            ("convert to npz table", lambda: (convert_tfrecord(src, Path(tmp) / "t.npz", progress=False), 0)[1]
             or args.records),
        ]
        rows = [{"step": "write (writer)", "records": len(records), "seconds": write_s}]
        for name, fn in steps:
            seconds, count = _time(fn)
            rows.append({"step": name, "records": count, "seconds": seconds})

    for row in rows:
        row["records_per_s"] = row["records"] / row["seconds"]
        row["mb_per_s"] = size / 2**20 * row["records"] / len(records) / row["seconds"]
        row["real_only108_s"] = REAL_RECORDS / row["records_per_s"]
    print(f"synthetic file: {len(records):,} records, {size / 2**20:.1f} MiB ({size / len(records):.0f} B/record)")
    print(f"{'step':32s} {'records':>9s} {'seconds':>8s} {'records/s':>10s} {'MiB/s':>7s} {'only108 (s)':>12s}")
    for row in rows:
        print(f"{row['step']:32s} {row['records']:9,d} {row['seconds']:8.2f} {row['records_per_s']:10,.0f} "
              f"{row['mb_per_s']:7.1f} {row['real_only108_s']:12.1f}")
    print(f"(only108 = extrapolated to the real {REAL_RECORDS:,}-record, {REAL_BYTES / 2**20:.0f} MiB file)")
    path = args.out / "tfrecord_read_speed.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
