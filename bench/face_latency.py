"""Face latency: a 640x480 frame with one face and with five, detection and classification times
and frames per second, on this machine, for the default model alone and for what the Face page runs
(the ensemble of models/face/ensemble.json, mirror average included); and the time of one face's
"Where the model looked" map (Grad-CAM through every member, and its mirror).

    .venv/bin/python bench/face_latency.py [--repeats 50]

Frames are real FER2013 PublicTest faces (ones the detector finds) pasted, upscaled, into a grey
640x480 frame; without ../shared the bench says so and stops.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core import cards, faces  # noqa: E402
from core.face_ensemble import median_ms  # noqa: E402

FER = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013.npz"


def frame(face_images: list[np.ndarray], side_px: int) -> np.ndarray:
    canvas = np.full((480, 640, 3), 128, np.uint8)
    for i, face in enumerate(face_images):
        y, x = 20 + (i // 4) * (side_px + 40), 20 + (i % 4) * (side_px + 40)
        canvas[y:y + side_px, x:x + side_px] = cv2.cvtColor(
            cv2.resize(face, (side_px, side_px), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
    return canvas



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    if not FER.exists():
        print(f"no {FER}: this bench needs real faces")
        return
    from core import saliency
    from core.face_ensemble import FaceEnsemble
    from core.predict import ModelRunner

    with np.load(FER) as npz:
        pool = npz["pixels"][npz["usage"] == 1][:200]
    usable = [f for f in pool if len(faces.detect_faces(frame([f], 100))) == 1][:5]
    default = ModelRunner.load(cards.DEFAULT_MODELS["face"])
    page = FaceEnsemble.load()
    members = ", ".join(page.members) + (" with the mirror average" if page.mirror else "")
    print(f"median of {args.repeats} runs; 1-min load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for title, scorer in ((f"default alone ({default.card['parameters']:,} parameters)", default),
                          (f"the Face page: {members} ({page.card['parameters']:,} parameters)", page)):
        print(title)
        for count in (1, 5):
            image = frame(usable[:count], 100)
            found = faces.detect_faces(image)
            scorer(faces.crop_faces(image, found))  # warm-up (traced once per process)
            jpeg = cv2.imencode(".jpg", image)[1].tobytes()
            decode = median_ms(lambda: faces.decode_image(jpeg), args.repeats)
            detect = median_ms(lambda: faces.detect_faces(image), args.repeats)
            classify = median_ms(lambda: scorer(faces.crop_faces(image, found)), args.repeats)
            per_frame = detect + classify
            print(f"  {count} face(s), {len(found)} found: jpeg decode {decode:5.1f} ms, detection {detect:5.1f} ms, "
                  f"crop + classification {classify:5.1f} ms -> {1000 / per_frame:5.1f} frames/s "
                  f"({1000 / (per_frame + decode):5.1f} with decode)")
    crop = faces.crop_faces(frame(usable[:1], 100), faces.detect_faces(frame(usable[:1], 100)))
    label = int(page(crop).argmax())
    start = time.perf_counter()
    saliency.prepare(page)
    traced = (time.perf_counter() - start) * 1000
    maps = median_ms(lambda: saliency.face_heat_maps(page, crop, [label]), args.repeats)
    overlay = median_ms(lambda: saliency.face_overlay(page, crop[0], "happy"), args.repeats)
    print(f"where the Face page looked: tracing {traced:.0f} ms once per process (the app does it in the "
          f"background at load), then one face's map {maps:.1f} ms, map and overlay {overlay:.1f} ms")

if __name__ == "__main__":
    main()
