"""Compare latency: a person's input through 4 variants, with and without Monte Carlo dropout.

    .venv/bin/python bench/compare_latency.py [--repeats 5] [--passes 20]

Song: the 3-minute 44.1 kHz stereo mp3 of bench/song_latency.py, bytes -> every variant's mean,
path and (with passes) spread; goal under 3 s for 4 variants. Face: a 640x480 jpeg with one real
FER2013 face (bench/face_latency.py's frame), bytes -> every variant's probabilities and (with
passes) their spread; goal under 1 s for 4 variants with 20 passes. Models are loaded and traced
first (as the page's cache does), then timed; medians of one run.
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np

from face_latency import FER, ROOT, frame, median_ms  # noqa: E402 (bench/ is on sys.path when run as a script)
from song_latency import three_minute_mp3  # noqa: E402

sys.path.insert(0, str(ROOT))

from core import compare, faces  # noqa: E402
from core.variants import trained_variants  # noqa: E402

GOALS_S = {"song": 3.0, "face": 1.0}


def face_jpeg() -> bytes:
    with np.load(FER) as npz:
        pool = npz["pixels"][npz["usage"] == 1][:100]
    face = next(f for f in pool if len(faces.detect_faces(frame([f], 160))) == 1)
    return cv2.imencode(".jpg", frame([face], 160))[1].tobytes()


def run(task: str, data: bytes, passes_options: tuple[int, ...], repeats: int) -> None:
    names = list(trained_variants(task))[:4]
    if len(names) < 4:
        print(f"{task}: only {len(names)} trained variants ({names}); this bench needs 4")
        return
    start = time.perf_counter()
    runners = compare.load_runners(task, names)
    shape = compare.INPUT_SHAPES[task]
    for runner in runners.values():  # trace both paths once, as the page's cached loader does
        runner(np.zeros((1, *shape), np.float32))
        runner.mc_dropout(np.zeros((1, *shape), np.float32), 1)
    print(f"{task}: {', '.join(names)}; load and trace {time.perf_counter() - start:.1f} s")
    if task == "song":
        def once(passes):
            return compare.compare_song(runners, compare.song_input(data), passes)
    else:
        def once(passes):
            return compare.compare_faces(runners, compare.picture_input(data), passes)
    for passes in passes_options:
        once(passes)  # warm-up at this batch size
        ms = median_ms(lambda: once(passes), repeats)
        label = f"{passes} Monte Carlo passes" if passes else "no Monte Carlo dropout"
        print(f"  4 variants, {label:24s} {ms:7.0f} ms  (goal < {GOALS_S[task]:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--passes", type=int, default=compare.DEFAULT_PASSES)
    args = parser.parse_args()
    song, source = three_minute_mp3()
    print(f"median of {args.repeats} runs, from the input's bytes to every variant's result")
    print(f"song: 180 s mp3 ({source})")
    run("song", song, (0, args.passes), args.repeats)
    if FER.exists():
        print("face: 640x480 jpeg, one real FER2013 face")
        run("face", face_jpeg(), (0, args.passes), args.repeats)
    else:
        print(f"face: no {FER}, skipped (needs real faces)")


if __name__ == "__main__":
    main()
