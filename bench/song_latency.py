"""Song latency: bytes -> finished result for a 30-s clip and a 3-minute song, and its stages.

    .venv/bin/python bench/song_latency.py [--repeats 10]

The clip is the first shared demo clip (an original mp3); the song is six of them joined and
encoded as a 44.1 kHz stereo mp3 (or, without ../shared, generated music). Goals (issue 13): a
30-s clip's result in at most 1.5 s and a 3-minute song's in at most 3 s, musicnn included.
Prints the figures the README quotes; measured in one run. The machine is shared: the load average
is printed.
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

from core import audio, cards, musicnn, song_features  # noqa: E402

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

    clips = sorted(CLIPS.glob("*.mp3"))
    clip = clips[0].read_bytes() if clips else data[:len(data) // 6]
    network = musicnn.default_musicnn()
    _, _, patches = song_features.song_patches(data)
    embeddings = network.embeddings(patches)
    _, windows = song_features.windows(embeddings, np.arange(len(patches)) * musicnn.PATCH_S)
    load_before = os.getloadavg()[0]
    times, cpu = timed_rounds({"decode": lambda: audio.decode_audio(data),
                               "patches": lambda: song_features.song_patches(data),
                               "musicnn": lambda: network.embeddings(patches),
                               "model": lambda: runner(windows),
                               "whole": lambda: predict_song(runner, data),
                               "clip": lambda: predict_song(runner, clip)}, args.repeats)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"median of {args.repeats} rounds (load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs):")
    print(f"  30-s clip: bytes -> finished result  {med['clip'] * 1000:7.0f} ms  (goal <= 1500)")
    print(f"  3-min song ({len(patches)} patches, {len(windows)} windows):")
    print(f"    decode alone                       {med['decode'] * 1000:7.0f} ms")
    print(f"    decode + 16 kHz + log-mel patches  {med['patches'] * 1000:7.0f} ms")
    print(f"    musicnn on every patch             {med['musicnn'] * 1000:7.0f} ms")
    print(f"    CRNN on all windows                {med['model'] * 1000:7.0f} ms")
    print(f"    bytes -> finished result           {med['whole'] * 1000:7.0f} ms  (goal <= 3000)")
    cpu_ratio = statistics.median(cpu["whole"]) / statistics.median(times["whole"])
    print(f"  CPU time / wall time, 3-min song     {cpu_ratio:7.2f}  (threads at work at once)")


if __name__ == "__main__":
    main()
