"""Statistics for comparing two models on the same data: plain functions, NumPy in, floats out.

- `paired_t_interval`: the mean of paired differences (e.g. one per cross-validation fold) with
  its t-interval and two-sided p-value.
- `paired_bootstrap`: a metric of two models on the same items, resampled together (the same
  items in both), with percentile intervals of each and of their difference.
- `paired_permutation_test`: the p-value of a metric's difference when each item's two
  predictions are swapped at random (approximate randomisation).
- `mcnemar_exact`: McNemar's test of two classifiers' right/wrong on the same items.
- `holm`: p-values adjusted for several comparisons (Holm's step-down method).
- `verdict` and `sentence`: "better" / "worse" / "no detectable difference", and a plain sentence
  made from the numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats as scipy_stats

BETTER, WORSE, NO_DIFFERENCE = "better", "worse", "no detectable difference"
VERDICTS = (BETTER, WORSE, NO_DIFFERENCE)
ALPHA = 0.05
CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0

Metric = Callable[[np.ndarray, np.ndarray], float]


def paired_t_interval(a, b, confidence: float = CONFIDENCE) -> dict:
    """Mean of the paired differences a - b with its t-interval (n - 1 degrees of freedom).

    a, b: (n,) the two models' scores on the same n units (folds, seeds, ...), n >= 2.
    Returns {"difference", "low", "high", "p", "n", "sd"}: p is the two-sided paired t-test's.
    With identical differences (sd 0) the interval is the point and p is 0 (or 1 when they are 0).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(f"paired_t_interval needs two 1-D arrays of at least 2 paired values, got shape {d.shape}")
    n, mean, sd = len(d), float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        return {"difference": mean, "low": mean, "high": mean, "p": 0.0 if mean != 0 else 1.0, "n": n, "sd": 0.0}
    se = sd / np.sqrt(n)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * se)
    p = float(2 * scipy_stats.t.sf(abs(mean) / se, n - 1))
    return {"difference": mean, "low": mean - half, "high": mean + half, "p": p, "n": n, "sd": sd}


def mean_interval(values, confidence: float = CONFIDENCE) -> dict:
    """Mean of (n,) values with its t-interval: {"mean", "low", "high", "sd", "n"}."""
    values = np.asarray(values, dtype=np.float64)
    result = paired_t_interval(values, np.zeros_like(values), confidence)
    return {"mean": result["difference"], "low": result["low"], "high": result["high"],
            "sd": result["sd"], "n": result["n"]}


def bootstrap_indices(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, n) indices drawn with replacement from n items (one seeded generator)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap(metric: Metric, y_true, pred_a, pred_b, resamples: int = RESAMPLES,
                     seed: int = SEED, confidence: float = CONFIDENCE) -> dict:
    """A metric of two models on the same items, with percentile bootstrap intervals.

    metric(y_true, y_pred) -> float; y_true, pred_a, pred_b: arrays whose first axis is the n
    items. Each resample draws n items with replacement and scores both models on the same items,
    so the difference's interval is paired. The same seed draws the same resamples.
    Returns {"a": {"value", "low", "high"}, "b": {...}, "difference": {"value", "low", "high"},
    "resamples", "seed", "confidence"}: "value" is the metric on all items, difference a - b.
    """
    y_true, pred_a, pred_b = np.asarray(y_true), np.asarray(pred_a), np.asarray(pred_b)
    if not len(y_true) == len(pred_a) == len(pred_b):
        raise ValueError(f"paired_bootstrap needs the same items: {len(y_true)}, {len(pred_a)}, {len(pred_b)}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    a_values, b_values = np.empty(resamples), np.empty(resamples)
    for i, idx in enumerate(bootstrap_indices(len(y_true), resamples, seed)):
        truth = y_true[idx]
        a_values[i], b_values[i] = metric(truth, pred_a[idx]), metric(truth, pred_b[idx])
    a, b = float(metric(y_true, pred_a)), float(metric(y_true, pred_b))

    def summary(value, values):
        low, high = _percentile_interval(values, confidence)
        return {"value": value, "low": low, "high": high}

    return {"a": summary(a, a_values), "b": summary(b, b_values),
            "difference": summary(a - b, a_values - b_values),
            "resamples": resamples, "seed": seed, "confidence": confidence}


def paired_permutation_test(metric: Metric, y_true, pred_a, pred_b, permutations: int = RESAMPLES,
                            seed: int = SEED) -> float:
    """Two-sided p-value of metric(a) - metric(b) by approximate randomisation: under "no
    difference" each item's two predictions are exchangeable, so each permutation swaps them on a
    random half of the items. p = (1 + #|permuted difference| >= |observed|) / (1 + permutations).
    """
    y_true, pred_a, pred_b = np.asarray(y_true), np.asarray(pred_a), np.asarray(pred_b)
    observed = abs(metric(y_true, pred_a) - metric(y_true, pred_b))
    rng = np.random.default_rng(seed)
    extreme = 0
    for _ in range(permutations):
        swap = rng.random(len(y_true)) < 0.5
        mask = swap.reshape(-1, *([1] * (pred_a.ndim - 1)))
        x, y = np.where(mask, pred_b, pred_a), np.where(mask, pred_a, pred_b)
        # a small tolerance so that ties with the observed value count as extreme
        extreme += abs(metric(y_true, x) - metric(y_true, y)) >= observed - 1e-12
    return (1 + extreme) / (1 + permutations)


def mcnemar_exact(correct_a, correct_b) -> dict:
    """McNemar's exact test of two classifiers on the same items.

    correct_a, correct_b: (n,) bool, whether each model got each item right. Only the discordant
    items count: a_only (a right, b wrong) and b_only; under "equally accurate" a_only is
    Binomial(a_only + b_only, 1/2). Returns {"a_only", "b_only", "p"} (two-sided, exact).
    """
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"mcnemar_exact needs the same items: {correct_a.shape} vs {correct_b.shape}")
    a_only, b_only = int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))
    p = scipy_stats.binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return {"a_only": a_only, "b_only": b_only, "p": float(p)}


def holm(p_values) -> list[float]:
    """Holm's step-down adjustment of m p-values (same order as given; family-wise error rate).

    The i-th smallest p (from 0) is multiplied by m - i, each adjusted value is at least the one
    before it in that order, and none exceeds 1.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError(f"holm needs p-values between 0 and 1, got {p_values!r}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    result = np.empty(m)
    result[order] = adjusted
    return result.tolist()


def verdict(difference: float, p_adjusted: float, higher_is_better: bool = True, alpha: float = ALPHA) -> str:
    """"better" or "worse" when the (multiplicity-adjusted) p-value is below alpha, in the direction
    of the difference (variant minus default; lower is better for an error such as RMSE);
    otherwise "no detectable difference"."""
    if not p_adjusted < alpha or difference == 0:
        return NO_DIFFERENCE
    return BETTER if (difference > 0) == higher_is_better else WORSE


def signed_text(value: float, decimals: int, scale: float = 1.0) -> str:
    """value × scale with its sign and a true minus sign, e.g. '+0.02', '−1.5'; '0.00' when it rounds to 0."""
    text = f"{value * scale:+.{decimals}f}"
    if float(text) == 0:  # no sign on a value that rounds to zero ("0.00", not "−0.00")
        text = text[1:]
    return text.replace("-", "\u2212")  # a true minus sign


def p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.2g}"


def sentence(variant: str, metric: str, difference: float, low: float, high: float, verdict_: str,
             p_adjusted: float | None = None, decimals: int = 2, scale: float = 1.0, unit: str = "",
             confidence: float = CONFIDENCE) -> str:
    """A plain sentence from the numbers, e.g. "average pooling: valence r +0.02 (95% interval
    −0.03 to +0.07, Holm p = 0.84): no detectable difference". scale and unit show a share as
    points, e.g. scale=100, unit=" points"."""
    holm_text = f", Holm p {p_text(p_adjusted)}" if p_adjusted is not None else ""
    return (f"{variant}: {metric} {signed_text(difference, decimals, scale)}{unit} "
            f"({confidence:.0%} interval {signed_text(low, decimals, scale)} to {signed_text(high, decimals, scale)}"
            f"{holm_text}): {verdict_}")
