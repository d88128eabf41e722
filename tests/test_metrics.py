import numpy as np
import pytest

from core import metrics


def test_quadrants_follow_the_data_sets_rule():
    assert metrics.quadrant(np.array([0.7, 0.3, 0.3, 0.7, 0.5]),
                            np.array([0.6, 0.6, 0.4, 0.4, 0.5])).tolist() == [1, 2, 3, 4, 1]


def test_regression_metrics_of_a_perfect_and_a_shifted_prediction():
    t = np.array([0.1, 0.4, 0.6, 0.9])
    perfect = metrics.regression_metrics(t, t)
    assert perfect == pytest.approx({"r": 1.0, "r2": 1.0, "ccc": 1.0, "rmse": 0.0}, rel=1e-6)
    shifted = metrics.regression_metrics(t, t + 0.1)
    assert shifted["r"] == pytest.approx(1.0, rel=1e-6) and shifted["rmse"] == pytest.approx(0.1, rel=1e-6)
    assert shifted["ccc"] < 1.0 and shifted["r2"] < 1.0


def test_classification_metrics_count_the_confusion():
    labels = np.array([0, 0, 1, 2])
    probabilities = np.eye(3)[[0, 1, 1, 2]]
    result = metrics.classification_metrics(labels, probabilities, ("a", "b", "c"))
    assert result["accuracy"] == pytest.approx(0.75, abs=1e-12)
    assert result["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert result["per_class_recall"] == {"a": 0.5, "b": 1.0, "c": 1.0}
    assert result["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3, rel=1e-6)
