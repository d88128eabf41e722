"""Which crop margin makes a detected face look like a FER2013 training face to the CNN?

    python -m bench.experiments.face_crop_margin [--faces 600] [--json PATH]

PublicTest faces are pasted, upscaled to 160 px, into 640x480 frames; each is detected, cropped
with several margins and classified. The accuracy on the original 48x48 image is the ceiling.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from bench.common import FER_FILE, Report, add_report_option, face_in_frame
from core.variants.zoo import model_path
from core.face import detect as faces

NAME = "experiments.face_crop_margin"
MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=int, default=600)
    add_report_option(parser, NAME)
    args = parser.parse_args()
    if not FER_FILE.exists():
        raise SystemExit(f"no {FER_FILE}: this check needs real faces")
    with Report(NAME, args.json) as report:
        report.figures.update(measure(args.faces))


def measure(count: int) -> dict:
    from core.runner import ModelRunner

    runner = ModelRunner.load(model_path("face", "default"))  # the zoo's default network alone
    with np.load(FER_FILE) as npz:
        rows = np.flatnonzero(npz["usage"] == 1)[:count]
        pixels, labels = npz["pixels"][rows], npz["label"][rows]
    direct = runner(pixels[..., None].astype(np.float32)).argmax(1)
    crops = {m: [] for m in MARGINS}
    kept = []
    for i, face in enumerate(pixels):
        frame = face_in_frame(face, 160, bgr=False)
        found = faces.detect_faces(frame)
        if len(found) != 1:
            continue
        kept.append(i)
        for m in MARGINS:
            x, y, w, h = found[0].box
            pad = int(round(m * w))
            padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            crops[m].append(cv2.resize(padded[y:y + h + 2 * pad, x:x + w + 2 * pad], (48, 48),
                                       interpolation=cv2.INTER_AREA))
    kept = np.array(kept)
    print(f"{len(kept)} of {len(pixels)} faces detected; accuracy on those faces:")
    ceiling = float(np.mean(direct[kept] == labels[kept]))
    print(f"  original 48x48 image (ceiling): {ceiling:.1%}")
    by_margin = {}
    for m in MARGINS:
        predicted = runner(np.array(crops[m], np.float32)[..., None]).argmax(1)
        by_margin[str(m)] = float(np.mean(predicted == labels[kept]))
        print(f"  detected crop, margin {m:4.2f}:      {by_margin[str(m)]:.1%}")
    return {"faces": len(pixels), "detected": len(kept), "accuracy_original": ceiling, "accuracy_by_margin": by_margin}


if __name__ == "__main__":
    main()
