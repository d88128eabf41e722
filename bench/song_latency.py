"""Song latency: for a 3-minute song, decode alone vs bytes -> finished result, and their ratio.

    .venv/bin/python bench/song_latency.py [--repeats 10]

The song is six of the shared demo clips joined and encoded as a 44.1 kHz stereo mp3 (or, without
../shared, generated music). Prints the figures the README quotes; measured in one run. The
machine is shared: the load average is printed, and the ratio is the figure to compare.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core import audio, cards  # noqa: E402

CLIPS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "music" / "clips"


def three_minute_mp3() -> tuple[bytes, str]:
    import librosa

    clips = sorted(CLIPS.glob("*.mp3"))[:6]
    if len(clips) == 6:
        parts = []
        for clip in clips:
            y, sr = sf.read(clip, dtype="float32", always_2d=True)
            parts.append(librosa.resample(y.T, orig_sr=sr, target_sr=44100).T)
        song, source = np.concatenate(parts)[:180 * 44100], "six demo clips joined"
    else:
        t = np.arange(180 * 44100) / 44100
        y = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
        song, source = np.stack([y, y], axis=1).astype(np.float32), "generated tones"
    buffer = io.BytesIO()
    sf.write(buffer, song, 44100, format="MP3")
    return buffer.getvalue(), source


def timed_rounds(stages: dict, repeats: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(wall-clock s, this process's CPU s) per run of each stage, the stages taking turns in every
    round, so that a change in the machine's load (it is shared) reaches all of them alike."""
    wall, cpu = {name: [] for name in stages}, {name: [] for name in stages}
    for _ in range(repeats):
        for name, fn in stages.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    data, source = three_minute_mp3()
    print(f"song: 180 s, 44.1 kHz stereo mp3 ({len(data) / 1e6:.1f} MB, {source})")

    from core.predict import ModelRunner, predict_song

    start = time.perf_counter()
    runner = ModelRunner.load(cards.DEFAULT_MODELS["song"])
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    first = predict_song(runner, data)
    first_s = time.perf_counter() - start
    print(f"model load: {load_s:.2f} s; first prediction after start-up (traces the model): {first_s:.2f} s")
    print(f"windows per song: {len(first['windows'])}")

    _, _, windows = audio.load_song_windows(data)
    load_before = os.getloadavg()[0]
    times, cpu = timed_rounds({"decode": lambda: audio.decode_audio(data),
                               "features": lambda: audio.load_song_windows(data),
                               "model": lambda: runner(windows),
                               "whole": lambda: predict_song(runner, data)}, args.repeats)
    med = {name: statistics.median(t) for name, t in times.items()}
    ratios = [w / d for w, d in zip(times["whole"], times["decode"])]
    print(f"median of {args.repeats} rounds (load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs):")
    print(f"  decode alone                         {med['decode'] * 1000:7.0f} ms")
    print(f"  decode + resample + features         {med['features'] * 1000:7.0f} ms")
    print(f"  model on all windows                 {med['model'] * 1000:7.0f} ms")
    print(f"  bytes -> finished result             {med['whole'] * 1000:7.0f} ms")
    print(f"  ratio result / decode                {med['whole'] / med['decode']:7.2f}  (goal < 2)")
    print(f"  same, median of the rounds' ratios   {statistics.median(ratios):7.2f}")
    cpu_ratio = statistics.median(cpu["whole"]) / statistics.median(cpu["decode"])
    print(f"  CPU time result / decode             {cpu_ratio:7.2f}  (all threads: without a free second "
          "core the ratio nears this)")

if __name__ == "__main__":
    main()
