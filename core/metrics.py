"""Metrics for both tasks: NumPy in, plain floats and lists out (ready for a JSON card); and the
registry that names each metric a card, a table or a verdict shows (`METRICS`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The data set's rule (../shared/data/music/SOURCE.md): V >= 0.5 positive, A >= 0.5 high.
QUADRANT_THRESHOLD = 0.5
QUADRANT_NAMES = {1: "happy / excited", 2: "tense / angry", 3: "sad / depressed", 4: "calm / relaxed"}


def quadrant(valence: np.ndarray, arousal: np.ndarray) -> np.ndarray:
    """Russell quadrant 1..4: Q1 +V+A, Q2 -V+A, Q3 -V-A, Q4 +V-A."""
    pos = np.asarray(valence) >= QUADRANT_THRESHOLD
    high = np.asarray(arousal) >= QUADRANT_THRESHOLD
    return np.where(high, np.where(pos, 1, 2), np.where(pos, 4, 3))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Pearson r, R^2, concordance correlation (CCC) and RMSE of one target, shape (n,)."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    r = float(np.corrcoef(t, p)[0, 1]) if t.std() > 0 and p.std() > 0 else 0.0
    residual = np.sum((t - p) ** 2)
    r2 = float(1.0 - residual / np.sum((t - t.mean()) ** 2)) if t.std() > 0 else 0.0
    cov = np.mean((t - t.mean()) * (p - p.mean()))
    ccc = float(2 * cov / (t.var() + p.var() + (t.mean() - p.mean()) ** 2))
    return {"r": r, "r2": r2, "ccc": ccc, "rmse": float(np.sqrt(residual / len(t)))}


def song_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Metrics of (n, 2) (valence, arousal) predictions, the shape `core.evaluate song` prints."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    q_true = quadrant(y_true[:, 0], y_true[:, 1])
    q_pred = quadrant(y_pred[:, 0], y_pred[:, 1])
    return {
        "n": int(len(y_true)),
        "valence": regression_metrics(y_true[:, 0], y_pred[:, 0]),
        "arousal": regression_metrics(y_true[:, 1], y_pred[:, 1]),
        "quadrant_accuracy": float(np.mean(q_true == q_pred)),
    }


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray,
                           class_names: tuple[str, ...]) -> dict:
    """Accuracy, macro-F1, per-class recall and confusion (rows true, columns predicted)."""
    labels = np.asarray(labels).astype(int)
    predicted = np.asarray(probabilities).argmax(axis=1)
    k = len(class_names)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    tp = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    precision = np.divide(tp, predicted_count, out=np.zeros(k), where=predicted_count > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    return {
        "n": int(len(labels)),
        "accuracy": float(tp.sum() / max(len(labels), 1)),
        "macro_f1": float(f1.mean()),
        "per_class_recall": {name: float(r) for name, r in zip(class_names, recall)},
        "confusion": confusion.tolist(),
    }


@dataclass(frozen=True)
class Metric:
    """One figure of a task's metrics, as every table, chart and verdict names and writes it.

    key: its name in a card's comparison entries; label: as a sentence, a column or a chart names it;
    path: where it sits in one `song_metrics` / `classification_metrics` result; compared: whether
    the Compare page gives it an interval and a verdict; decimals, scale, unit: how a value or a
    difference is written (scale 100 with unit " points": a share as percentage points)."""

    key: str
    label: str
    path: tuple[str, ...]
    higher_is_better: bool = True
    decimals: int = 3
    scale: float = 1.0
    unit: str = ""
    compared: bool = True
    percent: bool = False            # shown as a percentage (a share of items), else as a number

    def of(self, metrics: dict) -> float:
        """This metric's value in one metrics result (or a {"mean": ..., "sd": ...} half of one)."""
        for key in self.path:
            metrics = metrics[key]
        return float(metrics)

    def text(self, value: float) -> str:
        """The value as a table shows it: a share as a percentage, a correlation or an F1 with 3 decimals."""
        return f"{value:.1%}" if self.percent else f"{value:.3f}"


_POINTS = dict(decimals=1, scale=100.0, unit=" points")
# Correlations with 3 decimals: the song variants' differences are of the order of 0.01.
METRICS: dict[str, tuple[Metric, ...]] = {
    "song": (Metric("valence_r", "valence r", ("valence", "r")),
             Metric("arousal_r", "arousal r", ("arousal", "r")),
             Metric("valence_ccc", "valence CCC", ("valence", "ccc")),
             Metric("arousal_ccc", "arousal CCC", ("arousal", "ccc"), compared=False),
             Metric("quadrant_accuracy", "quadrant accuracy", ("quadrant_accuracy",), percent=True, **_POINTS)),
    "face": (Metric("accuracy", "accuracy", ("accuracy",), percent=True, **_POINTS),
             Metric("macro_f1", "macro-F1", ("macro_f1",), **_POINTS)),
}


def compared_metrics(task: str) -> tuple[Metric, ...]:
    """The metrics of `task` that the Compare page gives an interval and a verdict."""
    return tuple(m for m in METRICS[task] if m.compared)
