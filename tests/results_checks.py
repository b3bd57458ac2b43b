"""Checks of a results folder shared by the tests that run a task end to end (nasbench, imagenet, tts): is every
column and ``report.json`` key documented in docs/results_schema.md, and what the TensorBoard files hold."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
from tensorboardX.proto.event_pb2 import Event

from seminas_ray.benchmarks.tfrecord import iter_tfrecord

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "results_schema.md"


def documented_names() -> set[str]:
    """Every name in backticks in the schema doc; ``a_min/max/mean`` and ``a, b`` lists count for each part."""
    names: set[str] = set()
    for quoted in re.findall(r"`([^`]+)`", SCHEMA.read_text()):
        for part in re.split(r"[,\s]+", quoted):
            if "/" in part and not part.startswith(("runs", "docs")):
                stem, *alts = part.split("/")
                base = stem.rsplit("_", 1)[0]
                names.update([stem, *(f"{base}_{alt}" for alt in alts)])
            names.add(part)
    return names


def undocumented(folder: Path) -> list[str]:
    """``file:column`` for every CSV column and top-level ``report.json`` key of ``folder`` missing in the doc
    (``controller_*`` columns are the SemiNAS round columns under a prefix, as the doc says)."""
    known = documented_names()
    missing = []
    for name in ("evaluations.csv", "rounds.csv", "final.csv"):
        path = folder / name
        if path.is_file() and path.stat().st_size:
            for column in pd.read_csv(path, nrows=1).columns:
                bare = column.removeprefix("controller_") if name == "rounds.csv" else column
                if column not in known and bare not in known:
                    missing.append(f"{name}:{column}")
    report = folder / "report.json"
    if report.is_file():
        missing += [f"report.json:{key}" for key in json.loads(report.read_text()) if key not in known]
    return missing


def tensorboard_scalars(logdir: Path) -> dict[str, dict[int, float]]:
    """``tag -> {step: value}`` from the TensorBoard event files under ``logdir`` (TFRecord frames of Event
    protos, read with the project's TFRecord reader and tensorboardX's protos)."""
    files = sorted(logdir.glob("events.out.tfevents.*"))
    assert files, f"no event file in {logdir}"
    out: dict[str, dict[int, float]] = {}
    for path in files:
        for _, payload in iter_tfrecord(path):
            event = Event.FromString(payload)
            for value in event.summary.value:
                out.setdefault(value.tag, {})[event.step] = value.simple_value
    return out
