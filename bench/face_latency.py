"""Face latency: a 640x480 frame with one face and with five, detection and classification times
and frames per second, on this machine, for the default model alone and for what the Face page runs
(the ensemble of models/face/ensemble.json, mirror average included); and the time of one face's
"Where the model looked" map (Grad-CAM through every member, and its mirror).

    python -m bench.face_latency [--repeats 50] [--json PATH]

Frames are real FER2013 PublicTest faces (ones the detector finds) pasted, upscaled, into a grey
640x480 frame; without ../shared the bench says so and stops.
"""

from __future__ import annotations

import argparse
import time

import cv2

from bench.common import (FER_FILE, Report, add_report_option, faces_in_frame, fer_faces, load_note,
                          median_ms)
from core.variants.zoo import model_path
from core.face import detect as faces

SIDE_PX = 100


def frame(face_images, side_px: int = SIDE_PX):
    """Up to 8 faces, 4 a row, 40 px apart, from (20, 20): as this bench has always framed them."""
    return faces_in_frame(face_images, side_px, margin_px=20, gap_px=40, columns=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    add_report_option(parser, "face_latency")
    args = parser.parse_args()
    if not FER_FILE.exists():
        raise SystemExit(f"no {FER_FILE}: this bench needs real faces")
    with Report("face_latency", args.json) as report:
        measure(args.repeats, report.figures)


def measure(repeats: int, figures: dict) -> None:
    from core.face import saliency
    from core.face.served import FaceEnsemble
    from core.runner import ModelRunner

    pool = fer_faces(200)
    usable = [f for f in pool if len(faces.detect_faces(frame([f]))) == 1][:5]
    default = ModelRunner.load(model_path("face", "default"))
    page = FaceEnsemble.load()
    members = ", ".join(page.members) + (" with the mirror average" if page.mirror else "")
    print(f"median of {repeats} runs; {load_note()}")
    figures["repeats"], figures["rows"] = repeats, []
    for scorer_name, title, scorer in (
            ("default", f"default alone ({default.card['parameters']:,} parameters)", default),
            ("page", f"the Face page: {members} ({page.card['parameters']:,} parameters)", page)):
        print(title)
        for count in (1, 5):
            image = frame(usable[:count])
            found = faces.detect_faces(image)
            scorer(faces.crop_faces(image, found))  # warm-up (traced once per process)
            jpeg = cv2.imencode(".jpg", image)[1].tobytes()
            decode = median_ms(lambda: faces.decode_image(jpeg), repeats)
            detect = median_ms(lambda: faces.detect_faces(image), repeats)
            classify = median_ms(lambda: scorer(faces.crop_faces(image, found)), repeats)
            per_frame = detect + classify
            figures["rows"].append({"scorer": scorer_name, "faces": count, "found": len(found), "decode_ms": decode,
                                    "detection_ms": detect, "classification_ms": classify,
                                    "frames_per_s": 1000 / per_frame, "frames_per_s_with_decode": 1000 / (per_frame + decode)})
            print(f"  {count} face(s), {len(found)} found: jpeg decode {decode:5.1f} ms, detection {detect:5.1f} ms, "
                  f"crop + classification {classify:5.1f} ms -> {1000 / per_frame:5.1f} frames/s "
                  f"({1000 / (per_frame + decode):5.1f} with decode)")
    one = frame(usable[:1])
    crop = faces.crop_faces(one, faces.detect_faces(one))
    label = int(page(crop).argmax())
    start = time.perf_counter()
    saliency.prepare(page)
    traced = (time.perf_counter() - start) * 1000
    maps = median_ms(lambda: saliency.face_heat_maps(page, crop, [label]), repeats)
    overlay = median_ms(lambda: saliency.face_overlay(page, crop[0], "happy"), repeats)
    figures["saliency"] = {"tracing_ms": traced, "map_ms": maps, "map_and_overlay_ms": overlay}
    print(f"where the Face page looked: tracing {traced:.0f} ms once per process (the app does it in the "
          f"background at load), then one face's map {maps:.1f} ms, map and overlay {overlay:.1f} ms")


if __name__ == "__main__":
    main()
