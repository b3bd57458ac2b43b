"""Tabular benchmarks (framework-free): tables with lookups, the counting oracle, and file loading.

- :mod:`.tables`: ``NB101Table`` (npz), ``NB101ApiSampleTable`` (API JSON), ``NB201Table`` (CSV).
- :mod:`.oracle`: ``Oracle`` (counts every query, dedupes by key, budget) and the stateless ``evaluate``.
- :mod:`.loading`: ``load_table(path, benchmark=..., dataset=...)`` sniffs the format.
- :mod:`.tfrecord` / :mod:`.nb101_convert`: the TensorFlow-free NAS-Bench-101 tfrecord reader and converter.
- ``python -m seminas_ray.benchmarks info|verify --data PATH``: inspect or check a table file.
"""
from __future__ import annotations

from seminas_ray.benchmarks.loading import TABLE_KINDS
from seminas_ray.benchmarks.loading import load_table
from seminas_ray.benchmarks.oracle import BudgetExhausted
from seminas_ray.benchmarks.oracle import Evaluation
from seminas_ray.benchmarks.oracle import Oracle
from seminas_ray.benchmarks.oracle import evaluate
from seminas_ray.benchmarks.oracle import repeat_index
from seminas_ray.benchmarks.tables import NB101ApiSampleTable
from seminas_ray.benchmarks.tables import NB101Table
from seminas_ray.benchmarks.tables import NB201Table
from seminas_ray.benchmarks.tables import Table
from seminas_ray.benchmarks.tables import TableFormatError
from seminas_ray.benchmarks.tables import VerifyReport

__all__ = [
    "TABLE_KINDS",
    "BudgetExhausted",
    "Evaluation",
    "NB101ApiSampleTable",
    "NB101Table",
    "NB201Table",
    "Oracle",
    "Table",
    "TableFormatError",
    "VerifyReport",
    "evaluate",
    "load_table",
    "repeat_index",
]
