"""Any Ray Tune ``Searcher`` (e.g. ``OptunaSearch``'s TPE) driven as an ask/tell optimizer over a space's tokens.

The inverse of :class:`~seminas_ray.distributed.searcher.AskTellSearcher`: there our optimizers run inside Tune;
here Tune's off-the-shelf searchers run in the same ask/tell loop as SemiNAS and its baselines, so a benchmark
compares them on equal terms (same encoding, same counting oracle, no trial overhead).

Encoding: one categorical parameter ``tok{i}`` per token position of the space whose allowed tokens
(``space.allowed_tokens(i)``) are more than one; fixed positions are filled in. This is the controller's own
encoding (NB101: 21 edge bits and 6 op slots; NB201: 6 op slots), so TPE and SemiNAS see the same representation.

Proposals that are not a new member (invalid graph, an architecture outside a subset table, or one already asked)
are *projected*: the nearest member not asked yet by Hamming distance of token sequences (ties broken by a seeded
order). The searcher is told the projected architecture's score for the configuration it proposed, the usual way a
continuous or unconstrained optimizer is run on a finite table. Every ask is then one new, counted query; without
the projection TPE would spend most suggestions on the ~95% of cells the 20k NB101 slice has no number for.
"""
from __future__ import annotations

from typing import Any
from typing import Callable
from typing import Mapping
from typing import Sequence

import numpy as np
import optuna
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from seminas_ray.algorithm.base import AskTellOptimizer
from seminas_ray.spaces.base import Arch
from seminas_ray.spaces.base import SearchSpace

METRIC = "score"


def token_param_space(space: SearchSpace) -> tuple[dict[str, list[int]], dict[int, int]]:
    """``({"tok03": [1, 2], ...}, {fixed position: token})`` for the space's token positions."""
    free: dict[str, list[int]] = {}
    fixed: dict[int, int] = {}
    width = len(str(space.seq_len - 1))
    for i in range(space.seq_len):
        allowed = [int(t) for t in space.allowed_tokens(i)]
        if not allowed:
            raise ValueError(f"position {i} of {space.name} allows no token")
        if len(allowed) == 1:
            fixed[i] = allowed[0]
        else:
            free[f"tok{i:0{width}d}"] = allowed
    return free, fixed


class NearestMember:
    """Nearest not-yet-taken member of a finite architecture set, by Hamming distance of token sequences."""

    def __init__(self, space: SearchSpace, members: Sequence[Arch] | Mapping[str, Arch],
                 rng: np.random.Generator) -> None:
        if not members:
            raise ValueError("NearestMember needs at least one member")
        # a mapping key -> arch (a table's keys) saves hashing every member again
        keys = list(members) if isinstance(members, Mapping) else [space.key(a) for a in members]
        archs = list(members.values()) if isinstance(members, Mapping) else list(members)
        order = rng.permutation(len(archs))  # seeded tie-breaking: argmin takes the first in this order
        self.archs = [archs[i] for i in order]
        self.keys = [keys[i] for i in order]
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.seqs = space.encode_many(self.archs).astype(np.int8)
        self.free = np.ones(len(self.archs), dtype=bool)

    def take(self, key: str) -> None:
        """Mark ``key`` as asked (no-op for non-members)."""
        i = self.index.get(key)
        if i is not None:
            self.free[i] = False

    def nearest(self, tokens: np.ndarray) -> Arch | None:
        """The free member closest to ``tokens``; ``None`` when every member is taken."""
        if not self.free.any():
            return None
        dist = (self.seqs != np.asarray(tokens, dtype=np.int8)[None, :]).sum(axis=1).astype(np.int32)
        dist[~self.free] = np.iinfo(np.int32).max
        return self.archs[int(np.argmin(dist))]


class TuneSearcherOptimizer(AskTellOptimizer[Arch]):
    """Ask/tell over a Ray Tune ``Searcher``.

    Args:
        space: the search space (its token encoding is the searcher's parameter space).
        make_searcher: ``(param_space, metric, mode, seed) -> Searcher``, e.g. :func:`optuna_tpe`. The param space
            is a dict of ``tune.choice`` domains over the token positions.
        members: the finite set queries must come from (a benchmark's architectures, as a sequence or as a
            ``key -> arch`` mapping); proposals outside it or already asked are projected onto it (see the module
            docstring).
        seed: seeds the searcher and the tie-breaking of the projection.
        budget: total queries (``None``: until every member has been asked).
    """

    name = "tune-searcher"

    def __init__(self, space: SearchSpace[Arch], make_searcher: Callable[..., Any],
                 members: Sequence[Arch] | Mapping[str, Arch], seed: int = 0, budget: int | None = None) -> None:
        super().__init__(space, seed, budget)
        free, self._fixed = token_param_space(space)
        self._names = list(free)
        self._positions = [int(name[3:]) for name in self._names]
        param_space = {name: tune.choice(choices) for name, choices in free.items()}
        self.searcher = make_searcher(param_space, METRIC, "max", seed)
        self._members = NearestMember(space, members, np.random.default_rng(seed))
        self._trial_of: dict[str, str] = {}  # key -> Tune trial id of the suggestion it answered
        self._n_suggested = 0
        self.n_projected = 0                 # suggestions answered by a different (nearest) member

    @property
    def finished(self) -> bool:
        return super().finished or (not self._members.free.any() and not self.pending_keys())

    def _tokens(self, config: dict[str, Any]) -> np.ndarray:
        tokens = np.zeros(self.space.seq_len, dtype=np.int64)
        for pos, tok in self._fixed.items():
            tokens[pos] = tok
        for name, pos in zip(self._names, self._positions):
            tokens[pos] = int(config[name])
        return tokens

    def ask(self, n: int = 1) -> list[Arch]:
        out: list[Arch] = []
        for _ in range(self._room(n)):
            trial_id = f"t{self._n_suggested:06d}"
            config = self.searcher.suggest(trial_id)
            if config is None or config == "FINISHED":
                break
            self._n_suggested += 1
            tokens = self._tokens(config)
            arch = self.space.decode(tokens)
            key = None if arch is None else self.space.key(arch)
            if key is None or not self._is_new(key) or key not in self._members.index:
                arch = self._members.nearest(tokens)
                if arch is None:
                    self.searcher.on_trial_complete(trial_id, error=True)
                    break
                self.n_projected += 1
                key = self.space.key(arch)
            self._register(arch)
            self._members.take(key)
            self._trial_of[key] = trial_id
            out.append(arch)
        return out

    def _on_given(self, key: str, arch: Arch) -> None:
        if key in self._members.index:
            self._members.take(key)  # asked without the wrapped searcher: never map a suggestion onto it

    def _on_observe(self, key: str, arch: Arch, score: float | None) -> None:
        self._on_given(key, arch)

    def _on_tell(self, key: str, arch: Arch, score: float | None) -> None:
        trial_id = self._trial_of.pop(key, None)
        if trial_id is None:  # a given point (take_first): the wrapped searcher never suggested it
            return
        if score is None:
            self.searcher.on_trial_complete(trial_id, error=True)
        else:
            self.searcher.on_trial_complete(trial_id, {METRIC: float(score)})


def optuna_tpe(param_space: dict[str, Any], metric: str, mode: str, seed: int) -> Any:
    """Ray Tune's ``OptunaSearch`` with its default sampler (Optuna's TPE), seeded."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return OptunaSearch(space=OptunaSearch.convert_search_space(param_space), metric=metric, mode=mode, seed=seed)


SEARCHERS: dict[str, Callable[..., Any]] = {"tpe": optuna_tpe}
