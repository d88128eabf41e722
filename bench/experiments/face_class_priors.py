"""Can a per-class weight on the Face page's probabilities lift the weak classes (disgust, fear)
without costing accuracy? Chosen on one half of PublicTest, read on the other.

    python -m bench.experiments.face_class_priors [--json PATH]

The probabilities are the page's (core.face.served.FaceEnsemble.load(), mirror included). The
weights w (one per class, probabilities times exp(w), w in -1..1.5) are found by coordinate ascent
on the even rows, then on the odd rows, for three aims: macro-F1, accuracy, and macro-F1 without
lower accuracy on the rows they are chosen on. Each is scored on the other half. The page uses no
weights; this says whether it should.
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import FER_FILE, Report, add_report_option
from core import metrics
from core.face.data import EXPRESSIONS
from core.face.ensemble import public_test
from core.face.served import FaceEnsemble
from core.runner import batched

NAME = "experiments.face_class_priors"
GRID = np.linspace(-1.0, 1.5, 26)


def scores(labels, probabilities) -> dict:
    m = metrics.classification_metrics(labels, probabilities, EXPRESSIONS)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
            "disgust": m["per_class_recall"]["disgust"], "fear": m["per_class_recall"]["fear"]}


def fit(labels, probabilities, aim) -> np.ndarray:
    """Per-class log-weights maximising aim(scores) by three sweeps of coordinate ascent."""
    w = np.zeros(probabilities.shape[1])
    for _ in range(3):
        for k in range(len(w)):
            best_value, best_score = w[k], None
            for value in GRID:
                trial = w.copy()
                trial[k] = value
                score = aim(scores(labels, probabilities * np.exp(trial)))
                if best_score is None or score > best_score + 1e-12:
                    best_value, best_score = value, score
            w[k] = best_value
    return w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_report_option(parser, NAME)
    args = parser.parse_args()
    if not FER_FILE.exists():
        raise SystemExit(f"no {FER_FILE}: this check needs PublicTest")
    with Report(NAME, args.json) as report:
        report.figures["rows"] = measure()


def measure() -> list[dict]:
    x, labels = public_test(FER_FILE)
    p = batched(FaceEnsemble.load(), x)
    rows = np.arange(len(labels))
    halves = {"even": rows % 2 == 0, "odd": rows % 2 == 1}
    print("| aim | chosen on | weights (angry..neutral) | scored on | accuracy before → after | "
          "macro-F1 before → after | disgust recall | fear recall |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for aim_name, make_aim in (("macro-F1", lambda base: lambda s: s["macro_f1"]),
                               ("accuracy", lambda base: lambda s: s["accuracy"]),
                               ("macro-F1, accuracy kept", lambda base: lambda s: s["macro_f1"]
                                if s["accuracy"] >= base else -1.0)):
        for chosen_on, scored_on in (("even", "odd"), ("odd", "even")):
            fit_rows, test_rows = halves[chosen_on], halves[scored_on]
            base = scores(labels[fit_rows], p[fit_rows])["accuracy"]
            w = fit(labels[fit_rows], p[fit_rows], make_aim(base))
            before = scores(labels[test_rows], p[test_rows])
            after = scores(labels[test_rows], p[test_rows] * np.exp(w))
            rows.append({"aim": aim_name, "chosen_on": chosen_on, "weights": dict(zip(EXPRESSIONS, w.tolist())),
                         "scored_on": scored_on, "before": before, "after": after})
            print(f"| {aim_name} | {chosen_on} rows | {' '.join(f'{v:+.1f}' for v in w)} | {scored_on} rows | "
                  f"{before['accuracy']:.1%} → {after['accuracy']:.1%} | {before['macro_f1']:.3f} → "
                  f"{after['macro_f1']:.3f} | {before['disgust']:.2f} → {after['disgust']:.2f} | "
                  f"{before['fear']:.2f} → {after['fear']:.2f} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
