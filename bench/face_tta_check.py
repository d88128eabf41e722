"""Would more test-time averaging than the mirror help the Face page's members? Shifted copies of each
face (2 px up, down, left, right) with their mirrors, on PublicTest.

    .venv/bin/python bench/face_tta_check.py

The members are those of models/face/ensemble.json; a shifted face repeats its edge row or column
(as the training augmentation's shifts did). Prints accuracy and macro-F1 for: the faces only, with
the mirror (what the page runs), and with the mirror and the 4 shifts (10 views per member, 5 times
the page's work per face).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core import metrics  # noqa: E402
from core.datasets import EXPRESSIONS  # noqa: E402
from core.face_ensemble import FaceEnsemble, batched, mirrored, public_test  # noqa: E402

FER = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013.npz"
SHIFT_PX = 2


def shifted(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Faces (n, h, w, 1) moved by (dy, dx) pixels, the edge repeated into the gap."""
    h, w = x.shape[1:3]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return x[:, rows][:, :, cols]


def main() -> None:
    if not FER.exists():
        print(f"no {FER}: this check needs PublicTest")
        return
    x, labels = public_test(FER)
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
    for title, names in (("the face (1)", ["face"]), ("face and mirror (2, the page)", ["face", "mirror"]),
                         ("face, mirror and 4 shifts of 2 px, each mirrored (10)", list(views))):
        m = metrics.classification_metrics(labels, np.mean([p[n] for n in names], axis=0), EXPRESSIONS)
        print(f"| {title} | {m['accuracy']:.1%} | {m['macro_f1']:.3f} | {m['per_class_recall']['fear']:.2f} | "
              f"{m['per_class_recall']['disgust']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
