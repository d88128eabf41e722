"""Compare latency: a person's input through 4 variants, with and without Monte Carlo dropout.

    python -m bench.compare_latency [--repeats 5] [--passes 20] [--json PATH]

Song: the 3-minute 44.1 kHz stereo mp3 of bench.song_latency, bytes -> every variant's mean,
path and (with passes) spread; goal under 3 s for 4 variants. Face: a 640x480 jpeg with one real
FER2013 face at 160 px, bytes -> every variant's probabilities and (with passes) their spread;
goal under 1 s for 4 variants with 20 passes. Models are loaded and traced first (as the page's
cache does), then timed; medians of one run.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from bench.common import (FER_FILE, Report, add_report_option, face_in_frame, fer_faces, median_ms,
                          three_minute_mp3)
from core.variants import compare
from core.variants.zoo import trained_variants

GOALS_S = {"song": 3.0, "face": 1.0}
SIDE_PX = 160


def face_jpeg() -> bytes:
    from core.face import detect

    frames = (face_in_frame(face, SIDE_PX, top_left=(20, 20)) for face in fer_faces(100))
    return cv2.imencode(".jpg", next(f for f in frames if len(detect.detect_faces(f)) == 1))[1].tobytes()


def run(task: str, data: bytes, passes_options: tuple[int, ...], repeats: int) -> dict | None:
    names = list(trained_variants(task))[:4]
    if len(names) < 4:
        print(f"{task}: only {len(names)} trained variants ({names}); this bench needs 4")
        return None
    start = time.perf_counter()
    runners = compare.load_runners(task, names)
    shape = compare.INPUT_SHAPES[task]
    for runner in runners.values():  # trace both paths once, as the page's cached loader does
        runner(np.zeros((1, *shape), np.float32))
        runner.mc_dropout(np.zeros((1, *shape), np.float32), 1)
    load_s = time.perf_counter() - start
    print(f"{task}: {', '.join(names)}; load and trace {load_s:.1f} s")
    if task == "song":
        def once(passes):
            return compare.compare_song(runners, compare.song_input(data), passes)
    else:
        def once(passes):
            return compare.compare_faces(runners, compare.picture_input(data), passes)
    figures = {"variants": names, "load_and_trace_s": load_s, "goal_s": GOALS_S[task], "median_ms": {}}
    for passes in passes_options:
        once(passes)  # warm-up at this batch size
        ms = median_ms(lambda: once(passes), repeats)
        figures["median_ms"][str(passes)] = ms
        label = f"{passes} Monte Carlo passes" if passes else "no Monte Carlo dropout"
        print(f"  4 variants, {label:24s} {ms:7.0f} ms  (goal < {GOALS_S[task]:.0f} s)")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--passes", type=int, default=compare.DEFAULT_PASSES)
    add_report_option(parser, "compare_latency")
    args = parser.parse_args()
    with Report("compare_latency", args.json) as report:
        song, source = three_minute_mp3()
        print(f"median of {args.repeats} runs, from the input's bytes to every variant's result")
        print(f"song: 180 s mp3 ({source})")
        report.figures["song"] = run("song", song, (0, args.passes), args.repeats)
        if FER_FILE.exists():
            print("face: 640x480 jpeg, one real FER2013 face")
            report.figures["face"] = run("face", face_jpeg(), (0, args.passes), args.repeats)
        else:
            print(f"face: no {FER_FILE}, skipped (needs real faces)")


if __name__ == "__main__":
    main()
