"""Cross-validation's bookkeeping: a model scored on every fold, and the folds' mean and sd."""

from __future__ import annotations

import numpy as np

from core import metrics


def fold_summary(per_fold: list[dict]) -> dict:
    """Per-fold song_metrics -> {"mean": ..., "sd": ...} of every number, in the same nesting
    (sd with ddof=1, across folds)."""
    def walk(items):
        first = items[0]
        if isinstance(first, dict):
            keys = [k for k in first if k != "n"]
            out = {k: walk([i[k] for i in items]) for k in keys}
            return {"mean": {k: v["mean"] for k, v in out.items()}, "sd": {k: v["sd"] for k, v in out.items()}}
        values = np.asarray(items, float)
        return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0}

    summary = walk(per_fold)
    summary["mean"]["n"] = summary["sd"]["n"] = int(sum(f["n"] for f in per_fold))
    return summary


def cross_validated(predict_fold, targets: np.ndarray, folds: np.ndarray) -> dict:
    """Score `predict_fold(train, test) -> (len(test), 2)` on every fold -> per-fold metrics, their
    mean and sd, and the out-of-fold predictions of every song."""
    oof = np.zeros((len(targets), 2))
    per_fold = []
    for k in range(int(folds.max()) + 1):
        train, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        oof[test] = predict_fold(train, test)
        per_fold.append(metrics.song_metrics(targets[test], oof[test]))
    return {"per_fold": per_fold, **fold_summary(per_fold), "predictions": oof}
