"""SemiNAS (Luo et al., NeurIPS 2020) as an ask/tell optimizer, with no Ray inside.

One search = a seed round of ``n_seed`` random architectures, then ``n_rounds`` rounds of:

1. pretrain the encoder-predictor-decoder (NAO) controller on the labelled architectures;
2. draw ``n_unlabelled`` unlabelled architectures and pseudo-label them with the predictor;
3. retrain on labelled x ``up_sample`` + pseudo-labelled (the controller is never re-initialised);
4. take the top ``top_k`` of labelled (true) and pseudo-labelled (predicted) scores, in DESCENDING order
   (the authors' ImageNet and TTS code sorted ascending and started from the worst; we do not);
5. move them uphill in the encoder's per-token space with growing step size and decode new, valid architectures
   whose keys (NB101: the isomorphism-invariant hash) were never asked.

Steps 1-5 are one ``RoundWork``: a picklable callable that carries everything it needs (space, config,
controller state, labelled data, seed) so it gives the same result inline or in a Ray task. Pseudo-labelling goes
through a ``PseudoLabeler`` hook that Ray replaces with sharded remote tasks.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol

import numpy as np

from seminas_ray.algorithm.base import AskTellOptimizer
from seminas_ray.algorithm.config import SemiNASConfig
from seminas_ray.algorithm.metrics import kendall_tau
from seminas_ray.controller import ControllerConfig
from seminas_ray.controller import EarlyStopping
from seminas_ray.controller import NAOController
from seminas_ray.algorithm.pseudo_label import LocalPseudoLabeler
from seminas_ray.algorithm.pseudo_label import sample_distinct
from seminas_ray.spaces.base import Arch
from seminas_ray.spaces.base import SearchSpace


# ------------------------------------------------------------------------------------------------------------
# Pseudo-labelling hook
# ------------------------------------------------------------------------------------------------------------
class PseudoLabeler(Protocol):
    """Draws ``n`` unlabelled architectures (not in ``exclude``) and predicts their normalised scores."""

    def __call__(
        self,
        space: SearchSpace,
        controller_config: ControllerConfig,
        weights: dict[str, np.ndarray],
        n: int,
        seed: int,
        exclude: frozenset[str],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(seqs [n, seq_len] int64, predictions [n] float64)``."""
        ...


# ------------------------------------------------------------------------------------------------------------
# Target normalisation
# ------------------------------------------------------------------------------------------------------------
def normalise_targets(scores: np.ndarray, config: SemiNASConfig) -> tuple[np.ndarray, dict[str, float]]:
    """Scores -> controller targets, as the two code versions do (plus a pool z-score for other benchmarks)."""
    scores = np.asarray(scores, dtype=np.float64)
    if config.target_norm == "zscore-fixed":
        params = {"mean": config.target_mean, "std": config.target_std}
        return (scores - params["mean"]) / params["std"], params
    if config.target_norm == "zscore":
        std = float(scores.std()) or 1.0
        params = {"mean": float(scores.mean()), "std": std}
        return (scores - params["mean"]) / params["std"], params
    lo, hi = float(scores.min()), float(scores.max())
    span = (hi - lo) or 1.0
    return (scores - lo) / span, {"min": lo, "max": hi}


# ------------------------------------------------------------------------------------------------------------
# Controller training (steps 1 and 3 of a round; also used by benchmarks/predictor_quality.py)
# ------------------------------------------------------------------------------------------------------------
def training_epochs(config: SemiNASConfig, paper_epochs: int, n_rows: int) -> int:
    """Epochs of one training phase: the paper's ``paper_epochs`` (``schedule="exact"``), or in the fast schedule at
    most ``fast_sample_budget`` architecture passes over ``n_rows`` rows (at least one epoch)."""
    if config.schedule == "exact":
        return paper_epochs
    return max(1, min(paper_epochs, config.fast_sample_budget // max(1, n_rows)))


def early_stopper(config: SemiNASConfig, n_labelled: int, seed: int) -> EarlyStopping | None:
    """The fast schedule's early stopping (held-out ``valid_fraction`` split drawn with ``seed``), or ``None`` for
    the paper's fixed epochs or when ``n_labelled`` labels are too few to hold out ``min_holdout`` (validated >= 1):
    the loss of 2-10 held-out labels is too noisy to pick an epoch, and restoring the first epoch's weights leaves
    an untrained predictor (docs/results.md, "The predictor on its own"); then the phase runs its pass budget."""
    if config.schedule == "exact" or n_labelled * config.valid_fraction < config.min_holdout:
        return None
    return EarlyStopping(valid_fraction=config.valid_fraction, patience=config.patience, seed=seed)


def pretrain_controller(controller: NAOController, seqs: np.ndarray, targets: np.ndarray, config: SemiNASConfig,
                        seed: int) -> dict[str, Any]:
    """Step 1 of a round: train ``controller`` (in place) on the labelled ``seqs`` and normalised ``targets``.

    ``config.pretrain_epochs`` epochs (a maximum in the fast schedule, see :func:`training_epochs`), early stopping
    split drawn with ``seed + 1`` (``seed`` = the round's seed). Returns the round statistics ``pretrain_epochs``,
    ``pretrain_seconds``, ``pretrain_loss``, ``pretrain_mse``, ``pretrain_nll`` and, with early stopping,
    ``pretrain_valid_loss``.
    """
    fit = controller.fit(seqs, targets, epochs=training_epochs(config, config.pretrain_epochs, len(seqs)),
                         early_stopping=early_stopper(config, len(seqs), seed + 1))
    stats: dict[str, Any] = dict(pretrain_epochs=fit.epochs_run, pretrain_seconds=round(fit.seconds, 3),
                                 pretrain_loss=fit.final_loss, pretrain_mse=fit.final_mse,
                                 pretrain_nll=fit.final_nll)
    if fit.best_valid is not None:
        stats["pretrain_valid_loss"] = fit.best_valid
    return stats


def self_train_controller(controller: NAOController, seqs: np.ndarray, targets: np.ndarray,
                          pseudo_seqs: np.ndarray, pseudo_preds: np.ndarray, config: SemiNASConfig,
                          seed: int) -> dict[str, Any]:
    """Step 3 of a round: continue training ``controller`` (in place) on the labelled data repeated
    ``config.up_sample`` times plus the pseudo-labelled ``(pseudo_seqs, pseudo_preds)``.

    ``config.train_epochs`` epochs (a maximum in the fast schedule, counted over all rows), early stopping split drawn
    with ``seed + 3``; whether to stop early at all depends on the number of LABELLED rows, as in step 1. Returns
    ``train_epochs``, ``train_seconds``, ``train_loss``, ``train_mse`` and ``train_nll``.
    """
    train_seqs = np.concatenate([np.tile(seqs, (config.up_sample, 1)), pseudo_seqs])
    train_targets = np.concatenate([np.tile(targets, config.up_sample), pseudo_preds])
    fit = controller.fit(train_seqs, train_targets, epochs=training_epochs(config, config.train_epochs,
                                                                            len(train_seqs)),
                         early_stopping=early_stopper(config, len(seqs), seed + 3))
    return dict(train_epochs=fit.epochs_run, train_seconds=round(fit.seconds, 3), train_loss=fit.final_loss,
                train_mse=fit.final_mse, train_nll=fit.final_nll)


# ------------------------------------------------------------------------------------------------------------
# One controller round
# ------------------------------------------------------------------------------------------------------------
@dataclass
class RoundResult:
    """What a round hands back to the optimizer."""

    round: int
    archs: list[dict[str, Any]]              # space.to_config of the proposals, in order
    predicted: list[float]                   # their predicted (normalised) scores
    controller_state: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class RoundWork:
    """A self-contained controller round: pretrain -> pseudo-label -> retrain -> top-K -> generate."""

    space: SearchSpace
    config: SemiNASConfig
    round: int
    n_new: int
    seed: int
    labelled_configs: list[dict[str, Any]]
    labelled_scores: list[float]
    exclude_keys: list[str]                  # every key ever asked (labelled, failed and filtered)
    controller_state: dict[str, Any] | None
    pseudo_labeler: Any = None               # a PseudoLabeler; None = LocalPseudoLabeler()
    device: str | None = None                # the controller's torch device; None = cuda when visible, else cpu

    def __call__(self) -> RoundResult:
        t_start = time.perf_counter()
        cfg, space = self.config, self.space
        stats: dict[str, Any] = {"round": self.round, "n_labelled": len(self.labelled_scores)}

        archs = [space.from_config(c) for c in self.labelled_configs]
        seqs = space.encode_many(archs)
        targets, norm = normalise_targets(np.asarray(self.labelled_scores), cfg)
        stats["target_norm"] = norm

        controller = NAOController(space, cfg.controller, seed=self.seed, device=self.device)
        if self.controller_state is not None:
            controller.load_state_dict(self.controller_state)

        # 1. pretrain on labelled data
        stats.update(pretrain_controller(controller, seqs, targets, cfg, self.seed))

        # 2. pseudo-label a fresh unlabelled pool (excluding everything ever asked)
        exclude = frozenset(self.exclude_keys)
        pseudo_seqs, pseudo_preds = self._pseudo_label(controller, exclude, stats)

        # 3. retrain on labelled x up_sample + pseudo-labelled (the supervised ablation skips this and uses
        #    the predicted pool only to fill a short round, never as training data or generation seeds)
        if cfg.n_unlabelled > 0 and cfg.self_training:
            stats.update(self_train_controller(controller, seqs, targets, pseudo_seqs, pseudo_preds, cfg, self.seed))

        # predictor quality on its own training labels (held-out quality is measured when the round's archs return)
        stats["train_kendall_tau"] = kendall_tau(controller.predict(seqs), targets)

        # 4. top-K seeds, descending by (true or predicted) score
        n_pseudo_seeds = len(pseudo_preds) if cfg.self_training else 0  # the ablation seeds from labels only
        pool_seqs = np.concatenate([seqs, pseudo_seqs[:n_pseudo_seeds]])
        pool_scores = np.concatenate([targets, pseudo_preds[:n_pseudo_seeds]])
        order = np.argsort(-pool_scores, kind="stable")[: cfg.top_k]
        seeds = pool_seqs[order]

        # 5. gradient-ascent generation of new, valid, never-asked architectures
        new_configs = self._generate(controller, seeds, exclude, pseudo_seqs, pseudo_preds, stats)

        new_archs = [space.from_config(c) for c in new_configs]
        predicted = controller.predict(space.encode_many(new_archs)).tolist() if new_archs else []
        stats["controller_seconds"] = round(time.perf_counter() - t_start, 3)
        return RoundResult(round=self.round, archs=new_configs, predicted=predicted,
                           controller_state=controller.state_dict(), stats=stats)

    def _pseudo_label(self, controller: NAOController, exclude: frozenset[str],
                      stats: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """``n_unlabelled`` fresh architectures (none in ``exclude``) and the controller's predictions for them
        (empty when ``n_unlabelled`` is 0); throughput goes to ``stats``."""
        cfg, space = self.config, self.space
        if cfg.n_unlabelled <= 0:
            return np.zeros((0, space.seq_len), dtype=np.int64), np.zeros((0,), dtype=np.float64)
        labeler = self.pseudo_labeler or LocalPseudoLabeler()
        t0 = time.perf_counter()
        pseudo_seqs, pseudo_preds = labeler(space, cfg.controller, controller.get_weights(),
                                            cfg.n_unlabelled, self.seed + 2, exclude)
        pseudo_seqs = pseudo_seqs.astype(np.int64)
        pseudo_preds = pseudo_preds.astype(np.float64)
        dt = time.perf_counter() - t0
        stats.update(n_pseudo=len(pseudo_preds), pseudo_label_seconds=round(dt, 3),
                     pseudo_labels_per_s=round(len(pseudo_preds) / dt, 1) if dt > 0 else None)
        return pseudo_seqs, pseudo_preds

    def _generate(self, controller: NAOController, seeds: np.ndarray, exclude: frozenset[str],
                  pseudo_seqs: np.ndarray, pseudo_preds: np.ndarray, stats: dict[str, Any]) -> list[dict[str, Any]]:
        """Up to ``n_new`` valid, never-asked architectures (configs) by gradient ascent from ``seeds``; a short round
        is filled with the predictor's best unlabelled architectures when ``fill_with_predicted`` (a documented
        departure). Counts go to ``stats``."""
        cfg, space = self.config, self.space
        taken: set[str] = set(exclude)
        new_configs: list[dict[str, Any]] = []

        def accept(tokens: np.ndarray) -> bool:
            arch = space.decode(tokens)
            if arch is None or not space.feasible(arch):  # over a resource budget: rejected like an invalid decode
                return False
            key = space.key(arch)
            if key in taken:
                return False
            taken.add(key)
            new_configs.append(space.to_config(arch))
            return True

        gen = controller.generate(seeds, n_new=self.n_new, accept=accept, step_size_start=cfg.step_size_start,
                                  step_size_increment=cfg.step_size_increment, max_step_size=cfg.max_step_size)
        stats.update(n_generated=len(new_configs), generate_seconds=round(gen.seconds, 3),
                     max_step_size_used=max(gen.step_sizes_tried) if gen.step_sizes_tried else None)

        n_filled = 0
        if len(new_configs) < self.n_new and cfg.fill_with_predicted and len(pseudo_preds):
            for idx in np.argsort(-pseudo_preds, kind="stable"):
                if len(new_configs) >= self.n_new:
                    break
                if accept(pseudo_seqs[idx]):
                    n_filled += 1
        stats["n_filled"] = n_filled
        return new_configs


# ------------------------------------------------------------------------------------------------------------
# The optimizer
# ------------------------------------------------------------------------------------------------------------
class SemiNAS(AskTellOptimizer[Arch]):
    """SemiNAS ask/tell optimizer. See the module docstring for the round structure."""

    name = "seminas"

    def __init__(
        self,
        space: SearchSpace[Arch],
        config: SemiNASConfig | None = None,
        seed: int = 0,
        pseudo_labeler: PseudoLabeler | None = None,
        budget: int | None = None,
    ) -> None:
        config = config or SemiNASConfig()
        if budget is not None and budget != config.total_queries:
            config = dataclasses.replace(config, budget=int(budget))  # validated: a budget below n_seed is refused
        super().__init__(space, seed, config.total_queries)
        self.config = config
        self.pseudo_labeler = pseudo_labeler
        self._rng = np.random.default_rng(seed)
        self._queue: list[Arch] = []                    # proposals of the current round not yet asked
        self._round_keys: list[str] = []                # keys proposed in the current round
        self._predicted: dict[str, float] = {}          # key -> predicted score at proposal time
        self._labelled: dict[str, float] = {}           # key -> score, architectures used for training
        self._controller_state: dict[str, Any] | None = None
        self._seed_round_done = False
        self._stalled = False                           # a round generated nothing new: the search ends early

    # -- ask/tell ---------------------------------------------------------------------------------------
    @property
    def budget(self) -> int:
        """The config's ``total_queries``: the config is the one place a SemiNAS budget is set."""
        return self.config.total_queries

    @property
    def finished(self) -> bool:
        return self._stalled or self.n_asked >= self.budget

    def ask(self, n: int = 1) -> list[Arch]:
        out: list[Arch] = []
        while len(out) < n and self.n_asked < self.budget:
            if not self._queue:
                if self.round == 0 and not self._seed_round_done:
                    self._fill_seed_round()
                    if not self._queue:
                        break
                else:
                    break  # waiting for tells and/or controller work
            arch = self._queue.pop(0)
            if self._register(arch):
                out.append(arch)
        return out

    def n_ready(self) -> int:
        """The rest of the current round (fixed when the round was generated; the seed round once drawn)."""
        if self._queue:
            return min(len(self._queue), self.budget - self.n_asked)
        if self.round == 0 and not self._seed_round_done and self.config.seed_filter is None:
            return max(0, min(self.config.n_seed, self.budget) - self.n_asked)
        return 0

    def needs_work(self) -> bool:
        """The current round is fully evaluated and another round is due."""
        return (not self._queue and not self.pending_keys() and self._seed_round_done and not self._stalled
                and self.n_asked < self.budget)

    def _fill_seed_round(self) -> None:
        want = self.config.n_seed - self.n_asked
        if self.config.seed_filter is not None:
            # the paper's rule: keep drawing until n_seed archs pass the filter; each draw is a counted query
            want = self.config.n_seed - len(self._labelled) - len(self.pending_keys())
        if want <= 0:
            self._seed_round_done = True
            return
        exclude = frozenset(self._asked) | frozenset(self._observed)
        archs = sample_distinct(self.space, want, self._rng, exclude)
        if not archs:  # the space has nothing left to draw: the seed round is what it is
            self._seed_round_done = True
        self._queue.extend(archs)
        self._round_keys.extend(self.space.key(a) for a in archs)

    def _on_tell(self, key: str, arch: Arch, score: float | None) -> None:
        filtered = (self.round == 0 and self.config.seed_filter is not None and score is not None
                    and score < self.config.seed_filter)
        if score is not None and not filtered:
            self._labelled[key] = score
        # a filtered seed is counted by the oracle but not used for training (the paper's seed rule)
        if self._queue or self.pending_keys():
            return
        if self.round == 0:
            # given points (take_first) may all be told before the random seed draws are asked: count the seed set
            if self.config.seed_filter is None:
                enough = self.n_asked >= min(self.config.n_seed, self.budget)
            else:
                enough = len(self._labelled) >= self.config.n_seed
            if enough or self.n_asked >= self.budget:
                self._seed_round_done = True
            # else: the next ask() draws more seed candidates
        else:
            self._close_round()

    def _on_given(self, key: str, arch: Arch) -> None:
        self._round_keys.append(key)  # a given point belongs to the round it is asked in (the seed round first)

    def _on_observe(self, key: str, arch: Arch, score: float | None) -> None:
        if score is not None:
            self._labelled[key] = score  # known architectures are labelled data for the controller

    def _close_round(self) -> None:
        """All proposals of the current round are told: log how well they were predicted."""
        if self.round == 0 or not self.rounds_log or self.rounds_log[-1].get("closed"):
            return
        log = self.rounds_log[-1]
        keys = [k for k in self._round_keys if k in self._predicted and self._told.get(k) is not None]
        if len(keys) >= 3:
            true, _ = normalise_targets(np.array([self._told[k] for k in keys]), self.config)
            log["heldout_kendall_tau"] = kendall_tau(np.array([self._predicted[k] for k in keys]), true)
        scores = [self._told[k] for k in self._round_keys if self._told.get(k) is not None]
        log["round_best"] = max(scores) if scores else None
        log["closed"] = True

    # -- controller rounds ------------------------------------------------------------------------------
    def make_work(self) -> RoundWork:
        if not self.needs_work():
            raise RuntimeError("no controller round is due")
        n_new = min(self.config.n_per_round, self.budget - self.n_asked)
        # observed labels first (in observe order), then the asked ones in ask order: independent of completion order
        archs = {k: a for k, (a, _) in self._observed.items()} | self._asked
        keys = [k for k in self._observed if k in self._labelled] + [k for k in self._asked if k in self._labelled]
        return RoundWork(
            space=self.space, config=self.config, round=self.round + 1, n_new=n_new,
            seed=int(self.seed * 1_000_003 + self.round + 1),
            labelled_configs=[self.space.to_config(archs[k]) for k in keys],
            labelled_scores=[self._labelled[k] for k in keys],
            exclude_keys=list(self._asked) + list(self._observed), controller_state=self._controller_state,
            pseudo_labeler=self.pseudo_labeler, device=self.work_device,
        )

    def apply_work(self, result: RoundResult) -> None:
        if result.round != self.round + 1:
            raise ValueError(f"round result {result.round} does not follow round {self.round}")
        self.round = result.round
        self._controller_state = result.controller_state
        self._queue = [self.space.from_config(c) for c in result.archs]
        self._round_keys = [self.space.key(a) for a in self._queue]
        self._predicted.update(zip(self._round_keys, result.predicted))
        self.rounds_log.append(dict(result.stats, n_proposed=len(self._queue)))
        if not self._queue:
            # generation found nothing new at all: the search ends early rather than spin
            self.rounds_log[-1]["note"] = "no new architecture could be generated"
            self._stalled = True

    def round_keys(self) -> list[str]:
        """Keys of every architecture of the current round (the seed set in round 0)."""
        return list(self._round_keys)

    def predicted_score(self, arch: Arch) -> float | None:
        """The controller's prediction for ``arch`` when it was proposed (None for seed-round archs)."""
        return self._predicted.get(self.space.key(arch))

    # -- state ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            config=self.config.to_dict(), rng=self._rng.bit_generator.state, round=self.round,
            queue=[self.space.to_config(a) for a in self._queue], round_keys=list(self._round_keys),
            predicted=dict(self._predicted), labelled=dict(self._labelled),
            controller_state=self._controller_state, rounds_log=list(self.rounds_log),
            seed_round_done=self._seed_round_done, stalled=self._stalled,
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.config = SemiNASConfig.from_dict(state["config"])
        self._rng.bit_generator.state = state["rng"]
        self.round = int(state["round"])
        self._queue = [self.space.from_config(c) for c in state["queue"]]
        self._round_keys = list(state["round_keys"])
        self._predicted = {k: float(v) for k, v in state["predicted"].items()}
        self._labelled = {k: float(v) for k, v in state["labelled"].items()}
        self._controller_state = state["controller_state"]
        self.rounds_log = list(state["rounds_log"])
        self._seed_round_done = bool(state["seed_round_done"])
        self._stalled = bool(state.get("stalled", False))
