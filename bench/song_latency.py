"""Song latency: bytes -> finished result for a 30-s clip and a 3-minute song, and its stages.

    python -m bench.song_latency [--repeats 10] [--json PATH]

The clip is the first shared demo clip (an original mp3); the song is six of them joined and
encoded as a 44.1 kHz stereo mp3 (or, without ../shared, generated music). Goals (issue 13): a
30-s clip's result in at most 1.5 s and a 3-minute song's in at most 3 s, musicnn included.
Measured in one run; the machine is shared, so the load average is part of the report.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from bench.common import Report, add_report_option, demo_clip, three_minute_mp3, timed_rounds
from core import cards
from core.song import decode, musicnn
from core.song import features as song_features

GOALS_MS = {"clip": 1500, "whole": 3000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    add_report_option(parser, "song_latency")
    args = parser.parse_args()
    with Report("song_latency", args.json) as report:
        measure(args.repeats, report.figures)


def measure(repeats: int, figures: dict) -> None:
    from core.runner import ModelRunner
    from core.song.predict import predict_song

    data, source = three_minute_mp3()
    print(f"song: 180 s, 44.1 kHz stereo mp3 ({len(data) / 1e6:.1f} MB, {source})")
    start = time.perf_counter()
    runner = ModelRunner.load(cards.DEFAULT_MODELS["song"])
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    first = predict_song(runner, data)
    first_s = time.perf_counter() - start
    print(f"model load: {load_s:.2f} s; first prediction after start-up (traces the model): {first_s:.2f} s")
    print(f"windows per song: {len(first['windows'])}")

    clip = demo_clip(data[:len(data) // 6])
    network = musicnn.default_musicnn()
    _, _, patches = song_features.song_patches(data)
    embeddings = network.embeddings(patches)
    _, windows = song_features.windows(embeddings, np.arange(len(patches)) * musicnn.PATCH_S)
    load_before = os.getloadavg()[0]
    times, cpu = timed_rounds({"decode": lambda: decode.load_mono(data, musicnn.SAMPLE_RATE_HZ),
                               "patches": lambda: song_features.song_patches(data),
                               "musicnn": lambda: network.embeddings(patches),
                               "model": lambda: runner(windows),
                               "whole": lambda: predict_song(runner, data),
                               "clip": lambda: predict_song(runner, clip)}, repeats)
    med = {name: 1000 * statistics.median(t) for name, t in times.items()}
    cpu_ratio = statistics.median(cpu["whole"]) / statistics.median(times["whole"])
    figures.update({"source": source, "song_mb": len(data) / 1e6, "model_load_s": load_s, "first_prediction_s": first_s,
                    "patches": len(patches), "windows": len(windows), "repeats": repeats,
                    "median_ms": med, "goals_ms": GOALS_MS, "cpu_over_wall_whole": cpu_ratio,
                    "goals_met": {k: med[k] <= goal for k, goal in GOALS_MS.items()}})
    print(f"median of {repeats} rounds (load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs):")
    print(f"  30-s clip: bytes -> finished result  {med['clip']:7.0f} ms  (goal <= {GOALS_MS['clip']})")
    print(f"  3-min song ({len(patches)} patches, {len(windows)} windows):")
    print(f"    decode to 16 kHz mono              {med['decode']:7.0f} ms")
    print(f"    decode + 16 kHz + log-mel patches  {med['patches']:7.0f} ms")
    print(f"    musicnn on every patch             {med['musicnn']:7.0f} ms")
    print(f"    CRNN on all windows                {med['model']:7.0f} ms")
    print(f"    bytes -> finished result           {med['whole']:7.0f} ms  (goal <= {GOALS_MS['whole']})")
    print(f"  CPU time / wall time, 3-min song     {cpu_ratio:7.2f}  (threads at work at once)")


if __name__ == "__main__":
    main()
