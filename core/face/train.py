"""Train the face CNN on FER2013's Training split and score it on PublicTest."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from core import cards, metrics
from core.face.data import EXPRESSIONS, FER_PUBLIC_TEST, FER_TRAINING, load_fer
from core.training import batches, history_curves, keras_module, latency_ms, resolved_config, save_model


FACE_TRAINING = {"epochs": 80, "batch_size": 128, "learning_rate": 1e-3, "label_smoothing": 0.1,
                 "mixed_bfloat16": True,
                 # Averaging each face with its mirror image changed the default's PublicTest accuracy
                 # little and not consistently across its checkpoints (2026-11-22), at twice the
                 # cost, so the default ships the single pass.
                 "mirror_average": False}


def augment_faces(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random horizontal flip, rotation (+-14 deg), zoom (+-10%) and shift (+-10%) of each face.

    pixels: (n, 48, 48) uint8 -> (n, 48, 48) float32, 0..255; edges repeat the border pixels.
    Done in NumPy/OpenCV on the CPU, beside the accelerator's training step.
    """
    import cv2

    n, height, width = pixels.shape
    out = np.empty(pixels.shape, np.float32)
    angles, zooms = rng.uniform(-14, 14, n), rng.uniform(0.9, 1.1, n)
    shifts, flips = rng.uniform(-0.1, 0.1, (n, 2)) * (width, height), rng.random(n) < 0.5
    for i in range(n):
        face = pixels[i, :, ::-1] if flips[i] else pixels[i]
        matrix = cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), angles[i], zooms[i])
        matrix[:, 2] += shifts[i]
        out[i] = cv2.warpAffine(np.ascontiguousarray(face), matrix, (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
    return out


def _face_batches(keras, pixels, labels, batch_size, seed, augment: bool):
    """Batches of (48, 48, 1) float32 faces (0..255) and one-hot labels; shuffled and augmented
    (`augment_faces`) for training."""
    onehot = np.eye(7, dtype=np.float32)

    def make_batch(idx, rng):
        faces = augment_faces(pixels[idx], rng) if augment else pixels[idx].astype(np.float32)
        return faces[..., None], onehot[labels[idx]]

    return batches(keras, len(pixels), batch_size, seed, augment, make_batch)


def train_face(data_path: Path, out: Path, config: dict, training: dict, seed: int,
               limit: int | None = None, continue_from: Path | None = None) -> Path:
    """Train the face CNN; with `continue_from`, start from that trained model's weights and
    configuration (a warm restart: a new cosine schedule over `training["epochs"]` more epochs)."""
    keras = keras_module()
    from core.face.model import build_face_cnn, with_mirror_average

    keras.utils.set_random_seed(seed)
    data = load_fer(data_path)
    train = np.flatnonzero(data.usage == FER_TRAINING)
    val = np.flatnonzero(data.usage == FER_PUBLIC_TEST)
    if limit:  # for quick checks only; the card records it
        train, val = train[:limit], val[:limit]
    steps = int(np.ceil(len(train) / training["batch_size"])) * training["epochs"]
    warmup = max(1, steps // training["epochs"])
    schedule = keras.optimizers.schedules.CosineDecay(
        training["learning_rate"] / 10, decay_steps=max(1, steps - warmup),
        warmup_target=training["learning_rate"], warmup_steps=warmup)
    source = None
    if continue_from:
        source_model, source = cards.load_model(continue_from)
        if any(layer.name == "mirror" for layer in source_model.layers):
            source_model = source_model.get_layer("face_cnn")
        config = source["config"]
    config = resolved_config(build_face_cnn, config)
    if training.get("mixed_bfloat16"):
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build_face_cnn(**config)
    if source:
        model.set_weights(source_model.get_weights())
    model.compile(keras.optimizers.Adam(schedule),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=training["label_smoothing"]),
                  metrics=["accuracy"])
    started = time.time()
    history = model.fit(
        _face_batches(keras, data.pixels[train], data.label[train], training["batch_size"], seed, True),
        validation_data=_face_batches(keras, data.pixels[val], data.label[val], 256, seed, False),
        epochs=training["epochs"], verbose=2)
    seconds = time.time() - started
    if training.get("mixed_bfloat16"):
        # Ship a float32 model: the same weights, fast on any CPU, no mixed-precision policy inside.
        keras.mixed_precision.set_global_policy("float32")
        trained, model = model, build_face_cnn(**config)
        model.set_weights([w.numpy() if hasattr(w, "numpy") else w for w in trained.get_weights()])
    single_pass = _face_validation(model, data.pixels[val], data.label[val])
    if training.get("mirror_average"):
        model = with_mirror_average(model)
    card = {
        "task": "face", "name": out.name, "builder": "core.face.model.build_face_cnn",
        "config": config,
        "training": {**training, "seed": seed, "epochs_run": training["epochs"],
                     "schedule": "cosine decay with one warm-up epoch",
                     "augmentation": "horizontal flip, rotation +-14 deg, shift +-10%, zoom +-10% (OpenCV, border repeated)",
                     "weights": "final epoch (no selection on PublicTest)",
                     "seconds": round(seconds, 1), "machine": cards.machine_description(),
                     "limit": limit},
        "data": {"file": str(data_path),
                 "content_sha256": data.fingerprint()},
        "split": {"train": "usage 0 (Training)", "validation": "usage 1 (PublicTest)",
                  "n_train": int(len(train)), "n_val": int(len(val))},
        "curves": history_curves(history),
    }
    if source:
        card["continued_from"] = {"file": Path(continue_from).name, "sha256": source["model_file"]["sha256"],
                                  "epochs": source["training"]["epochs_run"],
                                  "validation_accuracy": source["validation"]["accuracy"],
                                  "training": source["training"]}
        card["training"]["epochs_run"] += source["training"]["epochs_run"]
        card["training"]["seconds"] = round(card["training"]["seconds"] + source["training"]["seconds"], 1)
        card["curves"] = {k: source["curves"].get(k, []) + v for k, v in card["curves"].items()}
    return save_model(model, out, _face_results(model, data.pixels[val], data.label[val], card, single_pass))


def _face_validation(model, pixels: np.ndarray, labels: np.ndarray) -> dict:
    x = pixels[..., None].astype(np.float32)
    probabilities = np.concatenate([model.predict_on_batch(x[i:i + 512]) for i in range(0, len(x), 512)])
    return metrics.classification_metrics(labels, probabilities, EXPRESSIONS)


def _face_results(model, pixels, labels, card: dict, single_pass: dict) -> dict:
    """The card's validation, single-pass validation and latency entries for the shipped model."""
    card["validation"] = _face_validation(model, pixels, labels)
    card["validation_single_pass"] = {"accuracy": single_pass["accuracy"], "macro_f1": single_pass["macro_f1"],
                                      "note": "the CNN alone, without the mirror average"}
    card["latency"] = latency_ms(model, pixels[:1, ..., None].astype(np.float32))
    return card


def add_mirror_average(data_path: Path, source: Path, out: Path) -> Path:
    """Wrap a trained face CNN in the mirror average and re-score it on PublicTest; the card
    keeps the source's configuration, training and curves, and records where it came from."""
    keras_module()
    from core.face.model import with_mirror_average

    model, card = cards.load_model(source)
    if any(layer.name == "mirror" for layer in model.layers):
        raise ValueError(f"{source} already averages over mirror images")
    data = load_fer(data_path)
    val = np.flatnonzero(data.usage == FER_PUBLIC_TEST)
    if card["training"].get("limit"):
        val = val[:card["training"]["limit"]]
    single_pass = _face_validation(model, data.pixels[val], data.label[val])
    card = {**card, "name": out.name,
            "training": {**card["training"], "mirror_average": True},
            "derived_from": {"file": source.name, "sha256": card["model_file"]["sha256"],
                             "step": "wrapped in core.face.model.with_mirror_average, weights unchanged"}}
    wrapped = with_mirror_average(model)
    return save_model(wrapped, out, _face_results(wrapped, data.pixels[val], data.label[val], card, single_pass))
