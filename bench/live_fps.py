"""Live video: frames per second through the Face page's live callback, one face at 640x480.

    python -m bench.live_fps [--frames 200] [--json PATH]

Each frame goes through `core.face.live.LiveFaces.process` (detection, the faces' crops scored, the
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
import time

from bench.common import FER_FILE, Report, add_report_option, face_in_frame, fer_faces

SIDE_PX = 200
GOAL_FPS, GOAL_P95_MS = 20, 150


def _face_frame():
    """A 640x480 BGR frame with one real FER face at 200 px, centred (one the detector finds)."""
    from core.face import detect

    if FER_FILE.exists():
        for face in fer_faces(100):
            frame = face_in_frame(face, SIDE_PX)
            if detect.detect_faces(frame):
                return frame
    raise SystemExit("no detectable FER face: run with ../shared beside the checkout")


def measure(name: str, score, frame, n: int) -> dict:
    from core.face.live import LiveFaces

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
    add_report_option(parser, "live_fps")
    args = parser.parse_args()
    from webapp.server_setup import tensorflow_threads

    tensorflow_threads()  # as the server runs
    from core.variants.zoo import model_path
    from core.face import detect
    from core.face.served import FaceEnsemble
    from core.runner import ModelRunner

    detect.prepare_detectors()
    frame = _face_frame()
    with Report("live_fps", args.json) as report:
        rows = [measure("Face page (ensemble card)", FaceEnsemble.load(), frame, args.frames),
                measure("default model alone", ModelRunner.load(model_path("face", "default")), frame, args.frames)]
        report.figures.update({"frames": args.frames, "goal": {"fps_at_least": GOAL_FPS, "p95_ms_at_most": GOAL_P95_MS},
                               "rows": rows})
        print(f"machine: {os.cpu_count()} CPUs; one face in a 640x480 frame; {args.frames} frames after 5 of warm-up")
        print(f"| scorer | faces found | fps | median ms | p95 ms | goal >= {GOAL_FPS} fps, p95 <= {GOAL_P95_MS} ms |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            r["goal_met"] = r["fps"] >= GOAL_FPS and r["p95 ms"] <= GOAL_P95_MS
            print(f"| {r['scorer']} | {r['faces']} | {r['fps']:.1f} | {r['median ms']:.1f} | {r['p95 ms']:.1f} | "
                  f"{'met' if r['goal_met'] else 'NOT met'} |")


if __name__ == "__main__":
    main()
