"""Ranking metrics for predictor quality (numpy/scipy only)."""
from __future__ import annotations

import numpy as np
from scipy import stats


def kendall_tau(pred: np.ndarray, true: np.ndarray) -> float | None:
    """Kendall's tau-b between predictions and truth; None when undefined (fewer than 2 points or constant)."""
    pred, true = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    if len(pred) < 2 or np.all(pred == pred[0]) or np.all(true == true[0]):
        return None
    return float(stats.kendalltau(pred, true).statistic)


def spearman_rho(pred: np.ndarray, true: np.ndarray) -> float | None:
    """Spearman's rank correlation; None when undefined."""
    pred, true = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    if len(pred) < 2 or np.all(pred == pred[0]) or np.all(true == true[0]):
        return None
    return float(stats.spearmanr(pred, true).statistic)


def precision_at_k(pred: np.ndarray, true: np.ndarray, k: int) -> float:
    """Share of the true top-``k`` found in the predicted top-``k``."""
    k = min(k, len(pred))
    top_pred = set(np.argsort(-np.asarray(pred), kind="stable")[:k].tolist())
    top_true = set(np.argsort(-np.asarray(true), kind="stable")[:k].tolist())
    return len(top_pred & top_true) / k if k else 0.0
