"""Run the models on a person's songs and pictures.

    python -m core.predict song FILE...     one JSON line per song
    python -m core.predict face IMAGE...    one JSON line per picture

The library functions take bytes, so nothing a person uploads is written to disk.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core import cards, faces, song_features
from core.errors import InputError, ModelFileError
from core.datasets import EXPRESSIONS
from core.metrics import QUADRANT_NAMES, quadrant
from core.tf_runtime import quiet_stderr


class ModelRunner:
    """A loaded model behind one traced `tf.function`: traced once, then safe to call from
    several threads (sessions) at once, unlike the first calls of `model.predict_on_batch`."""

    def __init__(self, model, card: dict):
        import tensorflow as tf

        self.model, self.card = model, card
        spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
        # autograph=False: a Keras model needs no conversion, and autograph writes the converted
        # source to a file in the temp folder (a file on disk for every server process).
        self._infer = tf.function(lambda x: model(x, training=False), input_signature=[spec], autograph=False)

    @classmethod
    def load(cls, path: Path) -> "ModelRunner":
        model, card = cards.load_model(path)
        return cls(model, card)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._infer(np.asarray(x, dtype=np.float32)).numpy()

    def mc_dropout(self, x: np.ndarray, passes: int) -> np.ndarray:
        """Monte Carlo dropout: `passes` predictions with every dropout layer kept on (batch
        normalisation stays in inference mode) -> (passes, *output shape)."""
        if not hasattr(self, "_mc_infer"):
            import tensorflow as tf

            sampler = _with_dropout_on(self.model)
            spec = tf.TensorSpec((None, *self.model.inputs[0].shape[1:]), tf.float32)
            self._mc_infer = tf.function(lambda batch: sampler(batch, training=False),
                                         input_signature=[spec], autograph=False)
        x = np.asarray(x, dtype=np.float32)
        repeated = np.repeat(x[None], passes, axis=0).reshape(-1, *x.shape[1:])
        return self._mc_infer(repeated).numpy().reshape(passes, len(x), -1)


def _with_dropout_on(model):
    """A copy of `model`, sharing its weights' values, whose dropout layers drop at inference too."""
    import keras

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.SpatialDropout1D):
            return _AlwaysOn(keras.layers.SpatialDropout1D)(**config)
        if isinstance(layer, keras.layers.Dropout):
            return _AlwaysOn(keras.layers.Dropout)(**config)
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def _AlwaysOn(base):
    class AlwaysOn(base):
        def call(self, inputs, training=None):
            return super().call(inputs, training=True)

    AlwaysOn.__name__ = f"AlwaysOn{base.__name__}"
    return AlwaysOn


def song_mood(name: str, values: np.ndarray, starts_s: np.ndarray) -> dict:
    """A song's mood from its windows' (valence, arousal), shape (k, 2): their mean, its quadrant,
    and the path through the windows."""
    valence, arousal = (float(v) for v in values.mean(axis=0))
    q = int(quadrant(valence, arousal))
    return {
        "file": name, "valence": valence, "arousal": arousal, "quadrant": f"Q{q}", "mood": QUADRANT_NAMES[q],
        "windows": [{"start_s": round(float(s), 2), "valence": float(v), "arousal": float(a)}
                    for s, (v, a) in zip(starts_s, values)],
    }


def fold_spread(fold_windows: list[np.ndarray]) -> dict:
    """The fold models' predictions of one song, each (windows, 2) -> {"models", "points" (each
    model's song mean), "std" (their sd, valence and arousal)}: how much the song's mood depends on
    which songs the model was trained on."""
    means = np.array([w.mean(axis=0) for w in fold_windows])
    return {"models": int(len(means)), "points": means.round(4).tolist(), "std": means.std(axis=0).tolist()}


def predict_song(runner: ModelRunner, data: bytes, name: str = "",
                 features: Callable[[bytes], tuple] = song_features.song_features,
                 fold_runners: list | None = None) -> dict:
    """Bytes of a song -> its mood: mean over 30-s windows of musicnn patch embeddings, the path
    through the windows, and the song's top musicnn tags ("what the model hears"); with
    `fold_runners` (the model's cross-validation fold models), their spread as "folds".

    features: `song_features.song_features`, or what computes the same elsewhere (the app: in a
    worker process, `core.workers`)."""
    duration_s, starts_s, x = features(data)
    result = {**song_mood(name, runner(x), starts_s), "duration_s": round(duration_s, 2),
              "tags": song_features.song_tags(x)}
    if fold_runners:
        result["folds"] = fold_spread([fold(x) for fold in fold_runners])
    return result


def song_rows(results: list[dict]) -> list[dict]:
    """One table row per song result: its mood, the fold models' sd (None without them) and the
    top musicnn tags as text."""
    return [{**{k: r[k] for k in ("file", "valence", "arousal", "quadrant", "mood", "duration_s")},
             "valence sd": r["folds"]["std"][0] if "folds" in r else None,
             "arousal sd": r["folds"]["std"][1] if "folds" in r else None,
             "what the model hears": song_features.tags_text(r["tags"])} for r in results]


def face_rows(result: dict) -> list[dict]:
    """One table row per face of a picture's result: its number (left to right), box, label and the
    seven probabilities (for a CSV download)."""
    return [{"file": result["file"], "face": i, "x": face["box"][0], "y": face["box"][1],
             "width": face["box"][2], "height": face["box"][3], "label": face["label"],
             **{name: round(p, 4) for name, p in face["probabilities"].items()}}
            for i, face in enumerate(result["faces"], start=1)]


def expression_probabilities(probabilities: np.ndarray) -> list[dict]:
    """(n faces, 7) probabilities -> per face its top label and the 7 probabilities by name."""
    return [{"label": EXPRESSIONS[int(p.argmax())],
             "probabilities": {name: float(v) for name, v in zip(EXPRESSIONS, p)}} for p in probabilities]


def score_faces(runner: ModelRunner, image: np.ndarray, found: list[faces.Face]) -> list[dict]:
    """All faces of one picture in one batch -> box, top label and the 7 probabilities each."""
    if not found:
        return []
    scored = expression_probabilities(runner(faces.crop_faces(image, found)))
    return [{"box": list(face.box), **result} for face, result in zip(found, scored)]


def analyse_picture(runner: ModelRunner, data: bytes, name: str = "", whole_image: bool = False,
                    decode: Callable[[bytes], np.ndarray] = faces.decode_image) -> tuple[np.ndarray, dict]:
    """Bytes of a picture -> (the decoded BGR picture, every face with its probabilities).

    whole_image: score the centred square of the picture as one face, without detection.
    decode: `faces.decode_image`, or what decodes the same elsewhere (the app: in a worker process
    with a time and memory limit, `core.workers.PictureWorkers`).
    """
    image = decode(data)
    return image, picture_faces(runner, image, name, whole_image)


def picture_faces(runner: ModelRunner, image: np.ndarray, name: str = "", whole_image: bool = False) -> dict:
    """A decoded BGR picture -> every face with its probabilities (see `analyse_picture`)."""
    found = [faces.whole_image_as_face(image)] if whole_image else faces.left_to_right(faces.detect_faces(image))
    return {"file": name, "width": int(image.shape[1]), "height": int(image.shape[0]),
            "faces": score_faces(runner, image, found)}


def predict_faces(runner: ModelRunner, data: bytes, name: str = "", whole_image: bool = False) -> dict:
    """The JSON-ready result of `analyse_picture`."""
    return analyse_picture(runner, data, name, whole_image)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["song", "face"])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--model", type=Path, default=None,
                        help="a .keras file (default: the app's; for faces the Face page's ensemble)")
    parser.add_argument("--whole-image", action="store_true",
                        help="face: score each picture as one face, without detection")
    args = parser.parse_args(argv)
    try:
        if args.task == "face" and args.model is None:
            from core.face_ensemble import FaceEnsemble  # it imports this module

            runner = FaceEnsemble.load()  # what the Face page runs
        else:
            runner = ModelRunner.load(args.model or cards.DEFAULT_MODELS[args.task])
    except ModelFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = 0
    for path in args.files:
        try:
            data = path.read_bytes()
            # Decoders warn on stderr (mpg123 on a bad frame, libpng on a cut file, PIL on a big
            # picture); the CLI's stderr carries only its own one line per bad file.
            with quiet_stderr():
                if args.task == "song":
                    result = predict_song(runner, data, str(path))
                else:
                    result = predict_faces(runner, data, str(path), args.whole_image)
            print(json.dumps(result), flush=True)
        except (InputError, OSError) as e:
            failed += 1
            message = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            print(f"error: {path}: {message}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
