"""Memory over many analyses: the pages' code path 200 times in one process must not keep growing.

    python -m bench.memory [--analyses 200] [--json PATH]

Loads each default model once (as webapp/loaders.py does with st.cache_resource) and runs what
the pages run, alternating: a song (a different 30-s, 44.1-kHz wav each time) through
`predict_song` and the mood map, and a photo (a different 640x480 png with one face) through
`analyse_picture`, the boxes drawn and a probability chart per face; each figure is serialised to
JSON as Streamlit does. RSS is read from /proc/self/status after every analysis.
Goal: RSS after the last analysis at most 10% above RSS after the first 20.
(`python -m bench.load --in-a-row 200` measures the same through a real server and browser.)
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np

from bench.common import FER_FILE, Report, add_report_option, face_in_frame, fer_faces
from core import cards, plots
from core.face import detect as faces
from core.face.served import FaceEnsemble
from core.face.predict import analyse_picture
from core.runner import ModelRunner
from core.song.predict import predict_song
from tests.conftest import music_like, wav_bytes

WARM_UP = 20
GOAL_PERCENT = 10.0


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def song(i: int) -> bytes:
    return wav_bytes(music_like(30.0, 44100, channels=2, seed=i), 44100)


def photo(face: np.ndarray, i: int) -> bytes:
    """A different 640x480 png for each i: the face at 200 px moved along, a noisy top edge."""
    frame = face_in_frame(face, 200, top_left=(140, 100 + (i * 37) % 300), bgr=False)
    frame[:4] = np.random.default_rng(i).integers(0, 256, (4, 640), dtype=np.uint8)
    return cv2.imencode(".png", frame)[1].tobytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--analyses", type=int, default=200)
    add_report_option(parser, "memory")
    args = parser.parse_args()
    with Report("memory", args.json) as report:
        growth = measure(args.analyses, report.figures)
    return 0 if growth <= GOAL_PERCENT else 1


def measure(analyses: int, figures: dict) -> float:
    """-> RSS growth from the warm-up's end to the last analysis, %."""
    face = fer_faces(1, start=1)[0] if FER_FILE.exists() else np.full((48, 48), 90, np.uint8)
    runners = {"song": ModelRunner.load(cards.DEFAULT_MODELS["song"]), "face": FaceEnsemble.load()}  # as the pages
    print(f"models loaded: RSS {rss_mib():.1f} MiB", flush=True)
    rss: dict[int, float] = {}
    started = time.perf_counter()
    for i in range(1, analyses + 1):
        if i % 2:
            result = predict_song(runners["song"], song(i), f"song_{i}.wav")
            plots.mood_map([result]).to_json()
        else:
            image, result = analyse_picture(runners["face"], photo(face, i), f"photo_{i}.png")
            faces.draw_faces(image, [f["box"] for f in result["faces"]], [f["label"] for f in result["faces"]])
            for n, found in enumerate(result["faces"], start=1):
                plots.probability_bars(found["probabilities"], f"Face {n}: {found['label']}").to_json()
        rss[i] = rss_mib()
        if i in (1, WARM_UP, analyses) or i % 25 == 0:
            print(f"{i:4d} analyses: RSS {rss[i]:7.1f} MiB  ({time.perf_counter() - started:.0f} s)", flush=True)
    after_warm_up, after_all = rss[min(WARM_UP, analyses)], rss[analyses]
    growth = 100 * (after_all - after_warm_up) / after_warm_up
    print(f"RSS after {WARM_UP}: {after_warm_up:.1f} MiB; after {analyses}: {after_all:.1f} MiB; "
          f"growth {growth:+.1f}% (goal <= {GOAL_PERCENT:.0f}%: {'met' if growth <= GOAL_PERCENT else 'NOT met'}); "
          f"peak {max(rss.values()):.1f} MiB")
    figures.update({"analyses": analyses, "warm_up": WARM_UP, "rss_after_warm_up_mib": after_warm_up,
                    "rss_after_all_mib": after_all, "growth_percent": growth, "goal_percent": GOAL_PERCENT,
                    "goal_met": growth <= GOAL_PERCENT, "peak_mib": max(rss.values()), "rss_by_analysis_mib": rss})
    return growth


if __name__ == "__main__":
    sys.exit(main())
