"""Score a model on labelled data in the shared layouts; prints one JSON object.

    python -m core.evaluate song --data DIR [--model PATH]
        DIR holds annotations.csv and songs/<song_id>.<ext> (mp3, wav, flac, ogg or opus): each song
        is scored from its audio exactly as the app scores an upload (core.predict.predict_song).
    python -m core.evaluate face --data FILE.npz [--model PATH] [--usage N]
        By default every row whose usage is not 0 (Training). Without --model, what the Face page
        runs: the ensemble of models/face/ensemble.json (core.face_ensemble), mirror average included.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from core import cards, datasets, metrics, song_features
from core.errors import InputError, ModelFileError
from core.datasets import EXPRESSIONS
from core.face_ensemble import FaceEnsemble
from core.predict import ModelRunner, predict_song

BATCH = 256


def _batched(runner: ModelRunner, x: np.ndarray) -> np.ndarray:
    return np.concatenate([runner(x[i:i + BATCH].astype(np.float32)) for i in range(0, len(x), BATCH)])


def evaluate_song(runner: ModelRunner, data_dir: Path) -> dict:
    """Every annotated song's audio through the app's path (predict_song) -> core.metrics.song_metrics.
    A song whose file is missing or refused raises ValueError naming it."""
    song_id, targets, _ = datasets.load_annotations(data_dir)
    predictions = np.zeros((len(song_id), 2))
    for i, song in enumerate(song_id):
        path = song_features.song_file(data_dir, song)
        try:
            result = predict_song(runner, path.read_bytes(), path.name)
        except InputError as e:
            raise ValueError(f"{path}: {e}") from None
        predictions[i] = result["valence"], result["arousal"]
    return metrics.song_metrics(targets, predictions)


def evaluate_face(runner: ModelRunner, data_path: Path, usage: int | None = None) -> dict:
    data = datasets.load_fer(data_path)
    rows = data.usage != datasets.FER_TRAINING if usage is None else data.usage == usage
    if not rows.any():
        raise ValueError(f"{data_path} has no rows with usage {'!= 0' if usage is None else usage}")
    probabilities = _batched(runner, data.pixels[rows][..., None])
    return metrics.classification_metrics(data.label[rows], probabilities, EXPRESSIONS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["song", "face"])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--model", type=Path, default=None,
                        help="a .keras file (default: the app's; for faces the Face page's ensemble)")
    parser.add_argument("--usage", type=int, default=None, help="face: only rows of this usage")
    args = parser.parse_args(argv)
    try:
        if args.task == "face" and args.model is None:
            runner = FaceEnsemble.load()
        else:
            runner = ModelRunner.load(args.model or cards.DEFAULT_MODELS[args.task])
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
