"""Train face CNNs on FER2013's Training split and score them on PublicTest (usage 1).

One network (`train_face`, what `python -m core.train face` runs) or several side by side in one
process (`train_face_members`, `python -m core.face.train`): one Keras model holding every member,
one shared augmentation of each batch, one summed loss, so one accelerator runs all members in each
step. A member may be a student distilled from the others' averaged probabilities as they train.

    python -m core.face.train --data ../shared/data/fer2013/fer2013.npz --out models/face \
        --members '{"sgd_default": {}, "sgd_pooling_average": {"pooling": "average"}}' \
        [--student sgd_student --student-config '{}'] [--training '{"epochs": 150}'] \
        [--stop-at UNIX_TIME | --budget-s SECONDS] [--seed 7] [--limit N]

Runs unchanged on a CPU (Keras on TensorFlow) and on a GPU (KERAS_BACKEND=jax): the augmentation
runs inside the training step (`FaceAugment`), mixed bfloat16 is used only where an accelerator is
present, and each member is shipped in float32 with the card training always writes. With a
deadline (--stop-at/--budget-s) the number of epochs is fitted to the time left after the first
epochs and the cosine schedule is laid over that many; training ends by the deadline either way.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from core import cards, metrics
from core.face.data import EXPRESSIONS, FER_PUBLIC_TEST, FER_TRAINING, load_fer
from core.training import batches, keras_module, latency_ms, resolved_config, save_model


# The published recipe's shape (Khaireddin & Chen 2021, "Facial Emotion Recognition: State of the
# Art Performance on FER2013"): SGD with Nesterov momentum, random shift/rotation/zoom/flip and
# random erasing, a long run; here with a cosine schedule over the epochs (fitted to a deadline
# when one is given). Keras's weight_decay is decoupled (w -= lr * wd * w, outside the momentum):
# 2e-3 here is about PyTorch's coupled 2e-4 at momentum 0.9. Its members underfit in the GPU runs
# of docs/face_model.md and did not beat the zoo's, so it is a named recipe, not the default:
# `python -m core.train face --training '{"recipe": "sgd_nesterov"}'`.
SGD_NESTEROV = {"epochs": 80, "batch_size": 128, "optimizer": "sgd_nesterov", "learning_rate": 0.02,
                 "momentum": 0.9, "weight_decay": 2e-3, "warmup_epochs": 2, "label_smoothing": 0.1,
                 # "in_graph": FaceAugment inside the training step (on the accelerator, if any);
                 # "opencv": augment_faces on the CPU beside it (the recipe before 2026-12).
                 "augmentation": "in_graph", "random_erasing": 0.5,
                 # members trained side by side draw their own augmentation (more diverse members);
                 # with a student, all share one draw
                 "augmentation_per_member": True,
                 # bfloat16 compute only where an accelerator is present; shipped weights are float32.
                 "mixed_bfloat16": True,
                 # a student's loss: (1 - a) * cross-entropy with the labels + a * cross-entropy with
                 # the other members' mean probabilities (their gradients stopped)
                 "distillation_weight": 0.5,
                 # Averaging each face with its mirror image changed the default's PublicTest accuracy
                 # little and not consistently across its checkpoints (2026-11-22), at twice the
                 # cost, so the default ships the single pass.
                 "mirror_average": False}
# The default: the recipe the face zoo in models/face was trained with (Adam at 1e-3, OpenCV's
# augmentation on the CPU, no erasing or weight decay), so `--zoo` retrains what is shipped.
FACE_TRAINING = {**SGD_NESTEROV, "optimizer": "adam", "learning_rate": 1e-3, "weight_decay": 0.0,
                 "warmup_epochs": 1, "augmentation": "opencv", "random_erasing": 0.0}
RECIPES = {"adam": FACE_TRAINING, "sgd_nesterov": SGD_NESTEROV}
ROTATION_DEG, ZOOM, SHIFT = 14.0, 0.1, 0.1
ERASED_AREA, ERASED_ASPECT = (0.02, 0.2), (0.3, 3.3)


def augment_faces(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random horizontal flip, rotation (+-14 deg), zoom (+-10%) and shift (+-10%) of each face.

    pixels: (n, 48, 48) uint8 -> (n, 48, 48) float32, 0..255; edges repeat the border pixels.
    Done in NumPy/OpenCV on the CPU, beside the accelerator's training step.
    """
    import cv2

    n, height, width = pixels.shape
    out = np.empty(pixels.shape, np.float32)
    angles, zooms = rng.uniform(-ROTATION_DEG, ROTATION_DEG, n), rng.uniform(1 - ZOOM, 1 + ZOOM, n)
    shifts, flips = rng.uniform(-SHIFT, SHIFT, (n, 2)) * (width, height), rng.random(n) < 0.5
    for i in range(n):
        face = pixels[i, :, ::-1] if flips[i] else pixels[i]
        matrix = cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), angles[i], zooms[i])
        matrix[:, 2] += shifts[i]
        out[i] = cv2.warpAffine(np.ascontiguousarray(face), matrix, (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
    return out


_LAYERS: dict = {}


def face_augment_layer(keras):
    """The `FaceAugment` layer class (made once Keras is imported; backend-agnostic keras.ops).

    FaceAugment(seed, erasing): in training, each face gets one random affine map (mirror with
    probability 1/2, rotation +-14 deg, zoom +-10%, shift +-10%; bilinear, edges repeated), then
    with probability `erasing` a random rectangle (2-20% of the face, aspect 0.3-3.3) is replaced by
    uniform noise 0..255. Outside training it passes faces through unchanged. (n, h, w, 1) float32
    0..255 in and out."""
    if "FaceAugment" in _LAYERS:
        return _LAYERS["FaceAugment"]
    ops = keras.ops

    class FaceAugment(keras.layers.Layer):
        def __init__(self, seed: int | None = None, erasing: float = 0.5, **kwargs):
            super().__init__(**kwargs)
            if not 0 <= erasing <= 1:
                raise ValueError(f"erasing is a probability, not {erasing!r}")
            self.seed, self.erasing = seed, float(erasing)
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, faces, training=None):
            if not training:
                return faces
            faces = ops.cast(faces, "float32")
            n, height, width = ops.shape(faces)[0], faces.shape[1], faces.shape[2]
            u = keras.random.uniform((n, 10), seed=self.seed_generator)
            angle = (2 * u[:, 0] - 1) * (ROTATION_DEG * math.pi / 180)
            zoom = 1 + (2 * u[:, 1] - 1) * ZOOM
            shift_x, shift_y = (2 * u[:, 2] - 1) * SHIFT * width, (2 * u[:, 3] - 1) * SHIFT * height
            mirror = ops.where(u[:, 4] < 0.5, -1.0, 1.0)
            # Output pixel (x, y) reads input (a0 x + a1 y + a2, b0 x + b1 y + b2): about the centre,
            # a rotation scaled by 1/zoom, mirrored in x when mirror = -1, then shifted.
            cos, sin = ops.cos(angle) / zoom, ops.sin(angle) / zoom
            cx, cy = (width - 1) / 2, (height - 1) / 2
            a0, a1, b0, b1 = mirror * cos, -mirror * sin, sin, cos
            a2 = cx - a0 * cx - a1 * cy - shift_x
            b2 = cy - b0 * cx - b1 * cy - shift_y
            zeros = ops.zeros_like(a0)
            transform = ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
            out = ops.image.affine_transform(faces, transform, interpolation="bilinear",
                                             fill_mode="nearest", data_format="channels_last")
            if self.erasing > 0:
                area = ERASED_AREA[0] + u[:, 5] * (ERASED_AREA[1] - ERASED_AREA[0])
                log_lo, log_hi = math.log(ERASED_ASPECT[0]), math.log(ERASED_ASPECT[1])
                aspect = ops.exp(log_lo + u[:, 6] * (log_hi - log_lo))
                eh = ops.minimum(ops.sqrt(area * aspect) * height, float(height))
                ew = ops.minimum(ops.sqrt(area / aspect) * width, float(width))
                y0, x0 = u[:, 7] * (height - eh), u[:, 8] * (width - ew)
                rows = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1, 1))
                cols = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width, 1))

                def per_face(v):
                    return ops.reshape(v, (-1, 1, 1, 1))

                inside = ((rows >= per_face(y0)) & (rows < per_face(y0 + eh))
                          & (cols >= per_face(x0)) & (cols < per_face(x0 + ew))
                          & (per_face(u[:, 9]) < self.erasing))
                noise = keras.random.uniform(ops.shape(out), 0.0, 255.0, seed=self.seed_generator)
                out = ops.where(inside, noise, out)
            return out

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "seed": self.seed, "erasing": self.erasing}

    class StopGradient(keras.layers.Layer):
        """Its input, with no gradient flowing back (a student's targets)."""

        def call(self, x):
            return ops.stop_gradient(x)

    _LAYERS.update(FaceAugment=FaceAugment, StopGradient=StopGradient)
    return FaceAugment


def accelerator(keras) -> str | None:
    """The accelerator Keras's backend computes on ("NVIDIA H200", ...), or None on a CPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        kinds = [d.device_kind for d in jax.devices() if d.platform in ("gpu", "tpu")]
    elif backend == "tensorflow":
        import tensorflow as tf

        kinds = [d.name for d in tf.config.list_physical_devices("GPU")]
    else:
        kinds = []
    return kinds[0] if kinds else None


def epoch_learning_rate(epoch: int, planned: int, base: float, warmup: int) -> float:
    """Linear warm-up over `warmup` epochs (base/(w+1) ... w/(w+1) base), then a cosine from
    `base` to near 0 over the rest of the `planned` epochs (the last epoch's rate is > 0)."""
    if epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    span = max(1, planned - warmup)
    progress = min(1.0, (epoch - warmup) / span)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


def planned_epochs(max_epochs: int, done: int, seconds_per_epoch: float, seconds_left: float,
                   margin: float = 1.1) -> int:
    """How many epochs in all fit: those done plus as many more as the time left holds (each taken
    `margin` times longer than measured), at most `max_epochs`, at least `done`."""
    more = int(seconds_left // (seconds_per_epoch * margin)) if seconds_per_epoch > 0 else max_epochs
    return max(done, min(max_epochs, done + more))


def _plan_callback(keras, training: dict, stop_at: float | None):
    """Sets each epoch's learning rate (`epoch_learning_rate`) and ends training after the planned
    epochs; with `stop_at` (UNIX time), plans the epochs from the time of epochs 2-3 (the first holds
    compilation), and stops early should an epoch no longer fit."""

    class Plan(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.planned, self.fixed = training["epochs"], stop_at is None
            self.durations, self.learning_rates = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.time()
            rate = epoch_learning_rate(epoch, self.planned, training["learning_rate"], training["warmup_epochs"])
            self.model.optimizer.learning_rate = rate
            self.learning_rates.append(rate)

        def on_epoch_end(self, epoch, logs=None):
            self.durations.append(time.time() - self.started)
            done = epoch + 1
            if stop_at is not None:
                left = stop_at - time.time()
                per_epoch = float(np.median(self.durations[1:] or self.durations))
                if not self.fixed and done >= 3:
                    self.planned, self.fixed = planned_epochs(training["epochs"], done, per_epoch, left), True
                    print(f"plan: {self.planned} epochs ({per_epoch:.2f} s each, {left:.0f} s left)", flush=True)
                if done >= 2 and left < per_epoch * 1.1:  # (the first epoch's time holds compilation)
                    self.planned = min(self.planned, done)
            if done >= self.planned:
                self.model.stop_training = True

    return Plan()


def _full_batches(keras, faces: np.ndarray, targets: dict, batch_size: int, seed: int):
    """Shuffled full batches of float32 faces and one target per output; the last partial batch is
    dropped (a new order each epoch), so an accelerator compiles one step shape."""
    n = len(faces)
    size = min(batch_size, n)

    class FullBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(n)

        def __len__(self):
            return n // size

        def on_epoch_end(self):
            self.order = self.rng.permutation(n)

        def __getitem__(self, i):
            idx = np.sort(self.order[i * size:(i + 1) * size])
            return faces[idx], {k: v[idx] for k, v in targets.items()}

    return FullBatches()


def _opencv_batches(keras, pixels, targets: dict, batch_size, seed):
    """The CPU augmentation path: `augment_faces` on each batch (a partial last batch kept)."""

    def make_batch(idx, rng):
        return augment_faces(pixels[idx], rng)[..., None], {k: v[idx] for k, v in targets.items()}

    return batches(keras, len(pixels), batch_size, seed, True, make_batch)


def _side_by_side(keras, configs: dict[str, dict], student: str | None, training: dict, seed: int):
    """One training model: the faces, augmented once per batch (if in_graph), into every member;
    output "m<i>" is member i's probabilities; a student's output is its probabilities followed by
    the other members' mean probabilities (no gradient), for `_distillation_loss`."""
    from core.face.model import build_face_cnn

    augment = face_augment_layer(keras)
    inputs = keras.Input((48, 48, 1), name="face")
    towers = {name: build_face_cnn(**{**config, "name": f"member{i}"})
              for i, (name, config) in enumerate(configs.items())}
    faces = {name: inputs for name in towers}
    if training["augmentation"] == "in_graph":
        if training["augmentation_per_member"] and student is None:  # each member its own draws
            faces = {name: augment(seed=seed + i, erasing=training["random_erasing"], dtype="float32",
                                   name=f"augment{i}")(inputs) for i, name in enumerate(towers)}
        else:  # one draw for all (a student learns the others' probabilities on the faces it sees)
            shared = augment(seed=seed, erasing=training["random_erasing"], dtype="float32", name="augment")(inputs)
            faces = {name: shared for name in towers}
    probabilities = {name: tower(faces[name]) for name, tower in towers.items()}
    outputs = {}
    teachers = [p for name, p in probabilities.items() if name != student]
    for i, name in enumerate(towers):
        out = probabilities[name]
        if name == student:
            teacher = teachers[0] if len(teachers) == 1 else \
                keras.layers.Average(name="teachers_mean", dtype="float32")(teachers)
            out = keras.layers.Concatenate(name=f"m{i}_with_teachers", dtype="float32")(
                [out, _LAYERS["StopGradient"](name="teachers_fixed", dtype="float32")(teacher)])
        outputs[f"m{i}"] = keras.layers.Identity(name=f"m{i}", dtype="float32")(out)
    return keras.Model(inputs, outputs, name="side_by_side"), towers


def _distillation_loss(keras, label_smoothing: float, weight: float):
    k = len(EXPRESSIONS)

    def distillation(y_true, y_pred):
        student, teachers = y_pred[:, :k], y_pred[:, k:]
        hard = keras.losses.categorical_crossentropy(y_true, student, label_smoothing=label_smoothing)
        soft = keras.losses.categorical_crossentropy(teachers, student)
        return (1 - weight) * hard + weight * soft

    return distillation


def _student_accuracy(keras):
    ops = keras.ops
    k = len(EXPRESSIONS)

    def accuracy(y_true, y_pred):
        return ops.cast(ops.equal(ops.argmax(y_true, axis=-1), ops.argmax(y_pred[:, :k], axis=-1)), "float32")

    return keras.metrics.MeanMetricWrapper(accuracy, name="accuracy")


def _optimizer(keras, training: dict):
    if training["optimizer"] == "sgd_nesterov":
        return keras.optimizers.SGD(training["learning_rate"], momentum=training["momentum"], nesterov=True,
                                    weight_decay=training["weight_decay"] or None)
    if training["optimizer"] == "adam":
        return keras.optimizers.Adam(training["learning_rate"])
    raise ValueError(f"optimizer must be 'sgd_nesterov' or 'adam', not {training['optimizer']!r}")


def train_face_members(data_path: Path, members: dict[str, dict], folder: Path, training: dict, seed: int,
                       limit: int | None = None, stop_at: float | None = None, student: str | None = None,
                       initial: dict | None = None, log: Path | None = None) -> list[Path]:
    """Train the named members (name -> build_face_cnn arguments) side by side, one step for all;
    save each as folder/<name>.keras with its card. `student`: the member distilled from the others.
    `initial`: name -> (model, card) to start that member from (a warm restart). `stop_at`: UNIX time
    by which training ends (the epochs are fitted to it). `log`: a JSON file of the run (each
    member's PublicTest probabilities, single and mirrored, its curves and the plan) for checks."""
    keras = keras_module()
    from core.face.model import build_face_cnn

    if not members:
        raise ValueError("no members to train")
    if student is not None and (student not in members or len(members) < 2):
        raise ValueError(f"the student {student!r} must be one of two or more members")
    recipe = training.get("recipe", "adam")
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, not {recipe!r}")
    training = {**RECIPES[recipe], **training, "recipe": recipe}
    keras.utils.set_random_seed(seed)
    data = load_fer(data_path)
    train = np.flatnonzero(data.usage == FER_TRAINING)
    val = np.flatnonzero(data.usage == FER_PUBLIC_TEST)
    if limit:  # for quick checks only; the card records it
        train, val = train[:limit], val[:limit]
    device = accelerator(keras)
    mixed = bool(training.get("mixed_bfloat16") and device)
    configs = {name: resolved_config(build_face_cnn, config) for name, config in members.items()}
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model, towers = _side_by_side(keras, configs, student, training, seed)
    for name, (source_model, _) in (initial or {}).items():
        towers[name].set_weights(source_model.get_weights())
    keys = {name: f"m{i}" for i, name in enumerate(configs)}
    losses, accuracy = {}, {}
    for name, key in keys.items():
        if name == student:
            losses[key] = _distillation_loss(keras, training["label_smoothing"], training["distillation_weight"])
            accuracy[key] = [_student_accuracy(keras)]
        else:
            losses[key] = keras.losses.CategoricalCrossentropy(label_smoothing=training["label_smoothing"])
            accuracy[key] = ["accuracy"]
    model.compile(_optimizer(keras, training), loss=losses, metrics=accuracy)
    onehot = np.eye(len(EXPRESSIONS), dtype=np.float32)
    train_targets = {key: onehot[data.label[train]] for key in keys.values()}
    val_faces = data.pixels[val][..., None].astype(np.float32)
    val_targets = {key: onehot[data.label[val]] for key in keys.values()}
    if training["augmentation"] == "in_graph":
        batches_ = _full_batches(keras, data.pixels[train][..., None].astype(np.float32), train_targets,
                                 training["batch_size"], seed)
    elif training["augmentation"] == "opencv":
        batches_ = _opencv_batches(keras, data.pixels[train], train_targets, training["batch_size"], seed)
    else:
        raise ValueError(f"augmentation must be 'in_graph' or 'opencv', not {training['augmentation']!r}")
    # One validation batch on an accelerator (one compiled shape); 256 faces at a time on a CPU.
    val_batch = len(val) if device else 256
    plan = _plan_callback(keras, training, stop_at)
    started = time.time()
    history = model.fit(batches_, validation_data=(val_faces, val_targets), validation_batch_size=val_batch,
                        epochs=training["epochs"], callbacks=[plan], verbose=2)
    seconds = time.time() - started
    epochs_run = len(history.history["loss"])
    if mixed:
        keras.mixed_precision.set_global_policy("float32")
    machine = cards.machine_description()
    run_log = {"machine": machine, "seconds": round(seconds, 1), "epochs_run": epochs_run,
               "epoch_seconds": [round(d, 2) for d in plan.durations], "learning_rates": plan.learning_rates,
               "members": {}}
    paths = []
    for name, tower in towers.items():
        key = keys[name]
        # Ship a float32 model: the same weights, fast on any CPU, no mixed-precision policy inside.
        shipped = build_face_cnn(**configs[name])
        shipped.set_weights([np.asarray(w, dtype=np.float32) for w in tower.get_weights()])
        curves = {prefix + metric: _curve(history.history, prefix, key, metric, len(configs))
                  for prefix in ("", "val_") for metric in ("accuracy", "loss")}
        card = {
            "task": "face", "name": name, "builder": "core.face.model.build_face_cnn",
            "config": configs[name],
            "training": {**training, "seed": seed, "epochs_run": epochs_run,
                         "epochs_planned": plan.planned,
                         "schedule": f"per-epoch learning rate: linear warm-up over {training['warmup_epochs']} "
                                     "epoch(s), then cosine to near 0 over the planned epochs"
                                     + (" (planned from the time left before a deadline)" if stop_at else ""),
                         "augmentation": ("in the training step (FaceAugment): horizontal flip, rotation +-14 deg, "
                                          "shift +-10%, zoom +-10% (one affine map, border repeated), random "
                                          f"erasing (p={training['random_erasing']}, 2-20% of the face, uniform "
                                          "noise)") if training["augmentation"] == "in_graph" else
                                         "horizontal flip, rotation +-14 deg, shift +-10%, zoom +-10% "
                                         "(OpenCV, border repeated)",
                         "mixed_bfloat16_used": mixed,
                         "trained_side_by_side_with": [n for n in configs if n != name],
                         "weights": "final epoch (no selection on PublicTest)",
                         "seconds": round(seconds, 1), "machine": machine, "limit": limit},
            "data": {"file": str(data_path), "content_sha256": data.fingerprint()},
            "split": {"train": "usage 0 (Training)", "validation": "usage 1 (PublicTest)",
                      "n_train": int(len(train)), "n_val": int(len(val))},
            "curves": curves,
        }
        if name == student:
            card["training"]["distilled_from"] = {"teachers": [n for n in configs if n != student],
                                                  "weight": training["distillation_weight"],
                                                  "targets": "the teachers' mean probabilities on the same "
                                                             "augmented batch, as they trained"}
        if initial and name in initial:
            card.update(_continued(initial[name][1], card, initial_name=name))
        probabilities = _probabilities(shipped, data.pixels[val], 512 if not device else len(val))
        mirrored = _probabilities(shipped, data.pixels[val][:, :, ::-1], 512 if not device else len(val))
        single = metrics.classification_metrics(data.label[val], probabilities, EXPRESSIONS)
        shipped_model = shipped
        if training.get("mirror_average"):
            from core.face.model import with_mirror_average

            shipped_model = with_mirror_average(shipped)
            card["validation"] = metrics.classification_metrics(data.label[val], (probabilities + mirrored) / 2,
                                                                EXPRESSIONS)
        else:
            card["validation"] = single
        card["validation_single_pass"] = {"accuracy": single["accuracy"], "macro_f1": single["macro_f1"],
                                          "note": "the CNN alone, without the mirror average"}
        card["latency"] = latency_ms(shipped_model, data.pixels[val][:1, ..., None].astype(np.float32))
        paths.append(save_model(shipped_model, folder / name, card))
        _write_litert(paths[-1], data_path)
        both = metrics.classification_metrics(data.label[val], (probabilities + mirrored) / 2, EXPRESSIONS)
        run_log["members"][name] = {
            "file": paths[-1].name, "accuracy": single["accuracy"], "macro_f1": single["macro_f1"],
            "mirror_accuracy": both["accuracy"], "mirror_macro_f1": both["macro_f1"],
            "probabilities": np.round(probabilities, 5).tolist(), "mirrored": np.round(mirrored, 5).tolist()}
        print(json.dumps({"member": name, **{k: v for k, v in run_log["members"][name].items()
                                             if k not in ("probabilities", "mirrored")}}), flush=True)
    if log is not None:
        Path(log).write_text(json.dumps(run_log))
    return paths


def _curve(history: dict, prefix: str, key: str, metric: str, outputs: int) -> list[float]:
    """One member's curve from Keras's history ("m0_accuracy", "val_m0_loss"; a lone output's are
    also found under the plain names)."""
    values = history.get(f"{prefix}{key}_{metric}")
    if values is None and outputs == 1:
        values = history.get(f"{prefix}{metric}", [])
    return [float(v) for v in values or []]


def _continued(source: dict, card: dict, initial_name: str) -> dict:
    """The card's entries for a member started from a trained model (`source`, that model's card)."""
    return {"continued_from": {"file": f"{source['name']}.keras", "sha256": source["model_file"]["sha256"],
                               "epochs": source["training"]["epochs_run"],
                               "validation_accuracy": source["validation"]["accuracy"],
                               "training": source["training"]},
            "training": {**card["training"],
                         "epochs_run": card["training"]["epochs_run"] + source["training"]["epochs_run"],
                         "seconds": round(card["training"]["seconds"] + source["training"]["seconds"], 1)},
            "curves": {k: source["curves"].get(k, []) + v for k, v in card["curves"].items()}}


def _probabilities(model, pixels: np.ndarray, chunk: int = 512) -> np.ndarray:
    x = np.ascontiguousarray(pixels[..., None], dtype=np.float32)
    return np.concatenate([np.asarray(model.predict_on_batch(x[i:i + chunk])) for i in range(0, len(x), chunk)])


def train_face(data_path: Path, out: Path, config: dict, training: dict, seed: int,
               limit: int | None = None, continue_from: Path | None = None) -> Path:
    """Train one face CNN (`train_face_members` with one member) into out.keras and its card; with
    `continue_from`, start from that trained model's weights and configuration (a warm restart: a
    new schedule over `training["epochs"]` more epochs)."""
    initial = None
    if continue_from:
        keras_module()
        source_model, source = cards.load_model(continue_from)
        if any(layer.name == "mirror" for layer in source_model.layers):
            source_model = source_model.get_layer("face_cnn")
        config = source["config"]
        initial = {out.name: (source_model, source)}
    return train_face_members(data_path, {out.name: config}, out.parent, training, seed, limit, initial=initial)[0]


def _write_litert(keras_path: Path, data_path: Path) -> None:
    """The `.tflite` the app serves, beside the trained `.keras`, checked against it (core.face.export).
    Keras's LiteRT export needs TensorFlow: on another backend (JAX on a GPU machine) it is left for
    `python -m core.face.export` where TensorFlow is installed, and the command says so."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        print(f"{keras_path.name}: no TensorFlow here, so no .tflite yet: run `python -m core.face.export`",
              file=sys.stderr, flush=True)
        return
    from core.face.export import check_faces, export_one

    export_one(keras_path, *check_faces(data_path))


def _face_validation(model, pixels: np.ndarray, labels: np.ndarray) -> dict:
    return metrics.classification_metrics(labels, _probabilities(model, pixels), EXPRESSIONS)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.face.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="fer2013.npz")
    parser.add_argument("--out", required=True, type=Path, help="folder for <member>.keras and its card")
    parser.add_argument("--members", required=True, help="JSON object: member name -> builder arguments")
    parser.add_argument("--student", default=None, help="a further member, distilled from the others")
    parser.add_argument("--student-config", default="{}", help="JSON object: the student's builder arguments")
    parser.add_argument("--training", default="{}", help="JSON object overriding FACE_TRAINING")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N rows of each split")
    parser.add_argument("--stop-at", type=float, default=None, help="UNIX time by which training ends")
    parser.add_argument("--budget-s", type=float, default=None, help="seconds from now by which training ends")
    parser.add_argument("--log", type=Path, default=None, help="write the run's JSON log here")
    args = parser.parse_args(argv)
    try:
        members, training = json.loads(args.members), json.loads(args.training)
        student_config = json.loads(args.student_config)
    except json.JSONDecodeError as e:
        print(f"error: --members/--training/--student-config must be JSON objects ({e})", file=sys.stderr)
        return 2
    if not isinstance(members, dict) or not all(isinstance(c, dict) for c in members.values()):
        print("error: --members must map names to JSON objects of builder arguments", file=sys.stderr)
        return 2
    if args.student:
        if args.student in members:
            print(f"error: the student {args.student!r} is also a member", file=sys.stderr)
            return 2
        members[args.student] = student_config
    stop_at = args.stop_at if args.stop_at is not None else (
        time.time() + args.budget_s if args.budget_s is not None else None)
    try:
        paths = train_face_members(args.data, members, args.out, training, args.seed, args.limit, stop_at,
                                   args.student, log=args.log)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"models": [str(p) for p in paths]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
