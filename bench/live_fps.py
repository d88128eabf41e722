"""Live video: frames per second through the Face page's live callback, one face at 640x480.

    .venv/bin/python bench/live_fps.py [--frames 200]

Each frame goes through `core.live.LiveFaces.process` (detection, the faces' crops scored, the
probabilities smoothed, boxes and labels drawn), exactly what the page's video callback calls, on
one thread, as streamlit-webrtc runs it. Rows: the scorer the Face page's snapshot mode runs (the
ensemble its card names) and the default model alone. Goal (issue "Live"): at least 20 processed
frames a second and at most 150 ms from camera to overlay; streamlit-webrtc drops frames that come
while one is being processed (async processing), so the wait is at most one frame's processing
beyond the frame's own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _face_frame():
    """A 640x480 BGR frame with one real FER face (../shared), else a drawn face-like pattern."""
    import cv2
    import numpy as np

    from core import faces

    fer = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013.npz"
    if fer.exists():
        with np.load(fer) as npz:
            for face in npz["pixels"][np.flatnonzero(npz["usage"] == 1)[:100]]:
                canvas = np.full((480, 640), 128, np.uint8)
                canvas[140:340, 220:420] = cv2.resize(face, (200, 200), interpolation=cv2.INTER_CUBIC)
                frame = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
                if faces.detect_faces(frame):
                    return frame
    raise SystemExit("no detectable FER face: run with ../shared beside the checkout")


def measure(name: str, score, frame, n: int) -> dict:
    from core.live import LiveFaces

    live = LiveFaces(score)
    for _ in range(5):  # warm-up: first traces and the detector's first calls
        live.process(frame)
    times = []
    started = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        live.process(frame)
        times.append((time.perf_counter() - t) * 1000)
    wall = time.perf_counter() - started
    times.sort()
    return {"scorer": name, "frames": n, "fps": n / wall, "median ms": statistics.median(times),
            "p95 ms": times[int(0.95 * (n - 1))], "faces": len(live.snapshot()[1].boxes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    from webapp.server_setup import tensorflow_threads

    tensorflow_threads()  # as the server runs
    from core import cards, faces
    from core.face_ensemble import FaceEnsemble
    from core.predict import ModelRunner

    faces.prepare_detectors()
    frame = _face_frame()
    rows = [measure("Face page (ensemble card)", FaceEnsemble.load(), frame, args.frames),
            measure("default model alone", ModelRunner.load(cards.DEFAULT_MODELS["face"]), frame, args.frames)]
    print(f"machine: {os.cpu_count()} CPUs; one face in a 640x480 frame; {args.frames} frames after 5 of warm-up")
    print("| scorer | faces found | fps | median ms | p95 ms | goal >= 20 fps, p95 <= 150 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        met = r["fps"] >= 20 and r["p95 ms"] <= 150
        print(f"| {r['scorer']} | {r['faces']} | {r['fps']:.1f} | {r['median ms']:.1f} | {r['p95 ms']:.1f} | "
              f"{'met' if met else 'NOT met'} |")


if __name__ == "__main__":
    main()
