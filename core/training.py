"""What training any task's model shares: Keras on demand, a model saved with its card, batches
of plain NumPy, a copy without its optimizer, an average of models, the card's resolved config."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core import cards


def keras_module():
    from core.tf_runtime import import_keras

    return import_keras()


def history_curves(history) -> dict[str, list[float]]:
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def latency_ms(model, sample: np.ndarray, repeats: int = 30) -> dict:
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


def save_model(model, out: Path, card: dict) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    model_path = out.parent / f"{out.name}.keras"  # not with_suffix: "dropout_0.5" has a dot
    model.save(model_path)
    card["model_file"] = {"name": model_path.name, "sha256": cards.sha256_file(model_path),
                          "size_bytes": model_path.stat().st_size}
    card["parameters"] = int(model.count_params())
    card["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cards.write_card(model_path, card)
    return model_path


def batches(keras, n: int, batch_size: int, seed: int, shuffle: bool, make_batch):
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


def without_optimizer(model, name: str | None = None):
    """A copy of a trained model without its optimizer's state (Adam's two moments per weight
    would triple the file), the same weights, Normalization statistics included; renamed if asked."""
    keras = keras_module()
    config = {**model.get_config(), **({"name": name} if name else {})}
    copy = keras.Model.from_config(config)  # clone_model would copy the compile state too
    copy.set_weights(model.get_weights())
    return copy


def average_of(models: list, name: str):
    """One Keras model whose output is the mean of the given models' outputs (each a copy without
    its optimizer, renamed member_<i>): what a seed ensemble ships as, one file and one call."""
    keras = keras_module()
    members = [without_optimizer(model, name=f"member_{i}") for i, model in enumerate(models)]
    inputs = keras.Input(models[0].input_shape[1:], name="patches")
    mean = keras.layers.Average(name="mean_of_members")([m(inputs) for m in members])
    return keras.Model(inputs, mean, name=name)
