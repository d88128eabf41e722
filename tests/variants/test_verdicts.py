"""core.variants.verdicts: each variant against the default, on synthetic zoos with planted differences
and in the committed cards."""

import numpy as np
import pytest

from core import metrics, stats
from core.metrics import compared_metrics
from core.variants import verdicts as variant_stats
from core.face.data import EXPRESSIONS
from core.variants.zoo import DEFAULT, trained_variants


def test_macro_f1_from_labels_is_the_cards_macro_f1():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 500)
    predicted = np.where(rng.random(500) < 0.6, labels, rng.integers(0, 6, 500))  # class 6 rarely predicted
    probabilities = np.eye(7)[predicted]
    expected = metrics.classification_metrics(labels, probabilities, EXPRESSIONS)
    assert variant_stats.face_macro_f1(labels, predicted) == pytest.approx(expected["macro_f1"], abs=1e-12)
    assert variant_stats.face_accuracy(labels, predicted) == pytest.approx(expected["accuracy"], abs=1e-12)


def _face_zoo(n: int = 3000):
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 7, n)
    default = np.where(rng.random(n) < 0.65, labels, (labels + 1) % 7)
    same = default.copy()  # fixes 60 of the default's errors and breaks 60 of its right answers
    wrong, right = np.flatnonzero(default != labels), np.flatnonzero(default == labels)
    same[wrong[:60]] = labels[wrong[:60]]
    same[right[:60]] = (labels[right[:60]] + 3) % 7
    better = np.where(rng.random(n) < 0.15, labels, default)  # fixes 15% of the default's errors
    worse = np.where(rng.random(n) < 0.10, (labels + 2) % 7, default)
    return labels, {DEFAULT: default, "same": same, "better": better, "worse": worse}


def test_face_verdicts_see_a_planted_difference_and_no_other():
    labels, predicted = _face_zoo()
    result = variant_stats.face_comparison(labels, predicted, resamples=300)
    verdicts = {name: c["metrics"]["accuracy"]["verdict"] for name, c in result.items()}
    assert verdicts == {DEFAULT: None, "same": stats.NO_DIFFERENCE, "better": stats.BETTER, "worse": stats.WORSE}
    assert result["better"]["metrics"]["macro_f1"]["verdict"] == stats.BETTER
    assert result["same"]["metrics"]["macro_f1"]["verdict"] == stats.NO_DIFFERENCE
    entry = result["better"]["metrics"]["accuracy"]
    assert entry["value"] == pytest.approx(np.mean(predicted["better"] == labels), rel=1e-6)
    assert entry["low"] < entry["value"] < entry["high"] and entry["difference"]["low"] > 0
    # accuracy: McNemar against the default, Holm over the three variants
    raw = [stats.mcnemar_exact(predicted[n] == labels, predicted[DEFAULT] == labels)["p"] for n in ("same", "better", "worse")]
    assert [result[n]["metrics"]["accuracy"]["p_holm"] for n in ("same", "better", "worse")] == pytest.approx(stats.holm(raw), rel=1e-6)
    assert entry["sentence"].startswith("better: accuracy +") and entry["sentence"].endswith(": better")
    assert result[DEFAULT]["metrics"]["accuracy"]["difference"] is None
    # the same numbers as a Markdown table, one row a variant
    zoo = {name: {"comparison": c} for name, c in result.items()}
    table = variant_stats.verdicts_markdown("face", zoo).splitlines()
    assert table[0] == "| variant | accuracy (points) | macro-F1 (points) |" and len(table) == 2 + 3 + 2
    d = entry["difference"]
    assert table[3].startswith(f"| better | +{d['value'] * 100:.1f} ({d['low'] * 100:+.1f} to {d['high'] * 100:+.1f}): **better** |")
    assert "no detectable difference" in table[2] and "**" not in table[2].split("|")[2]


def _song_card(name: str, valence_r: np.ndarray, folds: list[list[str]], seed: int = 7, predictions=None) -> dict:
    per_fold = [{"n": 150, "valence": {"r": float(v), "ccc": float(v) - 0.1, "r2": 0.0, "rmse": 0.2},
                 "arousal": {"r": 0.7, "ccc": 0.6, "r2": 0.0, "rmse": 0.2}, "quadrant_accuracy": 0.7}
                for v in valence_r]
    card = {"name": name, "training": {"seed": seed}, "cross_validation": {"per_fold": per_fold},
            "split": {"method": "5-fold cross-validation, folds stratified by quadrant", "fold_song_ids": folds}}
    if predictions is not None:
        card.update(validation_predictions=predictions[0].tolist(), validation_targets=predictions[1].tolist(),
                    validation_song_ids=[f"s{i}" for i in range(len(predictions[1]))])
    return card


def test_song_verdicts_over_folds_see_a_planted_difference():
    rng = np.random.default_rng(2)
    folds = [[f"s{k}{i}" for i in range(3)] for k in range(5)]
    default = rng.normal(0.6, 0.04, 5)
    zoo = {DEFAULT: _song_card(DEFAULT, default, folds),
           "noise": _song_card("noise", default + rng.normal(0, 0.01, 5), folds),
           "planted": _song_card("planted", default + 0.08 + rng.normal(0, 0.01, 5), folds)}
    result = variant_stats.song_comparison(zoo)
    valence = {name: c["metrics"]["valence_r"] for name, c in result.items()}
    assert valence["noise"]["verdict"] == stats.NO_DIFFERENCE and valence["planted"]["verdict"] == stats.BETTER
    planted = np.array([fold["valence"]["r"] for fold in zoo["planted"]["cross_validation"]["per_fold"]])
    expected = stats.paired_t_interval(planted, default)
    assert valence["planted"]["difference"]["value"] == pytest.approx(expected["difference"], rel=1e-6)
    assert (valence["planted"]["difference"]["low"], valence["planted"]["p"]) == pytest.approx((expected["low"], expected["p"]), rel=1e-6)
    assert valence["planted"]["per_fold"] == pytest.approx(planted, rel=1e-6)
    assert valence[DEFAULT]["value"] == pytest.approx(default.mean(), rel=1e-6) and valence[DEFAULT]["verdict"] is None
    # arousal r is the same in every fold of every variant: no difference
    assert result["planted"]["metrics"]["arousal_r"]["verdict"] == stats.NO_DIFFERENCE
    assert "Seeds are missing" in result["planted"]["seeds"]["note"]
    assert "over_songs" not in valence["planted"]  # no out-of-fold predictions in these cards


def test_song_comparison_adds_a_bootstrap_over_songs_where_the_cards_hold_predictions():
    rng = np.random.default_rng(6)
    targets = rng.uniform(0, 1, (200, 2))
    good = targets + rng.normal(0, 0.1, (200, 2))
    poor = targets + rng.normal(0, 0.3, (200, 2))
    folds = [[f"s{i}" for i in range(k, 200, 5)] for k in range(5)]
    zoo = {DEFAULT: _song_card(DEFAULT, np.full(5, 0.6) + rng.normal(0, 0.02, 5), folds, predictions=(poor, targets)),
           "good": _song_card("good", np.full(5, 0.6) + rng.normal(0, 0.02, 5), folds, predictions=(good, targets))}
    over_songs = variant_stats.song_comparison(zoo, resamples=200)["good"]["metrics"]["valence_r"]["over_songs"]
    assert over_songs["low"] > 0.1 and over_songs["resamples"] == 200


def test_song_cards_of_one_split_are_compared_by_a_bootstrap_over_their_validation_songs():
    rng = np.random.default_rng(12)
    targets = rng.uniform(0, 1, (150, 2))
    default = targets + rng.normal(0, 0.25, (150, 2))
    noise = default + rng.normal(0, 0.02, (150, 2))
    planted = targets + rng.normal(0, 0.08, (150, 2))  # a far better model
    songs = [f"s{i}" for i in range(150)]

    def card(name, predictions):
        return {"name": name, "training": {"seed": 7}, "split": {"val_song_ids": songs},
                "validation_predictions": predictions.tolist(), "validation_targets": targets.tolist()}

    zoo = {DEFAULT: card(DEFAULT, default), "noise": card("noise", noise), "planted": card("planted", planted)}
    result = variant_stats.song_comparison(zoo, resamples=300)
    assert result["noise"]["metrics"]["valence_r"]["verdict"] == stats.NO_DIFFERENCE
    assert result["planted"]["metrics"]["valence_r"]["verdict"] == stats.BETTER
    assert result["planted"]["metrics"]["valence_ccc"]["verdict"] == stats.BETTER
    assert "One validation split" in result["planted"]["method"]
    entry = result["planted"]["metrics"]["quadrant_accuracy"]
    q = lambda y: metrics.quadrant(y[:, 0], y[:, 1])
    assert entry["value"] == pytest.approx(np.mean(q(planted) == q(targets)), rel=1e-6)
    zoo["noise"]["split"] = {"val_song_ids": songs[::-1]}
    with pytest.raises(ValueError, match="'noise' was not validated on the default's songs"):
        variant_stats.song_comparison(zoo, resamples=10)


def test_a_comparison_is_stale_once_its_variant_or_the_default_is_retrained():
    def card(sha, compared_sha=None, default_sha="d1"):
        comparison = {"model_sha256": compared_sha or sha, "default_sha256": default_sha}
        return {"model_file": {"sha256": sha}, "comparison": comparison}

    zoo = {DEFAULT: card("d1"), "a": card("a1"), "b": card("b2", compared_sha="b1")}
    assert variant_stats.stale_comparisons(zoo) == ["b"]
    zoo[DEFAULT] = card("d2", compared_sha="d1", default_sha="d1")  # the default retrained
    assert variant_stats.stale_comparisons(zoo) == [DEFAULT, "a", "b"]
    assert variant_stats.stale_comparisons({DEFAULT: {"model_file": {"sha256": "d1"}}}) == [DEFAULT]


def test_song_comparison_refuses_cards_without_folds_or_on_other_folds():
    folds = [[f"s{k}"] for k in range(5)]
    zoo = {DEFAULT: _song_card(DEFAULT, np.full(5, 0.6), folds), "other": _song_card("other", np.full(5, 0.6), folds[::-1])}
    with pytest.raises(ValueError, match="'other' was not cross-validated on the default's folds"):
        variant_stats.song_comparison(zoo)
    old = {DEFAULT: {"name": DEFAULT, "training": {"seed": 7}, "split": {}}}
    with pytest.raises(ValueError, match="no cross_validation.per_fold"):
        variant_stats.song_comparison(old)


@pytest.mark.parametrize("task", ["face", "song"])
def test_the_cards_hold_a_comparison_consistent_with_its_numbers(task):
    zoo = trained_variants(task)
    others = [n for n in zoo if n != DEFAULT]
    assert all("comparison" in card for card in zoo.values()), \
        f"cards without a comparison: {[n for n, c in zoo.items() if 'comparison' not in c]}"
    for spec in compared_metrics(task):
        entries = {name: zoo[name]["comparison"]["metrics"][spec.key] for name in zoo}
        assert stats.holm([entries[n]["p"] for n in others]) == pytest.approx([entries[n]["p_holm"] for n in others], rel=1e-6)
        for name in others:
            e = entries[name]
            d = e["difference"]
            assert d["low"] <= d["value"] <= d["high"] and e["low"] <= e["value"] <= e["high"]
            assert e["verdict"] == stats.verdict(d["value"], e["p_holm"], spec.higher_is_better)
            assert e["sentence"] == stats.sentence(name, spec.label, d["value"], d["low"], d["high"], e["verdict"],
                                                   e["p_holm"], spec.decimals, spec.scale, spec.unit)
        if task == "song" and "cross_validation" in zoo[DEFAULT]:  # the folds in the card, paired
            for name in others:
                expected = stats.paired_t_interval(variant_stats.fold_values(zoo[name], spec),
                                                   variant_stats.fold_values(zoo[DEFAULT], spec))
                assert entries[name]["difference"]["value"] == pytest.approx(expected["difference"], rel=1e-6)
                assert entries[name]["p"] == pytest.approx(expected["p"], rel=1e-6)
    assert variant_stats.stale_comparisons(zoo) == []  # computed for these very model files
    for name, card in zoo.items():
        comparison = card["comparison"]
        assert "Seeds are missing" in comparison["seeds"]["note"]
        if task == "face":
            assert comparison["n"] == card["split"]["n_val"] and comparison["resamples"] >= 2000
            # the predictions compared are the card's model's (one face in a thousand may differ by platform)
            check = comparison["card_check"]
            assert check["accuracy_here"] == pytest.approx(check["accuracy_in_card"], abs=1e-3)
            assert comparison["metrics"]["accuracy"]["value"] == check["accuracy_here"]
