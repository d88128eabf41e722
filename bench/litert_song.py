"""The song models under TensorFlow/Keras and under LiteRT, side by side in one run.

    python -m bench.litert_song [--repeats N]

CRNN seed ensemble (1 window and 18 windows of 10 patches), musicnn (10 and 60 patches, the
LiteRT graph at 1 and 2 XNNPACK threads), taking turns in every round (bench.common.timed_rounds)
so the shared machine's load reaches all alike; the time to build an interpreter; the largest
differences from Keras. Real inputs: the shared demo clips' patches.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bench.common import CLIPS_DIR, Report, add_report_option, load_note, timed_rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.litert_song", description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    add_report_option(parser, "litert_song")
    args = parser.parse_args(argv)

    from core import cards
    from core.litert import LiteRTModel, litert_path
    from core.runner import ModelRunner
    from core.song import features, musicnn

    with Report("litert_song", args.json) as report:
        clips = sorted(CLIPS_DIR.glob("*.mp3"))
        patches = np.concatenate([features.song_patches(p.read_bytes())[2] for p in clips[:6]])[:60]
        tf_musicnn = musicnn.default_musicnn()
        lite = {threads: musicnn.LiteRTMusicnn.load(num_threads=threads) for threads in (1, 2)}
        embeddings = tf_musicnn.embeddings(patches)
        ensemble_path = cards.DEFAULT_MODELS["song"]
        keras_ensemble = ModelRunner.load(ensemble_path)
        lite_ensemble = LiteRTModel.load(ensemble_path)
        one = embeddings[None, :10]
        many = embeddings[np.arange(18)[:, None] % 50 + np.arange(10)]
        for fn in (keras_ensemble, lite_ensemble):  # traced / allocated before timing
            fn(one), fn(many)
        stages = {"crnn_keras_1_window": lambda: keras_ensemble(one),
                  "crnn_litert_1_window": lambda: lite_ensemble(one),
                  "crnn_keras_18_windows": lambda: keras_ensemble(many),
                  "crnn_litert_18_windows": lambda: lite_ensemble(many)}
        for n in (10, 60):
            stages[f"musicnn_tf_{n}_patches"] = lambda n=n: tf_musicnn.embeddings(patches[:n])
            for threads, model in lite.items():
                stages[f"musicnn_litert_{threads}t_{n}_patches"] = lambda n=n, m=model: m.embeddings(patches[:n])
        for fn in stages.values():
            fn()
        wall, cpu = timed_rounds(stages, args.repeats)
        figures = {name: {"median_ms": round(1000 * statistics.median(w), 1),
                          "cpu_ms": round(1000 * statistics.median(cpu[name]), 1)} for name, w in wall.items()}

        content = {name: litert_path(path).read_bytes()
                   for name, path in (("ensemble", ensemble_path), ("musicnn", musicnn.MODEL_PATH))}
        creation = {}
        for name, data in content.items():
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                LiteRTModel(data)
                times.append(time.perf_counter() - start)
            creation[name] = round(1000 * statistics.median(times), 2)

        lite_embeddings = lite[2].embeddings(patches)
        diffs = {"musicnn_embeddings": float(np.abs(lite_embeddings - embeddings).max()),
                 "crnn_valence_arousal": max(float(np.abs(keras_ensemble(x) - lite_ensemble(x)).max())
                                             for x in (one, many, embeddings[None, :3])),
                 "valence_arousal_from_litert_musicnn": float(np.abs(
                     lite_ensemble(lite_embeddings[np.arange(18)[:, None] % 50 + np.arange(10)])
                     - keras_ensemble(many)).max())}
        report.figures.update({"timings": figures, "interpreter_creation_ms": creation, "max_abs_diff": diffs,
                               "repeats": args.repeats, "load": load_note()})
        import json

        print(json.dumps(report.figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
