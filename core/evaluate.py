"""Score a model on labelled data in the shared layouts; prints one JSON object.

    python -m core.evaluate song --data DIR [--model PATH]
        DIR holds annotations.csv and songs/<song_id>.<ext> (mp3, wav, flac, ogg or opus): each song
        is scored from its audio exactly as the app scores an upload (core.song.predict.predict_song).
    python -m core.evaluate face --data FILE.npz [--model PATH] [--usage N]
        By default every row whose usage is not 0 (Training). Without --model, what the Face page
        runs: the ensemble of models/face/ensemble.json (core.face.ensemble), mirror average included.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.face.data import FER_TRAINING, load_fer
from core.song.data import load_annotations
from core import metrics
from core.song import features
from core.errors import InputError, ModelFileError
from core.face.data import EXPRESSIONS
from core.predict import load_task_model
from core.runner import batched
from core.tf_runtime import quiet_stderr
from core.song.predict import predict_song

def evaluate_song(runner: Callable[[np.ndarray], np.ndarray], data_dir: Path) -> dict:
    """Every annotated song's audio through the app's path (predict_song) -> core.metrics.song_metrics
    over the songs that could be scored, plus "skipped": [{"song_id", "reason"}] for each song whose
    audio is missing or was refused. Raises ValueError when no song could be scored."""
    song_id, targets, _ = load_annotations(data_dir)
    predictions, scored, skipped = [], [], []
    for i, song in enumerate(song_id):
        try:
            path = features.song_file(data_dir, song)
            with quiet_stderr():
                result = predict_song(runner, path.read_bytes(), path.name)
        except (InputError, OSError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            skipped.append({"song_id": str(song), "reason": reason})
            continue
        predictions.append((result["valence"], result["arousal"]))
        scored.append(i)
    if not scored:
        raise ValueError(f"no song of {data_dir} could be scored ({len(skipped)} skipped; first: "
                         f"{skipped[0]['song_id'] if skipped else 'none'})")
    return {**metrics.song_metrics(targets[scored], np.array(predictions)), "skipped": skipped}


def evaluate_face(runner: Callable[[np.ndarray], np.ndarray], data_path: Path, usage: int | None = None) -> dict:
    data = load_fer(data_path)
    rows = data.usage != FER_TRAINING if usage is None else data.usage == usage
    if not rows.any():
        raise ValueError(f"{data_path} has no rows with usage {'!= 0' if usage is None else usage}")
    probabilities = batched(runner, data.pixels[rows][..., None])
    return metrics.classification_metrics(data.label[rows], probabilities, EXPRESSIONS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["song", "face"])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--model", type=Path, default=None,
                        help="a .keras file or a face ensemble's .json card (default: what the task's page runs, core.cards.DEFAULT_MODELS)")
    parser.add_argument("--usage", type=int, default=None, help="face: only rows of this usage")
    parser.add_argument("--runtime", choices=["litert", "keras"], default="litert",
                        help="litert: the .tflite files the app serves (default); keras: the .keras files in TensorFlow")
    args = parser.parse_args(argv)
    try:
        runner = load_task_model(args.task, args.model, args.runtime)
        if args.task == "song":
            result = evaluate_song(runner, args.data)
        else:
            result = evaluate_face(runner, args.data, args.usage)
    except (ModelFileError, OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
