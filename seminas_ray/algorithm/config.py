"""SemiNAS hyper-parameters, the paper presets, and overrides from the command line or YAML.

Presets (see ``docs/nasbench.md`` and the spec's table of the two code versions):

- ``paper-2000`` — Dec-2020 code / NeurIPS abstract: N=1100 labelled seeds, M=10,000 pseudo-labelled, 300 new per
  round, 3 rounds (2,000 queries), hidden 64, MLP 16, pretrain 1000 / train 500 epochs, labelled up-sampling 10,
  z-score targets with the authors' fixed NB101 mean/std, linear predictor output.
- ``paper-300`` — Apr-2020 code / arXiv v1 abstract: N=100, M=10,000, 100 new per round, 2 rounds (300 queries),
  hidden 16, MLP 64, pretrain 10,000 / train 1000 epochs, up-sampling 100, min-max targets with sigmoid output.
- ``supervised`` — ``paper-2000`` without self-training: plain NAO, the paper's ablation. The controller never
  trains on pseudo-labels and generation starts from labelled architectures only; the predicted pool of M
  architectures is drawn only so that a round which gradient ascent cannot fill is topped up from the predictor's
  best, exactly as SemiNAS is (``fill_with_predicted``; on the 4.7% NB101 slice generation decodes only a few members
  per round, and without the top-up plain NAO stops after its seed round). ``--set n_unlabelled=0`` removes it.

By default (``schedule="fast"``) the epoch counts are *maxima*: each training phase stops early when the loss on a
held-out tenth of the labelled architectures stops improving, and processes at most ``fast_sample_budget``
architecture passes (100k: about a minute on one CPU core). The paper's train phase alone is 500 epochs over
21,000 rows, ~10M passes per round (hours on a CPU). ``schedule="exact"`` (CLI ``--exact-paper-schedule``) trains
exactly the paper's epochs, for fidelity on a GPU.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import yaml

from seminas_ray.controller.config import CONTROLLER_SCHEMA
from seminas_ray.controller.config import ControllerConfig
from seminas_ray.utils.schema import dataclass_schema
from seminas_ray.utils.schema import validate_settings

TARGET_NORMS = ("zscore-fixed", "zscore", "minmax")
SCHEDULES = ("fast", "exact")
GENERATORS = ("nao", "evolution", "random")


@dataclass(frozen=True)
class ScreenConfig:
    """How a predictor-screened SemiNAS (``generator`` ``evolution`` or ``random``) proposes a round.

    After the seed round of ``n_seed`` random architectures, every round fits the semi-supervised predictor on all
    labels (``algorithm/predictor.py``) and proposes ``max(n_per_round, ceil(round_growth x labelled))`` new
    architectures (capped by the budget), so the number of rounds grows with the log of the budget and the search is
    the same whatever budget it is given (an anytime search):

    - ``evolution`` (SemiNAS (RE)): a ``1 - pool_share`` share of the round are children of regularized evolution
      (aging population of the last ``population_size`` labels, tournaments of ``tournament_size``), each slot
      drawing ``candidates_per_child`` distinct new mutations; the predictor's best of all candidates are asked.
      The other ``pool_share`` are the predictor's best of ``pool_size`` unlabelled random architectures.
    - ``random``: all of the round from the predictor's best of the unlabelled pool (predictor-screened random
      search; ``pool_share`` is ignored).
    """

    round_growth: float = 0.25       # a round proposes this share of the labelled set (at least n_per_round)
    candidates_per_child: int = 10   # mutations the predictor screens per child of evolution
    pool_share: float = 0.0          # evolution: share of a round taken from the predictor's best of the pool
    pool_size: int = 10_000          # unlabelled random architectures ranked per round (capped by the space)
    population_size: int = 100       # evolution: aging population (the last labels)
    tournament_size: int = 10        # evolution: parent = best of this many population members

    def __post_init__(self) -> None:
        for name in ("candidates_per_child", "population_size", "tournament_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"screen.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.pool_size, int) or isinstance(self.pool_size, bool) or self.pool_size < 0:
            raise ValueError(f"screen.pool_size must be a non-negative integer, got {self.pool_size!r}")
        if not 0.0 <= self.round_growth <= 10.0:
            raise ValueError(f"screen.round_growth must be in [0, 10], got {self.round_growth!r}")
        if not 0.0 <= self.pool_share <= 1.0:
            raise ValueError(f"screen.pool_share must be in [0, 1], got {self.pool_share!r}")
        if self.tournament_size > self.population_size:
            raise ValueError("need screen.tournament_size <= screen.population_size")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SemiNASConfig:
    """Everything that defines one SemiNAS search (the controller's own settings are nested).

    Frozen: a config is a value that optimizers, round tasks and saved states share, so a change must make a new
    one (``dataclasses.replace`` or :func:`config_for_table`), never alter a config someone else holds.
    """

    n_seed: int = 1100                 # N: labelled architectures of the seed round
    n_unlabelled: int = 10_000         # M: architectures pseudo-labelled per round
    n_per_round: int = 300             # new architectures proposed per round
    n_rounds: int = 3                  # rounds after the seed round
    top_k: int = 100                   # seeds of gradient-ascent generation
    up_sample: int = 10                # copies of the labelled data next to the pseudo-labelled data
    pretrain_epochs: int = 1000        # controller epochs on labelled data (a maximum when schedule="fast")
    train_epochs: int = 500            # epochs on labelled x up_sample + pseudo-labelled (a maximum when fast)
    schedule: str = "fast"             # "fast" (early stopping) or "exact" (the paper's fixed epochs)
    patience: int = 30                 # early-stopping patience in epochs (fast schedule)
    fast_sample_budget: int = 100_000  # fast schedule: at most this many architecture passes per training phase
    valid_fraction: float = 0.1        # held-out share of the labelled data for early stopping (fast schedule)
    min_holdout: int = 1               # early stopping only when the held-out share is at least this many labels
    target_norm: str = "zscore-fixed"  # "zscore-fixed" (mean/std below), "zscore" (labelled pool), "minmax"
    target_mean: float = 0.908192301   # the authors' NB101 constants (validation accuracy as a fraction)
    target_std: float = 0.023961
    seed_filter: float | None = None   # the paper's ">= 0.90" seed rule; rejected queries are still counted
    step_size_start: float = 1.0       # gradient-ascent step size eta: start, increment, maximum
    step_size_increment: float = 1.0
    max_step_size: float = 100.0
    fill_with_predicted: bool = True   # if generation finds too few new archs, fill with top predicted unlabelled
    self_training: bool = True         # retrain on the pseudo-labelled pool (False: the supervised NAO ablation)
    budget: int | None = None          # total queries; None = n_seed + n_rounds * n_per_round
    generator: str = "nao"             # "nao" (the paper's gradient ascent), "evolution" / "random" (screened)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)  # the screened generators' settings

    def __post_init__(self) -> None:
        if isinstance(self.controller, dict):
            object.__setattr__(self, "controller", ControllerConfig.from_dict(self.controller))  # frozen dataclass
        if isinstance(self.screen, dict):
            object.__setattr__(self, "screen", ScreenConfig(**self.screen))
        self.validate()

    # -- derived ----------------------------------------------------------------------------------------
    @property
    def total_queries(self) -> int:
        """Queries the search will spend (the budget, or the round structure's total)."""
        if self.budget is not None:
            return int(self.budget)
        return self.n_seed + self.n_rounds * self.n_per_round

    @property
    def effective_rounds(self) -> int:
        """Rounds after the seed round needed to spend ``total_queries``."""
        rest = self.total_queries - self.n_seed
        return max(0, -(-rest // self.n_per_round))

    def validate(self) -> None:
        def positive(name: str, allow_zero: bool = False) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
                raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}")

        for name in ("n_seed", "n_per_round", "top_k", "up_sample", "patience", "fast_sample_budget", "min_holdout"):
            positive(name)
        for name in ("n_unlabelled", "n_rounds", "pretrain_epochs", "train_epochs"):
            positive(name, allow_zero=True)
        for name in ("fill_with_predicted", "self_training"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.generator not in GENERATORS:
            raise ValueError(f"generator must be one of {GENERATORS}, got {self.generator!r}")
        if self.target_norm not in TARGET_NORMS:
            raise ValueError(f"target_norm must be one of {TARGET_NORMS}, got {self.target_norm!r}")
        if not 0.0 < self.valid_fraction < 0.5:
            raise ValueError(f"valid_fraction must be in (0, 0.5), got {self.valid_fraction!r}")
        if self.target_std <= 0:
            raise ValueError(f"target_std must be > 0, got {self.target_std!r}")
        if not 0 < self.step_size_start <= self.max_step_size or self.step_size_increment <= 0:
            raise ValueError("need 0 < step_size_start <= max_step_size and step_size_increment > 0")
        if self.budget is not None:
            if not isinstance(self.budget, int) or isinstance(self.budget, bool):
                raise ValueError(f"budget must be an integer, got {self.budget!r}")
            if self.budget < self.n_seed:
                raise ValueError(
                    f"budget {self.budget} is below the seed set (n_seed={self.n_seed}): the search needs at least "
                    f"n_seed queries; lower n_seed (e.g. --set n_seed={max(1, self.budget // 2)}) or raise the budget"
                )

    # -- (de)serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["controller"] = self.controller.to_dict()
        out["screen"] = self.screen.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SemiNASConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SemiNAS setting(s) {unknown}; known: {sorted(known)}")
        return cls(**validate_settings(SEMINAS_SCHEMA, copy.deepcopy(data), "SemiNAS"))


#: The types of :class:`SemiNASConfig` (the controller's and the screen's nested) as a strict schema, checked before the range checks.
SCREEN_SCHEMA = dataclass_schema(ScreenConfig)
SEMINAS_SCHEMA = dataclass_schema(SemiNASConfig, nested={"controller": CONTROLLER_SCHEMA, "screen": SCREEN_SCHEMA})


#: ``--preset recommended``: SemiNAS (RE), the semi-supervised predictor screening regularized evolution's children
#: and an unlabelled pool (``algorithm/screened.py``). The rule, in terms of the budget B and the space S only: 20
#: random seeds (B >= 20), then rounds of max(10, ceil(B_labelled / 4)) (so about log(B / 20) / log(1.25) rounds, the
#: controller cost grows with log B), half of each round the predictor's best of min(10,000, |S| - asked) random
#: architectures, half its best of 10 mutations per child of regularized evolution (population 100, tournament 25);
#: M = min(1,000, |S| - asked) pseudo-labels, the labels up-sampled 5x; the small paper-300 controller (hidden 16,
#: MLP 64) trained at most 20,000 passes per phase (warm-started from the last round, as SemiNAS never re-initialises
#: it), pool z-score targets, and no early stopping until the held-out tenth has 100 labels (``min_holdout``: with
#: fewer, its loss restored first-epoch weights and some fits ranked cells backwards; docs/results.md, "The predictor
#: on its own").
RECOMMENDED: dict[str, Any] = {
    "generator": "evolution", "n_seed": 20, "n_per_round": 10, "n_rounds": 28, "n_unlabelled": 1000, "top_k": 100,
    "up_sample": 5, "pretrain_epochs": 1000, "train_epochs": 500, "fast_sample_budget": 20_000,
    "target_norm": "zscore", "min_holdout": 100,
    "controller": {"hidden_size": 16, "mlp_hidden_size": 64, "output_activation": "linear"},
    "screen": {"round_growth": 0.25, "candidates_per_child": 10, "pool_share": 0.5, "pool_size": 10_000,
               "population_size": 100, "tournament_size": 25},
}


PRESETS: dict[str, dict[str, Any]] = {
    "paper-2000": {},
    "paper-300": {
        "n_seed": 100, "n_unlabelled": 10_000, "n_per_round": 100, "n_rounds": 2, "up_sample": 100,
        "pretrain_epochs": 10_000, "train_epochs": 1000, "target_norm": "minmax",
        "controller": {"hidden_size": 16, "mlp_hidden_size": 64, "output_activation": "sigmoid"},
    },
    "supervised": {"self_training": False, "up_sample": 1},
    # the variant we recommend for a search that does not reproduce the paper (see docs/results.md and RECOMMENDED)
    "recommended": RECOMMENDED,
}


def preset(name: str) -> dict[str, Any]:
    """The overrides that define preset ``name`` on top of the ``SemiNASConfig`` defaults."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def merge_settings(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base`` (nested dicts merged, other values replaced)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_settings(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The first line of a YAML error, with its line and column when known."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def parse_override(text: str) -> dict[str, Any]:
    """``"controller.hidden_size=16"`` -> ``{"controller": {"hidden_size": 16}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not of the form key=value")
    dotted, raw = text.split("=", 1)
    if not dotted.strip():
        raise ValueError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ValueError(f"--set {text}: the value is not valid YAML ({_yaml_problem(exc)}); quote it") from None
    out: dict[str, Any] = {}
    cursor = out
    parts = dotted.strip().split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return out


def build_config(
    preset_name: str | None = "paper-2000",
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    base: dict[str, Any] | None = None,
    **explicit: Any,
) -> SemiNASConfig:
    """Defaults, then a preset (by name, or a task's own ``base`` settings), then a YAML file, then ``key=value``
    overrides, then explicit keyword values (highest wins)."""
    data = merge_settings({}, SemiNASConfig().to_dict())
    data = merge_settings(data, preset(preset_name) if preset_name is not None else {})
    data = merge_settings(data, base or {})
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:  # includes tags such as !!python/object, which safe_load refuses
            raise ValueError(f"--config {path}: not a plain YAML mapping of settings ({_yaml_problem(exc)})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--config {path}: cannot be read as text ({exc})") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {path} must hold a mapping of settings, got {type(loaded).__name__}")
        data = merge_settings(data, loaded)
    for text in overrides or []:
        data = merge_settings(data, parse_override(text))
    data = merge_settings(data, {k: v for k, v in explicit.items() if v is not None})
    return SemiNASConfig.from_dict(data)


def config_for_table(
    table: Any,
    preset_name: str | None = "paper-300",
    *,
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    budget: int | None = None,
    exact_schedule: bool = False,
) -> SemiNASConfig:
    """The SemiNAS config for searching ``table`` (a ``seminas_ray.benchmarks.Table``), as a new frozen config.

    The units are adapted: the authors' fixed z-score constants are NB101 validation accuracies as fractions, so a
    table in other units (NB201's percent) gets pool z-scores instead, unless ``target_norm`` was set explicitly in
    ``overrides``. ``ValueError`` when the budget exceeds the table's architectures.
    """
    overrides = list(overrides or [])
    cfg = build_config(preset_name, config_file, overrides, budget=budget,
                       schedule="exact" if exact_schedule else None)
    user_set_norm = any(o.split("=", 1)[0].strip() == "target_norm" for o in overrides)
    if table.units != "fraction" and cfg.target_norm == "zscore-fixed" and not user_set_norm:
        cfg = dataclasses.replace(cfg, target_norm="zscore")
    if cfg.total_queries > len(table):
        raise ValueError(f"budget {cfg.total_queries} exceeds the {len(table):,} architectures in {table.name}")
    return cfg
