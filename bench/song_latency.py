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
    """Both runtimes side by side in one run, their stages taking turns: TensorFlow (the Keras files,
    as the app served them before issue 24) and LiteRT (the .tflite files the app serves now)."""
    from core.litert import LiteRTModel
    from core.runner import ModelRunner
    from core.song.predict import predict_song

    data, source = three_minute_mp3()
    print(f"song: 180 s, 44.1 kHz stereo mp3 ({len(data) / 1e6:.1f} MB, {source})")
    clip = demo_clip(data[:len(data) // 6])
    runtimes = {}
    for name, load_model, load_musicnn in (
            ("tensorflow", ModelRunner.load, lambda: musicnn.Musicnn.load()),
            ("litert", LiteRTModel.load, lambda: musicnn.LiteRTMusicnn.load())):
        start = time.perf_counter()
        runner, network = load_model(cards.DEFAULT_MODELS["song"]), load_musicnn()
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        features = (lambda net: lambda d: song_features.song_features(d, model=net))(network)
        first = predict_song(runner, data, features=features)
        runtimes[name] = {"runner": runner, "network": network, "features": features, "load_s": load_s,
                          "first_s": time.perf_counter() - start, "first": first}
        print(f"{name}: models loaded in {load_s:.2f} s; first prediction {runtimes[name]['first_s']:.2f} s")
    _, _, patches = song_features.song_patches(data)
    embeddings = runtimes["litert"]["network"].embeddings(patches)
    _, windows = song_features.windows(embeddings, np.arange(len(patches)) * musicnn.PATCH_S)
    stages = {"decode": lambda: decode.load_mono(data, musicnn.SAMPLE_RATE_HZ),
              "patches": lambda: song_features.song_patches(data)}
    for name, r in runtimes.items():
        stages.update({f"{name} musicnn": (lambda net: lambda: net.embeddings(patches))(r["network"]),
                       f"{name} model": (lambda run: lambda: run(windows))(r["runner"]),
                       f"{name} whole": (lambda run, f: lambda: predict_song(run, data, features=f))(r["runner"], r["features"]),
                       f"{name} clip": (lambda run, f: lambda: predict_song(run, clip, features=f))(r["runner"], r["features"])})
    load_before = os.getloadavg()[0]
    times, cpu = timed_rounds(stages, repeats)
    med = {name: 1000 * statistics.median(t) for name, t in times.items()}
    cpu_ms = {name: 1000 * statistics.median(c) for name, c in cpu.items()}
    diff = max(abs(runtimes["litert"]["first"][k] - runtimes["tensorflow"]["first"][k]) for k in ("valence", "arousal"))
    figures.update({"source": source, "song_mb": len(data) / 1e6, "patches": len(patches), "windows": len(windows),
                    "repeats": repeats, "median_ms": med, "median_cpu_ms": cpu_ms, "goals_ms": GOALS_MS,
                    "load_s": {k: r["load_s"] for k, r in runtimes.items()},
                    "first_prediction_s": {k: r["first_s"] for k, r in runtimes.items()},
                    "max_abs_difference_valence_arousal": diff,
                    "litert_over_tensorflow": {k: med[f"litert {k}"] / med[f"tensorflow {k}"] for k in ("clip", "whole", "musicnn", "model")},
                    "goals_met": {k: med[f"litert {k}"] <= goal for k, goal in GOALS_MS.items()}})
    print(f"median of {repeats} rounds, stages taking turns (load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs); wall ms (CPU ms):")
    print(f"  3-min song: {len(patches)} patches, {len(windows)} windows; decode to 16 kHz {med['decode']:.0f}, "
          f"+ log-mel patches {med['patches']:.0f}")
    print(f"  {'':28s} {'TensorFlow':>16s} {'LiteRT':>16s} {'LiteRT / TF':>12s}")
    for key, label in (("clip", "30-s clip, bytes -> result"), ("whole", "3-min song, bytes -> result"),
                       ("musicnn", "musicnn, every patch"), ("model", "CRNN ensemble, all windows")):
        tf_ms, lite_ms = med[f"tensorflow {key}"], med[f"litert {key}"]
        print(f"  {label:28s} {tf_ms:8.0f} ({cpu_ms[f'tensorflow {key}']:5.0f}) {lite_ms:8.0f} ({cpu_ms[f'litert {key}']:5.0f}) "
              f"{lite_ms / tf_ms:12.2f}")
    print(f"  goals (LiteRT): clip <= {GOALS_MS['clip']} ms, song <= {GOALS_MS['whole']} ms; largest valence/arousal "
          f"difference between the runtimes {diff:.1e}")


if __name__ == "__main__":
    main()
