"""Would more test-time averaging than the mirror help the Face page's members? Shifted copies of each
face (2 px up, down, left, right) with their mirrors, on PublicTest.

    python -m bench.experiments.face_tta_check [--json PATH]

The members are those of models/face/ensemble.json; a shifted face repeats its edge row or column
(as the training augmentation's shifts did). Prints accuracy and macro-F1 for: the faces only, with
the mirror (what the page runs), and with the mirror and the 4 shifts (10 views per member, 5 times
the page's work per face).
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import FER_FILE, Report, add_report_option
from core import metrics
from core.face.data import EXPRESSIONS
from core.face.ensemble import public_test
from core.face.served import FaceEnsemble, mirrored
from core.runner import batched

NAME = "experiments.face_tta_check"
SHIFT_PX = 2


def shifted(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Faces (n, h, w, 1) moved by (dy, dx) pixels, the edge repeated into the gap."""
    h, w = x.shape[1:3]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return x[:, rows][:, :, cols]


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
    ensemble = FaceEnsemble.load()
    views = {"face": x, "mirror": mirrored(x)}
    for dy, dx in ((-SHIFT_PX, 0), (SHIFT_PX, 0), (0, -SHIFT_PX), (0, SHIFT_PX)):
        views[f"shift {dy:+d},{dx:+d}"] = shifted(x, dy, dx)
        views[f"shift {dy:+d},{dx:+d} mirrored"] = mirrored(shifted(x, dy, dx))
    # (views, n, 7): the members' mean on each view
    p = {name: np.mean([batched(runner, v) for runner in ensemble.members.values()], axis=0)
         for name, v in views.items()}
    print(f"members: {' + '.join(ensemble.members)}; PublicTest, {len(labels)} faces")
    print("| views per member | accuracy | macro-F1 | fear recall | disgust recall |")
    print("| --- | --- | --- | --- | --- |")
    rows = []
    for title, names in (("the face (1)", ["face"]), ("face and mirror (2, the page)", ["face", "mirror"]),
                         ("face, mirror and 4 shifts of 2 px, each mirrored (10)", list(views))):
        m = metrics.classification_metrics(labels, np.mean([p[n] for n in names], axis=0), EXPRESSIONS)
        rows.append({"views": title, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                     "per_class_recall": m["per_class_recall"]})
        print(f"| {title} | {m['accuracy']:.1%} | {m['macro_f1']:.3f} | {m['per_class_recall']['fear']:.2f} | "
              f"{m['per_class_recall']['disgust']:.2f} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
