"""Memory over many analyses: the pages' code path 200 times in one process must not keep growing.

    .venv/bin/python bench/memory.py [--analyses 200]

Loads each default model once (as webapp/loaders.py does with st.cache_resource) and runs what
the pages run, alternating: a song (a different 30-s, 44.1-kHz wav each time) through
`predict_song` and the mood map, and a photo (a different 640x480 png with one face) through
`analyse_picture`, the boxes drawn and a probability chart per face; each figure is serialised to
JSON as Streamlit does. RSS is read from /proc/self/status after every analysis.
Goal: RSS after the last analysis at most 10% above RSS after the first 20.
(`bench/load.py --in-a-row 200` measures the same through a real server and browser.)
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

from core import cards, faces, plots  # noqa: E402
from core.predict import ModelRunner, analyse_picture, predict_song  # noqa: E402
from tests.conftest import FER_FILE, music_like, wav_bytes  # noqa: E402

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
    frame = np.full((480, 640), 128, np.uint8)
    x = 100 + (i * 37) % 300
    frame[140:340, x:x + 200] = cv2.resize(face, (200, 200), interpolation=cv2.INTER_CUBIC)
    frame[:4] = np.random.default_rng(i).integers(0, 256, (4, 640), dtype=np.uint8)
    return cv2.imencode(".png", frame)[1].tobytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--analyses", type=int, default=200)
    args = parser.parse_args()
    face = np.full((48, 48), 90, np.uint8)
    if FER_FILE.exists():
        with np.load(FER_FILE) as npz:
            face = npz["pixels"][np.flatnonzero(npz["usage"] == 1)[1]]
    runners = {task: ModelRunner.load(cards.DEFAULT_MODELS[task]) for task in ("song", "face")}
    print(f"models loaded: RSS {rss_mib():.1f} MiB", flush=True)
    rss: dict[int, float] = {}
    started = time.perf_counter()
    for i in range(1, args.analyses + 1):
        if i % 2:
            result = predict_song(runners["song"], song(i), f"song_{i}.wav")
            plots.mood_map([result]).to_json()
        else:
            image, result = analyse_picture(runners["face"], photo(face, i), f"photo_{i}.png")
            faces.draw_faces(image, [f["box"] for f in result["faces"]], [f["label"] for f in result["faces"]])
            for n, found in enumerate(result["faces"], start=1):
                plots.probability_bars(found["probabilities"], f"Face {n}: {found['label']}").to_json()
        rss[i] = rss_mib()
        if i in (1, WARM_UP, args.analyses) or i % 25 == 0:
            print(f"{i:4d} analyses: RSS {rss[i]:7.1f} MiB  ({time.perf_counter() - started:.0f} s)", flush=True)
    after_warm_up, after_all = rss[min(WARM_UP, args.analyses)], rss[args.analyses]
    growth = 100 * (after_all - after_warm_up) / after_warm_up
    print(f"RSS after {WARM_UP}: {after_warm_up:.1f} MiB; after {args.analyses}: {after_all:.1f} MiB; "
          f"growth {growth:+.1f}% (goal <= {GOAL_PERCENT:.0f}%: {'met' if growth <= GOAL_PERCENT else 'NOT met'}); "
          f"peak {max(rss.values()):.1f} MiB")
    return 0 if growth <= GOAL_PERCENT else 1


if __name__ == "__main__":
    sys.exit(main())
