"""Which crop margin makes a detected face look like a FER2013 training face to the CNN?

    .venv/bin/python bench/face_crop_margin.py [--faces 600]

PublicTest faces are pasted, upscaled to 160 px, into 640x480 frames; each is detected, cropped
with several margins and classified. The accuracy on the original 48x48 image is the ceiling.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core import cards, faces  # noqa: E402

FER = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013.npz"
MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=int, default=600)
    args = parser.parse_args()
    from core.predict import ModelRunner

    runner = ModelRunner.load(cards.DEFAULT_MODELS["face"])
    with np.load(FER) as npz:
        rows = np.flatnonzero(npz["usage"] == 1)[:args.faces]
        pixels, labels = npz["pixels"][rows], npz["label"][rows]
    direct = runner(pixels[..., None].astype(np.float32)).argmax(1)
    crops = {m: [] for m in MARGINS}
    kept = []
    for i, face in enumerate(pixels):
        frame = np.full((480, 640), 128, np.uint8)
        frame[160:320, 240:400] = cv2.resize(face, (160, 160), interpolation=cv2.INTER_CUBIC)
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
    print(f"  original 48x48 image (ceiling): {np.mean(direct[kept] == labels[kept]):.1%}")
    for m in MARGINS:
        predicted = runner(np.array(crops[m], np.float32)[..., None]).argmax(1)
        print(f"  detected crop, margin {m:4.2f}:      {np.mean(predicted == labels[kept]):.1%}")


if __name__ == "__main__":
    main()
