"""Train a model and write its `.keras` file and card.

    python -m core.train song --data ../shared/data/music --out models/song/default
    python -m core.train face --data ../shared/data/fer2013/fer2013.npz --out models/face/default

    python -m core.train song --zoo --data ../shared/data/music [--only NAME,NAME] [--out models/song]

`--config '{"pooling": "average"}'` overrides builder arguments: a variant is its configuration.
`--zoo` trains every variant of core.variants.ZOO (one choice changed from the default each) with
the same split, seed and budget, into `--out` (default models/<task>/<variant>).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core import cards, datasets, metrics

SONG_TRAINING = {"epochs": 80, "batch_size": 16, "learning_rate": 2e-3, "val_fraction": 0.2,
                 "crop_frames": 430, "early_stopping_patience": 15}
FACE_TRAINING = {"epochs": 80, "batch_size": 128, "learning_rate": 1e-3, "label_smoothing": 0.1,
                 "mixed_bfloat16": True,
                 # Averaging each face with its mirror image changed the default's PublicTest accuracy
                 # little and not consistently across its checkpoints (2026-11-22), at twice the
                 # cost, so the default ships the single pass.
                 "mirror_average": False}


def _keras():
    from core.tf_runtime import import_keras

    return import_keras()


def _history(history) -> dict[str, list[float]]:
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def _latency_ms(model, sample: np.ndarray, repeats: int = 30) -> dict:
    """Median time of one `predict_on_batch` on one input, after a warm-up call."""
    model.predict_on_batch(sample)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(sample)
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": float(np.median(times)), "repeats": repeats,
            "machine": cards.machine_description(), "measured_on": "the machine that trained it"}


def resolved_config(builder, config: dict) -> dict:
    """The builder's defaults with `config` on top: the full argument set a card records."""
    import inspect

    unknown = set(config) - set(inspect.signature(builder).parameters)
    if unknown:
        raise ValueError(f"{builder.__name__} has no argument(s) {sorted(unknown)}")
    defaults = {k: p.default for k, p in inspect.signature(builder).parameters.items()}
    return json.loads(json.dumps({**defaults, **config}))  # tuples -> lists, as JSON keeps them


def _save(model, out: Path, card: dict) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    model_path = out.parent / f"{out.name}.keras"  # not with_suffix: "dropout_0.5" has a dot
    model.save(model_path)
    card["model_file"] = {"name": model_path.name, "sha256": cards.sha256_file(model_path),
                          "size_bytes": model_path.stat().st_size}
    card["parameters"] = int(model.count_params())
    card["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cards.write_card(model_path, card)
    return model_path


# --- song -------------------------------------------------------------------------------------

def song_baselines(features: np.ndarray, n_valid: np.ndarray, targets: np.ndarray,
                   train: np.ndarray, val: np.ndarray) -> dict:
    """Classical baselines on the same split: ridge and SVR on per-band mean/std of the log-mel."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    stats = np.stack([np.concatenate([f[:max(int(n), 1)].mean(0), f[:max(int(n), 1)].std(0)])
                      for f, n in zip(features.astype(np.float32), n_valid)])
    results = {}
    for name, make in {"ridge": lambda: RidgeCV(alphas=np.logspace(-2, 4, 13)),
                       "svr": lambda: SVR(C=1.0, epsilon=0.05)}.items():
        pred = np.zeros((len(val), 2))
        for j in range(2):
            model = make_pipeline(StandardScaler(), make()).fit(stats[train], targets[train, j])
            pred[:, j] = model.predict(stats[val])
        results[name] = {"features": "per-band mean and std of the log-mel over valid frames (256)",
                         "validation": metrics.song_metrics(targets[val], pred)}
    return results


def _batches(keras, n: int, batch_size: int, seed: int, shuffle: bool, make_batch):
    """A keras.utils.PyDataset over `n` examples: `make_batch(indices, rng)` builds each batch from
    sorted indices; with `shuffle`, a new order every epoch. Plain NumPy, so training runs on any
    Keras backend (TensorFlow here, JAX on a GPU machine)."""

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(n) if shuffle else np.arange(n)

        def __len__(self):
            return int(np.ceil(n / batch_size))

        def on_epoch_end(self):
            if shuffle:
                self.order = self.rng.permutation(n)

        def __getitem__(self, i):
            return make_batch(np.sort(self.order[i * batch_size:(i + 1) * batch_size]), self.rng)

    return Batches()


def _song_crops(keras, x, z, n_valid, crop_frames, batch_size, seed):
    """Batches of random time crops, each with one random frequency mask (SpecAugment-style)."""
    from core.song_model import N_MELS

    def make_batch(idx, rng):
        batch = np.empty((len(idx), crop_frames, N_MELS), np.float32)
        for k, j in enumerate(idx):
            start = rng.integers(0, max(1, min(int(n_valid[j]), x.shape[1]) - crop_frames + 1))
            batch[k] = x[j, start:start + crop_frames]
            band, width = rng.integers(0, N_MELS), rng.integers(0, 13)
            batch[k, :, band:band + width] = -80.0
        return batch, z[idx]

    return _batches(keras, len(x), batch_size, seed, True, make_batch)


def train_song(data_dir: Path, out: Path, config: dict, training: dict, seed: int) -> Path:
    keras = _keras()
    from core.song_model import build_song_crnn, fold_target_scaling

    keras.utils.set_random_seed(seed)
    data = datasets.load_music(data_dir)
    train, val = datasets.stratified_split(data.quadrant, training["val_fraction"], seed)
    mean, std = data.targets[train].mean(0), data.targets[train].std(0)
    z = (data.targets - mean) / std
    x_val = data.logmel[val].astype(np.float32)

    config = resolved_config(build_song_crnn, config)
    model = build_song_crnn(**config)
    model.compile(keras.optimizers.Adam(training["learning_rate"]), loss="mse")
    started = time.time()
    history = model.fit(
        _song_crops(keras, data.logmel[train], z[train], data.n_valid_frames[train],
                    training["crop_frames"], training["batch_size"], seed),
        validation_data=(x_val, z[val]), epochs=training["epochs"], verbose=2,
        callbacks=[keras.callbacks.EarlyStopping(patience=training["early_stopping_patience"],
                                                 restore_best_weights=True),
                   keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=6, min_lr=1e-5)])
    seconds = time.time() - started
    fold_target_scaling(model, mean, std)
    pred = model.predict_on_batch(x_val)
    curves = _history(history)
    card = {
        "task": "song", "name": out.name, "builder": "core.song_model.build_song_crnn",
        "config": config,
        "training": {**training, "seed": seed, "epochs_run": len(curves["loss"]),
                     "best_epoch": int(np.argmin(curves["val_loss"])) + 1,
                     "loss": "mse on standardised targets (+ L2)",
                     "augmentation": f"random {training['crop_frames']}-frame crops in time, "
                                     "one random frequency mask (0-12 bands)",
                     "seconds": round(seconds, 1), "machine": cards.machine_description()},
        "data": {"dir": str(data_dir), "n_songs": int(len(data.song_id)),
                 "content_sha256": data.fingerprint()},
        "split": {"method": "stratified by quadrant", "seed": seed,
                  "val_fraction": training["val_fraction"], "n_train": int(len(train)),
                  "n_val": int(len(val)), "val_song_ids": data.song_id[val].tolist()},
        "target_scaling": {"mean": mean.tolist(), "std": std.tolist(),
                           "note": "folded into the output layer: the model outputs raw values"},
        "curves": curves,
        "validation": metrics.song_metrics(data.targets[val], pred),
        "validation_predictions": pred.round(4).tolist(),
        "validation_targets": data.targets[val].round(4).tolist(),
        "baselines": song_baselines(data.logmel, data.n_valid_frames, data.targets, train, val),
        "latency": _latency_ms(model, x_val[:1]),
    }
    return _save(model, out, card)


# --- face -------------------------------------------------------------------------------------

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

    return _batches(keras, len(pixels), batch_size, seed, augment, make_batch)


def train_face(data_path: Path, out: Path, config: dict, training: dict, seed: int,
               limit: int | None = None, continue_from: Path | None = None) -> Path:
    """Train the face CNN; with `continue_from`, start from that trained model's weights and
    configuration (a warm restart: a new cosine schedule over `training["epochs"]` more epochs)."""
    keras = _keras()
    from core.face_model import build_face_cnn, with_mirror_average

    keras.utils.set_random_seed(seed)
    data = datasets.load_fer(data_path)
    train = np.flatnonzero(data.usage == datasets.FER_TRAINING)
    val = np.flatnonzero(data.usage == datasets.FER_PUBLIC_TEST)
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
        "task": "face", "name": out.name, "builder": "core.face_model.build_face_cnn",
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
        "curves": _history(history),
    }
    if source:
        card["continued_from"] = {"file": Path(continue_from).name, "sha256": source["model_file"]["sha256"],
                                  "epochs": source["training"]["epochs_run"],
                                  "validation_accuracy": source["validation"]["accuracy"],
                                  "training": source["training"]}
        card["training"]["epochs_run"] += source["training"]["epochs_run"]
        card["training"]["seconds"] = round(card["training"]["seconds"] + source["training"]["seconds"], 1)
        card["curves"] = {k: source["curves"].get(k, []) + v for k, v in card["curves"].items()}
    return _save(model, out, _face_results(model, data.pixels[val], data.label[val], card, single_pass))


def _face_validation(model, pixels: np.ndarray, labels: np.ndarray) -> dict:
    from core.datasets import EXPRESSIONS

    x = pixels[..., None].astype(np.float32)
    probabilities = np.concatenate([model.predict_on_batch(x[i:i + 512]) for i in range(0, len(x), 512)])
    return metrics.classification_metrics(labels, probabilities, EXPRESSIONS)


def _face_results(model, pixels, labels, card: dict, single_pass: dict) -> dict:
    """The card's validation, single-pass validation and latency entries for the shipped model."""
    card["validation"] = _face_validation(model, pixels, labels)
    card["validation_single_pass"] = {"accuracy": single_pass["accuracy"], "macro_f1": single_pass["macro_f1"],
                                      "note": "the CNN alone, without the mirror average"}
    card["latency"] = _latency_ms(model, pixels[:1, ..., None].astype(np.float32))
    return card


def add_mirror_average(data_path: Path, source: Path, out: Path) -> Path:
    """Wrap a trained face CNN in the mirror average and re-score it on PublicTest; the card
    keeps the source's configuration, training and curves, and records where it came from."""
    _keras()
    from core.face_model import with_mirror_average

    model, card = cards.load_model(source)
    if any(layer.name == "mirror" for layer in model.layers):
        raise ValueError(f"{source} already averages over mirror images")
    data = datasets.load_fer(data_path)
    val = np.flatnonzero(data.usage == datasets.FER_PUBLIC_TEST)
    if card["training"].get("limit"):
        val = val[:card["training"]["limit"]]
    single_pass = _face_validation(model, data.pixels[val], data.label[val])
    card = {**card, "name": out.name,
            "training": {**card["training"], "mirror_average": True},
            "derived_from": {"file": source.name, "sha256": card["model_file"]["sha256"],
                             "step": "wrapped in core.face_model.with_mirror_average, weights unchanged"}}
    wrapped = with_mirror_average(model)
    return _save(wrapped, out, _face_results(wrapped, data.pixels[val], data.label[val], card, single_pass))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["song", "face"])
    parser.add_argument("--data", required=True, type=Path,
                        help="song: folder with features_logmel.npz + annotations.csv; face: fer2013.npz")
    parser.add_argument("--out", type=Path, help="models/<task>/<name> (no suffix); with --zoo a folder")
    parser.add_argument("--zoo", action="store_true", help="train every variant of the task's zoo")
    parser.add_argument("--only", default="", help="with --zoo: comma-separated variant names")
    parser.add_argument("--continue-from", type=Path, default=None, metavar="MODEL",
                        help="face: start from this trained model's weights and configuration")
    parser.add_argument("--mirror-average-of", type=Path, default=None, metavar="MODEL",
                        help="face: wrap this trained model in the mirror average, re-score, save to --out")
    parser.add_argument("--config", default="{}", help="JSON object of builder arguments")
    parser.add_argument("--training", default="{}", help="JSON object overriding training settings")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--limit", type=int, default=None, help="face: use only the first N rows")
    args = parser.parse_args(argv)
    try:
        config = json.loads(args.config)
        overrides = json.loads(args.training)
    except json.JSONDecodeError as e:
        print(f"error: --config/--training must be JSON objects ({e})", file=sys.stderr)
        return 2
    if args.mirror_average_of:
        if args.task != "face" or args.out is None:
            print("error: --mirror-average-of is for the face task and needs --out", file=sys.stderr)
            return 2
        path = add_mirror_average(args.data, args.mirror_average_of, args.out)
        print(json.dumps({"model": str(path), "validation": cards.read_card(path)["validation"]}, indent=1))
        return 0
    if args.zoo:
        from core.variants import ZOO

        folder = args.out or cards.MODELS_DIR / args.task
        names = [n for n in args.only.split(",") if n] or list(ZOO[args.task])
        unknown = set(names) - set(ZOO[args.task])
        if unknown:
            print(f"error: no variant(s) {sorted(unknown)}; the zoo has {list(ZOO[args.task])}", file=sys.stderr)
            return 2
        runs = [(folder / name, {**ZOO[args.task][name], **config}) for name in names]
    elif args.out is None:
        print("error: --out is required (or --zoo)", file=sys.stderr)
        return 2
    else:
        runs = [(args.out.with_suffix("") if args.out.suffix == ".keras" else args.out, config)]
    for out, run_config in runs:
        if args.task == "song":
            path = train_song(args.data, out, run_config, {**SONG_TRAINING, **overrides}, args.seed)
        else:
            path = train_face(args.data, out, run_config, {**FACE_TRAINING, **overrides}, args.seed,
                              args.limit, args.continue_from)
        card = cards.read_card(path)
        print(json.dumps({"model": str(path), "validation": card["validation"]}, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
