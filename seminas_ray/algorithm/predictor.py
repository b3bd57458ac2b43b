"""The semi-supervised accuracy predictor of SemiNAS, on its own: ``fit(archs, values)`` / ``predict(archs)``.

The paper: "the trained accuracy predictor can be applied to various NAS algorithms by predicting the accuracy of
candidate architectures for them". :class:`SemiSupervisedPredictor` is that predictor, trained exactly as steps 1-3
of a SemiNAS round train the controller (the same functions of ``seminas_ray.algorithm.seminas``, the same seeds):

1. pretrain the NAO encoder-predictor(-decoder) on the N labelled architectures (:func:`pretrain_controller`);
2. draw M unlabelled architectures (never a labelled or excluded key) and pseudo-label them with it;
3. retrain on labelled x ``up_sample`` + the M pseudo-labelled ones (:func:`self_train_controller`).

With ``config.self_training=False`` (or ``n_unlabelled=0``) step 3 is skipped: the supervised predictor, the paper's
ablation. Predictions are in the units of the normalised targets (``normalise_targets``): only their order matters
to a search. The predictor keeps its controller between fits (``warm_start``), as a SemiNAS search never
re-initialises its controller, and its state is a plain dict (``state_dict``) so an optimizer can save it.
"""
from __future__ import annotations

import time
from typing import Any
from typing import Sequence

import numpy as np

from seminas_ray.algorithm.config import SemiNASConfig
from seminas_ray.algorithm.pseudo_label import LocalPseudoLabeler
from seminas_ray.algorithm.seminas import normalise_targets
from seminas_ray.algorithm.seminas import pretrain_controller
from seminas_ray.algorithm.seminas import self_train_controller
from seminas_ray.controller import NAOController
from seminas_ray.spaces.base import Arch
from seminas_ray.spaces.base import SearchSpace


class SemiSupervisedPredictor:
    """NAO encoder + predictor trained on N labels + M pseudo-labels (M = 0 or ``self_training=False``: supervised).

    ``config``: the SemiNAS settings that shape the training (``n_unlabelled``, ``up_sample``, ``self_training``,
    epochs, schedule, ``target_norm``, ``controller``). ``seed``: the default seed of :meth:`fit`.
    ``pseudo_labeler``: a ``PseudoLabeler`` (``None``: :class:`LocalPseudoLabeler`). ``pool_size``: draw at least
    this many unlabelled architectures per fit (the first ``n_unlabelled`` of them are the pseudo-labels, the whole
    pool is kept in :attr:`pool` for a caller that screens it; ``0`` = just the pseudo-labels).
    """

    def __init__(self, space: SearchSpace, config: SemiNASConfig | None = None, *, seed: int = 0,
                 pseudo_labeler: Any = None, device: str | None = None, warm_start: bool = True,
                 pool_size: int = 0) -> None:
        self.space = space
        self.config = config or SemiNASConfig()
        self.seed = int(seed)
        self.pseudo_labeler = pseudo_labeler
        self.device = device
        self.warm_start = bool(warm_start)
        self.pool_size = int(pool_size)
        self.controller: NAOController | None = None
        self.pool: tuple[np.ndarray, np.ndarray] = _empty_pool(space)  # (tokens, predictions of the last fit)
        self.last_stats: dict[str, Any] = {}

    @property
    def supervised(self) -> bool:
        """True when :meth:`fit` trains on the labels only (the ablation)."""
        return not self.config.self_training or self.config.n_unlabelled <= 0

    # -- fit / predict --------------------------------------------------------------------------------------------
    def fit(self, archs: Sequence[Arch], values: Sequence[float], *, seed: int | None = None,
            exclude: Sequence[str] = ()) -> dict[str, Any]:
        """Train on ``archs`` labelled with ``values`` (higher is better); returns the round statistics.

        ``seed`` (default: the constructor's) seeds a fresh controller, the early-stopping splits and the
        unlabelled pool, as ``RoundWork`` seeds them; ``exclude``: keys the pool must not contain besides the
        labelled ones (e.g. everything a search has asked)."""
        if len(archs) != len(values) or len(archs) == 0:
            raise ValueError(f"fit needs as many values as architectures (at least one), got {len(archs)} and "
                             f"{len(values)}")
        cfg, seed = self.config, self.seed if seed is None else int(seed)
        t0 = time.perf_counter()
        seqs = self.space.encode_many(list(archs))
        targets, norm = normalise_targets(np.asarray(values, dtype=np.float64), cfg)
        stats: dict[str, Any] = {"n_labelled": len(targets), "target_norm": norm}
        controller = NAOController(self.space, cfg.controller, seed=seed, device=self.device)
        if self.warm_start and self.controller is not None:
            controller.load_state_dict(self.controller.state_dict())
        stats.update(pretrain_controller(controller, seqs, targets, cfg, seed))
        excluded = frozenset(exclude) | frozenset(self.space.key(a) for a in archs)
        pool_seqs, pool_preds = self._draw_pool(controller, excluded, seed, stats)
        n_pseudo = min(cfg.n_unlabelled, len(pool_preds))
        if n_pseudo > 0 and cfg.self_training:
            stats.update(self_train_controller(controller, seqs, targets, pool_seqs[:n_pseudo], pool_preds[:n_pseudo],
                                               cfg, seed))
            if len(pool_preds):
                pool_preds = controller.predict(pool_seqs)  # the screening pool, ranked by the final predictor
        self.controller = controller
        self.pool = (pool_seqs, np.asarray(pool_preds, dtype=np.float64))
        stats["fit_seconds"] = round(time.perf_counter() - t0, 3)
        self.last_stats = stats
        return stats

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted (normalised) scores of ``archs``; higher is better. ``RuntimeError`` before :meth:`fit`."""
        if self.controller is None:
            raise RuntimeError("predict() before fit()")
        if len(archs) == 0:
            return np.zeros((0,), dtype=np.float64)
        return np.asarray(self.controller.predict(self.space.encode_many(list(archs))), dtype=np.float64)

    def predict_tokens(self, seqs: np.ndarray) -> np.ndarray:
        """Like :meth:`predict` for token sequences (``[n, seq_len]``)."""
        if self.controller is None:
            raise RuntimeError("predict_tokens() before fit()")
        return np.asarray(self.controller.predict(np.asarray(seqs, dtype=np.int64)), dtype=np.float64)

    def _draw_pool(self, controller: NAOController, exclude: frozenset[str], seed: int,
                   stats: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """The unlabelled pool (pseudo-labels first), drawn with ``seed + 2`` as ``RoundWork`` draws it."""
        n = max(self.config.n_unlabelled, self.pool_size)
        if n <= 0:
            return _empty_pool(self.space)
        labeler = self.pseudo_labeler or LocalPseudoLabeler()
        t0 = time.perf_counter()
        seqs, preds = labeler(self.space, self.config.controller, controller.get_weights(), n, seed + 2, exclude)
        dt = time.perf_counter() - t0
        stats.update(n_pool=len(preds), pseudo_label_seconds=round(dt, 3))
        return seqs.astype(np.int64), preds.astype(np.float64)

    # -- state ----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any] | None:
        """The controller's state (``None`` before the first fit); the pool is not kept."""
        return None if self.controller is None else self.controller.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is None:
            self.controller = None
            return
        self.controller = NAOController.from_state_dict(self.space, state, device=self.device)


def _empty_pool(space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, space.seq_len), dtype=np.int64), np.zeros((0,), dtype=np.float64)
