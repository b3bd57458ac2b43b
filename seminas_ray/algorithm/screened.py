"""SemiNAS with the semi-supervised predictor screening another search: SemiNAS (RE) and screened random search.

The paper's second use of its predictor ("SemiNAS (RE)" in its NAS-Bench-101 table): a search algorithm proposes many
candidates, the predictor trained on N labels + M pseudo-labels ranks them, and only the best-ranked are queried. Here
the round structure is SemiNAS's (a seed round of ``n_seed`` random architectures, then rounds whose heavy work runs
off the event loop as a picklable :class:`ScreenWork`), so the Ray searcher, save/restore and warm starts work as
they do for SemiNAS. Each round:

1. fit :class:`~seminas_ray.algorithm.predictor.SemiSupervisedPredictor` on every label so far (pretrain,
   pseudo-label M, self-train; the controller carries over from round to round as SemiNAS's does);
2. propose ``max(n_per_round, ceil(round_growth x labelled))`` new architectures (capped by the budget):

   - ``generator="evolution"``: a ``1 - pool_share`` share from regularized evolution: per child a tournament
     (``tournament_size`` of the aging population of the last ``population_size`` labels) picks a parent, which
     gets ``candidates_per_child`` distinct new mutations; the predictor's best of all candidates are asked;
   - the rest (all of it for ``generator="random"``): the predictor's best of ``pool_size`` unlabelled random
     architectures (the pool the pseudo-labels are the start of).

   A round that cannot fill its share from one source fills it from the other, then from random draws.

The settings live in ``SemiNASConfig.screen`` (``ScreenConfig``); the supervised ablation is the same search with
``self_training=False`` (the predictor never trains on pseudo-labels).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from seminas_ray.algorithm.config import SemiNASConfig
from seminas_ray.algorithm.metrics import kendall_tau
from seminas_ray.algorithm.predictor import SemiSupervisedPredictor
from seminas_ray.algorithm.pseudo_label import sample_distinct
from seminas_ray.algorithm.seminas import PseudoLabeler
from seminas_ray.algorithm.seminas import RoundResult
from seminas_ray.algorithm.seminas import SemiNAS
from seminas_ray.spaces.base import Arch
from seminas_ray.spaces.base import SearchSpace

SCREENED_NAMES = {"evolution": "seminas-re", "random": "seminas-random"}


def round_size(config: SemiNASConfig, n_labelled: int, room: int) -> int:
    """Architectures a screened round proposes: ``max(n_per_round, ceil(round_growth x n_labelled))``, at most
    ``room`` (what the budget has left)."""
    grown = math.ceil(config.screen.round_growth * max(0, n_labelled))
    return max(0, min(room, max(config.n_per_round, grown)))


@dataclass
class ScreenWork:
    """One screened round: fit the predictor, build candidates, keep the predictor's best. Picklable, pure."""

    space: SearchSpace
    config: SemiNASConfig
    round: int
    n_new: int
    seed: int
    labelled_configs: list[dict[str, Any]]   # observed, then asked, in tell order
    labelled_scores: list[float]
    population: list[int]                    # indices into labelled_*: the aging population, oldest first
    exclude_keys: list[str]                  # every key ever asked or observed
    controller_state: dict[str, Any] | None
    pseudo_labeler: Any = None
    device: str | None = None

    def __call__(self) -> RoundResult:
        t0 = time.perf_counter()
        cfg, space = self.config, self.space
        archs = [space.from_config(c) for c in self.labelled_configs]
        n_pool = self.n_new if cfg.generator == "random" else round(cfg.screen.pool_share * self.n_new)
        predictor = SemiSupervisedPredictor(space, cfg, seed=self.seed, pseudo_labeler=self.pseudo_labeler,
                                            device=self.device, pool_size=cfg.screen.pool_size if n_pool else 0)
        predictor.load_state_dict(self.controller_state)
        stats: dict[str, Any] = {"round": self.round, "generator": cfg.generator}
        stats.update(predictor.fit(archs, self.labelled_scores, exclude=self.exclude_keys))
        taken = set(self.exclude_keys)
        rng = np.random.default_rng([self.seed, 7])
        chosen: list[tuple[Arch, float]] = []
        if self.n_new - n_pool > 0:
            chosen += self._best_mutants(predictor, archs, self.n_new - n_pool, taken, rng, stats)
        chosen += self._best_of_pool(predictor, self.n_new - len(chosen), taken, stats)
        if len(chosen) < self.n_new:  # neither source had enough: random new architectures, ranked
            extra = sample_distinct(space, self.n_new - len(chosen), rng, frozenset(taken))
            chosen += list(zip(extra, predictor.predict(extra).tolist()))
            stats["n_random_fill"] = len(extra)
        stats["train_kendall_tau"] = kendall_tau(predictor.predict(archs), np.asarray(self.labelled_scores))
        stats["controller_seconds"] = round(time.perf_counter() - t0, 3)
        return RoundResult(round=self.round, archs=[space.to_config(a) for a, _ in chosen],
                           predicted=[float(p) for _, p in chosen], controller_state=predictor.state_dict(),
                           stats=stats)

    def _best_mutants(self, predictor: SemiSupervisedPredictor, archs: list[Arch], n: int, taken: set[str],
                      rng: np.random.Generator, stats: dict[str, Any]) -> list[tuple[Arch, float]]:
        """Regularized evolution's ``n`` children, each slot with ``candidates_per_child`` screened mutations; the
        predictor's ``n`` best of all candidates (distinct, never asked)."""
        screen, space = self.config.screen, self.space
        pop = self.population
        candidates: dict[str, Arch] = {}
        for _ in range(n):
            if pop:
                idx = rng.choice(len(pop), size=min(screen.tournament_size, len(pop)), replace=False)
                parent = archs[max((pop[i] for i in idx), key=lambda j: self.labelled_scores[j])]
            else:
                parent = space.sample(rng, 1)[0]
            found = 0
            for _ in range(4 * screen.candidates_per_child):
                child = space.mutate(parent, rng)
                key = space.key(child)
                # an over-budget child (a constrained space, e.g. mbconv under --flops-budget) is never a candidate
                if key not in taken and key not in candidates and space.feasible(child):
                    candidates[key] = child
                    found += 1
                    if found >= screen.candidates_per_child:
                        break
        cands = list(candidates.values())
        preds = predictor.predict(cands)
        order = np.argsort(-preds, kind="stable")[:n]
        stats.update(n_candidates=len(cands), n_from_mutation=len(order))
        out = [(cands[i], float(preds[i])) for i in order]
        taken.update(space.key(a) for a, _ in out)
        return out

    def _best_of_pool(self, predictor: SemiSupervisedPredictor, n: int, taken: set[str],
                      stats: dict[str, Any]) -> list[tuple[Arch, float]]:
        """The predictor's ``n`` best members of its unlabelled pool that were never asked (fewer if it runs out)."""
        out: list[tuple[Arch, float]] = []
        seqs, preds = predictor.pool
        for i in np.argsort(-preds, kind="stable"):
            if len(out) >= n:
                break
            arch = self.space.decode(seqs[i])
            if arch is None or not self.space.feasible(arch):
                continue
            key = self.space.key(arch)
            if key in taken:
                continue
            taken.add(key)
            out.append((arch, float(preds[i])))
        stats["n_from_pool"] = len(out)
        return out


class ScreenedSemiNAS(SemiNAS[Arch]):
    """SemiNAS whose rounds are predictor-screened proposals (``config.generator`` ``evolution`` or ``random``).

    Everything but the round's work is SemiNAS's: the seed round, ask/tell, warm starts, the early end when a round
    proposes nothing, and the state (plus nothing: the population is re-derived from the ask order)."""

    def __init__(self, space: SearchSpace[Arch], config: SemiNASConfig | None = None, seed: int = 0,
                 pseudo_labeler: PseudoLabeler | None = None, budget: int | None = None) -> None:
        config = config or SemiNASConfig(generator="evolution")
        if config.generator not in SCREENED_NAMES:
            raise ValueError(f"ScreenedSemiNAS needs generator 'evolution' or 'random', got {config.generator!r}")
        self.name = SCREENED_NAMES[config.generator]
        super().__init__(space, config, seed=seed, pseudo_labeler=pseudo_labeler, budget=budget)

    def make_work(self) -> ScreenWork:
        if not self.needs_work():
            raise RuntimeError("no controller round is due")
        archs = {k: a for k, (a, _) in self._observed.items()} | self._asked
        # observed labels, then told ones in *ask* order (failed ones are not labels): the order must not depend on
        # which of several concurrent trials finished first, or a Tune run would differ from the same search run
        # sequentially (the population's ageing and the controller's batches follow this order)
        keys = [k for k in self._observed if k in self._labelled] + [k for k in self._asked if k in self._labelled]
        n_new = round_size(self.config, len(keys), self.budget - self.n_asked)
        population = list(range(max(0, len(keys) - self.config.screen.population_size), len(keys)))
        return ScreenWork(
            space=self.space, config=self.config, round=self.round + 1, n_new=n_new,
            seed=int(self.seed * 1_000_003 + self.round + 1),
            labelled_configs=[self.space.to_config(archs[k]) for k in keys],
            labelled_scores=[self._labelled[k] for k in keys], population=population,
            exclude_keys=list(self._asked) + list(self._observed), controller_state=self._controller_state,
            pseudo_labeler=self.pseudo_labeler, device=self.work_device,
        )
