"""Variants side by side: the zoo's cards as one table, and every variant run on one input.

    python -m core.variants.compare song FILE [--variants default,pooling_average] [--passes 20]
    python -m core.variants.compare face IMAGE [--variants ...] [--passes 20]

prints one JSON object: each variant's result on the input, with its Monte Carlo dropout spread.
Everything here comes from the cards (core.variants.zoo) and from running the models; the input is
decoded once and its features or face crops are shared by every variant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.face import detect as faces
from core.song import features as song_features
from core.face.data import EXPRESSIONS
from core.errors import InputError, ModelFileError
from core.metrics import METRICS
from core.runner import ModelRunner
from core.face.predict import expression_probabilities
from core.song.predict import fold_spread, song_mood
from core.variants.zoo import DEFAULT, ZOO, model_path, trained_variants

DEFAULT_PASSES = 20  # Monte Carlo dropout passes per input (the page's default N)
# One input of each task's models, without the batch axis: a 30-s window of musicnn patch
# embeddings; a grey face.
INPUT_SHAPES = {"song": (song_features.WINDOW_PATCHES, song_features.musicnn.EMBEDDING_DIM),
                "face": (faces.FACE_SIZE_PX, faces.FACE_SIZE_PX, 1)}

# Builder arguments the zoo varies, per task, in the order the table shows them.
CHOICES = {"song": ("pooling", "pool_size", "dropout", "spatial_dropout", "summary"),
           "face": ("pooling", "dropout")}
def changed_choice(card: dict, default_card: dict) -> str:
    """What a variant changes from the default, e.g. 'pooling: max → average' ('' for none)."""
    config, base = card["config"], default_card["config"]
    return ", ".join(f"{k}: {base.get(k)} → {v}" for k, v in config.items()
                     if k != "name" and base.get(k) != v)


def variant_rows(task: str, cards: dict[str, dict]) -> list[dict]:
    """One row a variant: its choices, size, budget, validation metrics, latency and overfitting.

    cards: {variant name: card}, the default among them. The 'gap' is the last epoch's validation
    loss minus its training loss (large when a model memorises its training set).
    """
    default_card = cards.get(DEFAULT) or trained_variants(task)[DEFAULT]
    rows = []
    for name, card in cards.items():
        curves = card["curves"]
        row = {"variant": name, "default": name == DEFAULT,
               "change": changed_choice(card, default_card) or "(the default)"}
        row.update({choice: card["config"][choice] for choice in CHOICES[task]})
        row.update({metric.label: metric.of(card["validation"]) for metric in METRICS[task]})
        row.update({
            "parameters": int(card["parameters"]),
            "size (MB)": round(card["model_file"]["size_bytes"] / 1e6, 2),
            "epochs": int(card["training"]["epochs_run"]),
            "final val loss": float(curves["val_loss"][-1]),
            "gap (val − train loss)": float(curves["val_loss"][-1] - curves["loss"][-1]),
            "latency (ms)": float(card["latency"]["median_ms"]),
            "latency measured on": card["latency"]["machine"],
        })
        rows.append(row)
    return rows


def layer_shapes(model, input_shape: tuple[int, ...]) -> list[dict]:
    """Each layer's output shape for one input of `input_shape` (no batch axis), from a real run."""
    outputs = _probe(model)(np.zeros((1, *input_shape), np.float32))
    return [{"layer": layer.name, "type": type(layer).__name__, "output shape": tuple(out.shape[1:])}
            for layer, out in zip(_probed_layers(model), outputs)]


def _probed_layers(model) -> list:
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


def _probe(model):
    """A model with the same weights that returns every layer's output (built once per model)."""
    if not hasattr(model, "_moodlens_probe"):
        import keras

        layers = _probed_layers(model)
        model._moodlens_probe = keras.Model(model.inputs[0], [layer.output for layer in layers])
    return model._moodlens_probe


def first_downsampling(model):
    """The first layer that shortens the sequence or shrinks the feature map: a pooling layer or
    a strided convolution; None when the model has neither (e.g. pooling='none')."""
    for layer in _probed_layers(model):
        kind = type(layer).__name__
        if "Pooling" in kind and "Global" not in kind:
            return layer
        if "Conv" in kind and max(layer.strides) > 1:
            return layer
    return None


def pooling_activations(model, x: np.ndarray) -> dict | None:
    """The activations just before and just after the first downsampling layer for one input.

    x: (1, *input shape) float32. Returns {"layer", "type", "before", "after"} with arrays of
    shape (time, channels) for a song window or (h, w, channels) for a face; None if the model
    never downsamples.
    """
    layer = first_downsampling(model)
    if layer is None:
        return None
    layers = _probed_layers(model)
    outputs = _probe(model)(np.asarray(x, np.float32))
    i = layers.index(layer)
    before = outputs[i - 1] if i > 0 else x  # the layer's input
    return {"layer": layer.name, "type": type(layer).__name__,
            "before": np.asarray(before)[0], "after": np.asarray(outputs[i])[0]}


# --- one input through every variant ----------------------------------------------------------

@dataclass
class SongInput:
    name: str
    duration_s: float
    starts_s: np.ndarray   # (k,) window starts, seconds
    features: np.ndarray   # (k, w, 250) float32 musicnn patch embeddings


@dataclass
class PictureInput:
    name: str
    image: np.ndarray      # decoded BGR (or grey) picture
    found: list            # core.face.detect.Face, largest first
    crops: np.ndarray      # (n faces, 48, 48, 1) float32, 0..255


def song_input(data: bytes, name: str = "",
               features: Callable[[bytes], tuple] = song_features.song_features) -> SongInput:
    """features: `song_features.song_features`, or what computes the same elsewhere (`core.workers`)."""
    return SongInput(name, *features(data))


def picture_input(data: bytes, name: str = "", whole_image: bool = False,
                  decode: Callable[[bytes], np.ndarray] = faces.decode_image) -> PictureInput:
    """decode: `faces.decode_image`, or what decodes the same elsewhere (`core.workers`)."""
    image = decode(data)
    found = [faces.whole_image_as_face(image)] if whole_image else faces.left_to_right(faces.detect_faces(image))
    crops = faces.crop_faces(image, found) if found else np.zeros((0, 48, 48, 1), np.float32)
    return PictureInput(name, image, found, crops)


def song_variant_result(name: str, windows: np.ndarray, starts_s: np.ndarray,
                        samples: np.ndarray | None, fold_windows: list[np.ndarray] | None = None) -> dict:
    """One variant's result on a song (core.predict.song_mood), plus two labelled sources of spread
    of the song's mean: "mc" from Monte Carlo dropout `samples` (passes, windows, 2), and "folds"
    from the variant's cross-validation fold models' predictions, each (windows, 2)."""
    result = song_mood(name, windows, starts_s)
    if samples is not None:
        means = samples.mean(axis=1)  # (passes, 2): the song's mean in each pass
        result["mc"] = {"passes": int(len(means)), "points": means.round(4).tolist(),
                        "std": means.std(axis=0).tolist()}
    if fold_windows:
        result["folds"] = fold_spread(fold_windows)
    return result


def compare_song(runners: dict, song: SongInput, passes: int = 0,
                 fold_runners: dict[str, list] | None = None) -> dict[str, dict]:
    """Every variant on one song's windows (features computed once) -> {variant: result}.
    fold_runners: {variant: its fold models' runners} where a variant has them (the spread over
    fold models; Monte Carlo dropout with `passes` is the second source)."""
    fold_runners = fold_runners or {}
    return {name: song_variant_result(name, runner(song.features), song.starts_s,
                                      runner.mc_dropout(song.features, passes) if passes else None,
                                      [fold(song.features) for fold in fold_runners.get(name, [])])
            for name, runner in runners.items()}


def compare_faces(runners: dict, picture: PictureInput, passes: int = 0) -> dict[str, list[dict]]:
    """Every variant on every face of one picture (detected and cropped once) ->
    {variant: [{"label", "probabilities", and with passes "mc_std": {expression: std}} per face]}."""
    results = {}
    for name, runner in runners.items():
        if not len(picture.crops):
            results[name] = []
            continue
        results[name] = expression_probabilities(runner(picture.crops))
        if passes:
            spread = runner.mc_dropout(picture.crops, passes).std(axis=0)
            for face, face_spread in zip(results[name], spread):
                face["mc_std"] = {e: float(s) for e, s in zip(EXPRESSIONS, face_spread)}
    return results


def song_result_rows(results: dict[str, dict]) -> list[dict]:
    """One row per variant of `compare_song`'s results: its mood and, where there, the spread of the
    fold models and of Monte Carlo dropout."""
    return [{"variant": name, "valence": r["valence"], "arousal": r["arousal"], "mood": r["mood"],
             **({"valence sd (fold models)": r["folds"]["std"][0],
                 "arousal sd (fold models)": r["folds"]["std"][1]} if "folds" in r else {}),
             **({"valence sd (MC dropout)": r["mc"]["std"][0],
                 "arousal sd (MC dropout)": r["mc"]["std"][1]} if "mc" in r else {})}
            for name, r in results.items()]


def face_result_rows(results: dict[str, list[dict]]) -> list[dict]:
    """One row per variant and face of `compare_faces`' results: the label and the 7 probabilities."""
    return [{"variant": name, "face": i, "label": face["label"],
             **{e: round(p, 4) for e, p in face["probabilities"].items()}}
            for name, found in results.items() for i, face in enumerate(found, start=1)]


def load_runners(task: str, names: list[str]) -> dict:
    """ModelRunners of the named variants (checked against their cards), in that order."""
    return {name: ModelRunner.load(model_path(task, name)) for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.variants.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["song", "face"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--variants", default="", help="comma-separated (default: every trained one)")
    parser.add_argument("--passes", type=int, default=DEFAULT_PASSES, help="Monte Carlo dropout passes (0: none)")
    args = parser.parse_args(argv)
    names = [n for n in args.variants.split(",") if n] or list(trained_variants(args.task))
    unknown = [n for n in names if n not in ZOO[args.task]]
    if unknown:
        print(f"error: no variant(s) {unknown}; the zoo has {list(ZOO[args.task])}", file=sys.stderr)
        return 2
    try:
        runners = load_runners(args.task, names)
    except ModelFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        data = args.file.read_bytes()
        if args.task == "song":
            results = compare_song(runners, song_input(data, str(args.file)), args.passes)
        else:
            picture = picture_input(data, str(args.file))
            results = {"boxes": [list(f.box) for f in picture.found],
                       "variants": compare_faces(runners, picture, args.passes)}
    except (InputError, OSError) as e:
        message = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        print(f"error: {args.file}: {message}", file=sys.stderr)
        return 1
    print(json.dumps({"file": str(args.file), "passes": args.passes, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
