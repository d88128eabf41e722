"""core.stats against scipy and textbook values, and verdicts that flip when a real difference is planted."""

from math import comb

import numpy as np
import pytest
from scipy import stats as scipy_stats

from core import stats


def accuracy(labels, predicted):
    return float(np.mean(np.asarray(labels) == np.asarray(predicted)))


def test_the_paired_t_interval_is_scipys():
    rng = np.random.default_rng(3)
    a = rng.normal(0.60, 0.03, 5)
    b = a - rng.normal(0.02, 0.02, 5)
    ours = stats.paired_t_interval(a, b)
    theirs = scipy_stats.ttest_rel(a, b)
    low, high = theirs.confidence_interval(0.95)
    assert ours["difference"] == pytest.approx(np.mean(a - b), abs=1e-12)
    assert (ours["low"], ours["high"]) == pytest.approx((low, high), abs=1e-12)
    assert ours["p"] == pytest.approx(theirs.pvalue, abs=1e-12) and ours["n"] == 5
    # a 90% interval is narrower, with the t quantile of 4 degrees of freedom (2.132)
    narrow = stats.paired_t_interval(a, b, confidence=0.90)
    assert narrow["high"] - narrow["low"] == pytest.approx(2 * 2.1318 * np.std(a - b, ddof=1) / np.sqrt(5), rel=1e-4)


def test_the_mean_interval_is_scipys_one_sample_interval():
    values = np.array([0.61, 0.66, 0.58, 0.70, 0.64])
    theirs = scipy_stats.ttest_1samp(values, 0).confidence_interval(0.95)
    ours = stats.mean_interval(values)
    assert (ours["low"], ours["high"]) == pytest.approx((theirs.low, theirs.high), abs=1e-12)
    assert ours["mean"] == pytest.approx(values.mean(), rel=1e-6)


def test_a_paired_t_interval_needs_two_pairs():
    with pytest.raises(ValueError, match="at least 2"):
        stats.paired_t_interval([0.5], [0.4])


def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_items():
    # 15 items only a gets right, 5 only b, 80 both, 10 neither
    correct_a = np.array([1] * 15 + [0] * 5 + [1] * 80 + [0] * 10, bool)
    correct_b = np.array([0] * 15 + [1] * 5 + [1] * 80 + [0] * 10, bool)
    result = stats.mcnemar_exact(correct_a, correct_b)
    assert (result["a_only"], result["b_only"]) == (15, 5)
    by_hand = 2 * sum(comb(20, k) for k in range(15, 21)) / 2 ** 20  # 0.0414
    assert result["p"] == pytest.approx(by_hand, abs=1e-12)
    assert result["p"] == pytest.approx(scipy_stats.binomtest(5, 20, 0.5).pvalue, abs=1e-12)
    assert stats.mcnemar_exact(correct_a, correct_a)["p"] == pytest.approx(1.0, abs=1e-12)


def test_holm_matches_the_textbook_example():
    # Holm (1979) as Wikipedia works it: four hypotheses at alpha 0.05; H1 and H4 are rejected
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02], rel=1e-6)
    assert [p < 0.05 for p in adjusted] == [True, False, False, True]
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0], rel=1e-6)  # capped at 1
    assert stats.holm([0.02]) == pytest.approx([0.02], rel=1e-6)  # one test: unchanged
    with pytest.raises(ValueError):
        stats.holm([0.2, 1.5])


def test_the_paired_bootstrap_agrees_with_scipys_paired_bootstrap():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 7, 3000)
    pred_a = np.where(rng.random(3000) < 0.68, labels, rng.integers(0, 7, 3000))
    pred_b = np.where(rng.random(3000) < 0.65, labels, rng.integers(0, 7, 3000))
    ours = stats.paired_bootstrap(accuracy, labels, pred_a, pred_b, resamples=4000, seed=1)
    assert ours["a"]["value"] == accuracy(labels, pred_a) and ours["resamples"] == 4000
    assert ours["difference"]["value"] == pytest.approx(accuracy(labels, pred_a) - accuracy(labels, pred_b), rel=1e-6)
    # accuracy is a mean: scipy's paired percentile bootstrap of the mean difference of correctness
    right_a, right_b = (pred_a == labels).astype(float), (pred_b == labels).astype(float)
    theirs = scipy_stats.bootstrap((right_a, right_b), lambda x, y: np.mean(x - y), paired=True, vectorized=False,
                                   n_resamples=4000, method="percentile", random_state=2).confidence_interval
    width = theirs.high - theirs.low
    assert ours["difference"]["low"] == pytest.approx(theirs.low, abs=0.1 * width)
    assert ours["difference"]["high"] == pytest.approx(theirs.high, abs=0.1 * width)
    # the same seed draws the same resamples; identical models differ by exactly 0
    assert stats.paired_bootstrap(accuracy, labels, pred_a, pred_b, resamples=50, seed=9) == \
        stats.paired_bootstrap(accuracy, labels, pred_a, pred_b, resamples=50, seed=9)
    same = stats.paired_bootstrap(accuracy, labels, pred_a, pred_a, resamples=50)
    assert same["difference"] == {"value": 0.0, "low": 0.0, "high": 0.0}


def test_the_permutation_test_of_accuracy_is_mcnemars():
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 7, 2000)
    pred_a = np.where(rng.random(2000) < 0.66, labels, rng.integers(0, 7, 2000))
    pred_b = pred_a.copy()  # b fixes 45 of a's errors and breaks 25 of its right answers
    wrong, right = np.flatnonzero(pred_a != labels), np.flatnonzero(pred_a == labels)
    pred_b[wrong[:45]] = labels[wrong[:45]]
    pred_b[right[:25]] = (labels[right[:25]] + 1) % 7
    exact = stats.mcnemar_exact(pred_a == labels, pred_b == labels)["p"]
    permuted = stats.paired_permutation_test(accuracy, labels, pred_a, pred_b, permutations=4000, seed=3)
    assert 1e-4 < exact < 0.5  # a case where both are informative
    assert permuted == pytest.approx(exact, abs=0.02)
    assert stats.paired_permutation_test(accuracy, labels, pred_a, pred_a, permutations=100) == pytest.approx(1.0, abs=1e-12)


def test_verdicts_follow_the_metrics_direction():
    assert stats.verdict(0.03, 0.01) == stats.BETTER
    assert stats.verdict(-0.03, 0.01) == stats.WORSE
    assert stats.verdict(0.03, 0.01, higher_is_better=False) == stats.WORSE  # e.g. RMSE up
    assert stats.verdict(-0.03, 0.01, higher_is_better=False) == stats.BETTER
    assert stats.verdict(0.03, 0.05) == stats.NO_DIFFERENCE  # not below alpha
    assert stats.verdict(0.03, 0.20) == stats.NO_DIFFERENCE


def _fold_verdicts(shift: float, higher_is_better: bool = True) -> list[str]:
    """Three variants against a default over 5 folds, the first with `shift` planted; Holm over all."""
    rng = np.random.default_rng(21)
    default = rng.normal(0.60, 0.03, 5)  # fold-to-fold spread, shared by every model
    variants = [default + shift + rng.normal(0, 0.005, 5)] + [default + rng.normal(0, 0.005, 5) for _ in range(2)]
    tests = [stats.paired_t_interval(v, default) for v in variants]
    adjusted = stats.holm([t["p"] for t in tests])
    return [stats.verdict(t["difference"], p, higher_is_better) for t, p in zip(tests, adjusted)]


def test_a_planted_difference_over_folds_flips_the_verdict():
    assert _fold_verdicts(0.0) == [stats.NO_DIFFERENCE] * 3
    assert _fold_verdicts(0.05) == [stats.BETTER, stats.NO_DIFFERENCE, stats.NO_DIFFERENCE]
    assert _fold_verdicts(-0.05)[0] == stats.WORSE
    assert _fold_verdicts(0.05, higher_is_better=False)[0] == stats.WORSE  # an error that grew


def test_a_planted_difference_over_items_flips_the_verdict():
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 7, 3000)
    default = np.where(rng.random(3000) < 0.65, labels, (labels + 1) % 7)
    noise = np.where(rng.random(3000) < 0.02, (labels + 2) % 7, default)  # as many fixed as broken
    noise = np.where(rng.random(3000) < 0.02, labels, noise)
    planted = np.where(rng.random(3000) < 0.15, labels, default)  # fixes 15% of the errors

    def verdict_of(variant):
        p = stats.mcnemar_exact(variant == labels, default == labels)["p"]
        interval = stats.paired_bootstrap(accuracy, labels, variant, default, resamples=500)["difference"]
        return stats.verdict(interval["value"], stats.holm([p, 0.5])[0]), interval

    same, interval = verdict_of(noise)
    assert same == stats.NO_DIFFERENCE and interval["low"] < 0 < interval["high"]
    better, interval = verdict_of(planted)
    assert better == stats.BETTER and interval["low"] > 0


def test_the_sentence_is_made_from_the_numbers():
    text = stats.sentence("average pooling", "valence r", 0.02, -0.03, 0.07, stats.NO_DIFFERENCE, 0.84)
    assert text == ("average pooling: valence r +0.02 (95% interval \u22120.03 to +0.07, Holm p = 0.84): "
                    "no detectable difference")
    points = stats.sentence("dropout_0.0", "accuracy", -0.0123, -0.02, -0.005, stats.WORSE, 0.0004,
                            decimals=1, scale=100, unit=" points")
    assert points == ("dropout_0.0: accuracy \u22121.2 points (95% interval \u22122.0 to \u22120.5, "
                      "Holm p < 0.001): worse")
    assert stats.sentence("x", "arousal r", -0.001, -0.05, 0.004, stats.NO_DIFFERENCE) == \
        "x: arousal r 0.00 (95% interval \u22120.05 to 0.00): no detectable difference"
