"""Write the `.tflite` that serves each song model, beside its `.keras`, and record it in its card.

    python -m core.song.export [PATH ...]     (default: every served song model and musicnn)

The CRNN does not export as Keras builds it: Keras 3's LSTM becomes TensorList ops that LiteRT
cannot run, and the Normalization layer and the dropout seed generators assign variables in the
graph. So the graph served is rebuilt for inference from the trained weights (`crnn_layers`,
`crnn_function`): every weight a constant, the Normalization's statistics a multiply and an add,
each BatchNormalization folded into its convolution, dropout left out, and the LSTMs one
`tf.while_loop` over the time steps carrying each LSTM's (h, c) and the running sum (or max) of the
last LSTM's outputs for the global pooling. Built-in ops only; the batch and the number of patches
stay open, so one graph serves every window length (docs/litert.md).

musicnn's graph is `core.song.musicnn.litert_musicnn_function` (its front end rewritten as matrix
products: docs/litert.md).

Each file is checked against Keras before its card is written: the largest difference on random
inputs of several lengths must stay under TOLERANCE.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from core import cards
from core.litert import LiteRTModel, export_litert, record_litert_file

TOLERANCE = 1e-4  # valence/arousal, and musicnn's embeddings (penultimate layer and tags)
SONG_DIR = cards.MODELS_DIR / "song"


def served_song_models() -> list[Path]:
    """Every song model a page or command may serve: models/song/*.keras and the fold models."""
    return sorted(SONG_DIR.glob("*.keras")) + sorted(SONG_DIR.glob("folds/*/fold_*.keras"))


# --- the CRNN as plain arrays ------------------------------------------------------------------

def crnn_layers(model) -> list[list[dict]]:
    """A song CRNN (`build_song_crnn`), or a Keras Average of such members -> for each member, its
    inference steps as dicts of NumPy arrays: {"op": "affine"|"conv"|"relu"|"pool"|"lstm"|
    "global"|"dense", ...}. Dropout is left out, each BatchNormalization folded into the
    convolution before it (or an affine step). Raises ValueError for a layer it does not know."""
    members = [layer for layer in model.layers if hasattr(layer, "layers")]
    if members:
        others = {type(layer).__name__ for layer in model.layers if not hasattr(layer, "layers")}
        if others - {"InputLayer", "Average"}:
            raise ValueError(f"an ensemble of song CRNNs joins them with Average only, not {sorted(others)}")
        return [_member_steps(m) for m in members]
    return [_member_steps(model)]


def _activation(layer) -> str:
    name = layer.get_config().get("activation", "linear")
    if name not in ("linear", "relu"):
        raise ValueError(f"{layer.name}: activation {name!r} is not exported")
    return name


def _member_steps(model) -> list[dict]:
    steps: list[dict] = []
    for layer in model.layers:
        kind, w = type(layer).__name__, [np.asarray(v, np.float64) for v in layer.get_weights()]
        if kind in ("InputLayer", "Dropout", "SpatialDropout1D"):
            continue
        if kind == "Normalization":
            # Keras: (x - mean) / max(sqrt(variance), epsilon), epsilon 1e-7
            scale = 1.0 / np.maximum(np.sqrt(w[1]), 1e-7)
            steps.append({"op": "affine", "scale": scale, "shift": -w[0] * scale})
        elif kind == "Conv1D":
            config = layer.get_config()
            if config["padding"] != "same" or tuple(config["strides"]) != (1,) or tuple(config["dilation_rate"]) != (1,):
                raise ValueError(f"{layer.name}: only stride-1 'same' convolutions are exported")
            steps.append({"op": "conv", "kernel": w[0], "bias": w[1] if len(w) > 1 else np.zeros(w[0].shape[-1]),
                          "activation": _activation(layer)})
        elif kind == "BatchNormalization":
            gamma, beta, mean, variance = w
            scale = gamma / np.sqrt(variance + layer.epsilon)
            shift = beta - mean * scale
            previous = steps[-1] if steps else None
            if previous and previous["op"] in ("conv", "dense") and previous["activation"] == "linear":
                previous["kernel"] = previous["kernel"] * scale
                previous["bias"] = previous["bias"] * scale + shift
            else:
                steps.append({"op": "affine", "scale": scale, "shift": shift})
        elif kind == "ReLU":
            if layer.get_config().get("max_value") is not None or layer.get_config().get("negative_slope"):
                raise ValueError(f"{layer.name}: only a plain ReLU is exported")
            steps.append({"op": "relu"})
        elif kind in ("MaxPooling1D", "AveragePooling1D"):
            config = layer.get_config()
            steps.append({"op": "pool", "kind": "max" if kind.startswith("Max") else "average",
                          "size": int(config["pool_size"][0]), "strides": int(config["strides"][0]),
                          "padding": config["padding"].upper()})
        elif kind == "LSTM":
            config = layer.get_config()
            if (config["activation"], config["recurrent_activation"]) != ("tanh", "sigmoid") or config.get("go_backwards"):
                raise ValueError(f"{layer.name}: only a forward tanh/sigmoid LSTM is exported")
            steps.append({"op": "lstm", "kernel": w[0], "recurrent": w[1], "bias": w[2],
                          "sequences": bool(config["return_sequences"])})
        elif kind in ("GlobalAveragePooling1D", "GlobalMaxPooling1D"):
            steps.append({"op": "global", "kind": "max" if "Max" in kind else "average"})
        elif kind == "Dense":
            steps.append({"op": "dense", "kernel": w[0], "bias": w[1], "activation": _activation(layer)})
        else:
            raise ValueError(f"{layer.name}: a {kind} layer is not exported")
    return steps


# --- the inference graph -----------------------------------------------------------------------

def crnn_function(members: list[list[dict]], n_features: int = 250):
    """`crnn_layers`' members -> a tf.function (batch, steps, n_features) -> (batch, 2): the mean
    of the members' outputs, built-in ops only, batch and steps open."""
    import tensorflow as tf

    def const(a):
        return tf.constant(np.asarray(a, np.float32))

    def recurrent(x, lstms, summary):
        # x (B, T, C). One loop over T for the stacked LSTMs; the input projection of the first is
        # one matrix product over every step, outside the loop.
        batch, steps = tf.shape(x)[0], tf.shape(x)[1]
        first = lstms[0]
        projected = tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), const(first["kernel"])) + const(first["bias"])
        projected = tf.transpose(tf.reshape(projected, [batch, steps, first["kernel"].shape[1]]), [1, 0, 2])
        units = [lstm["recurrent"].shape[0] for lstm in lstms]
        recurrents = [const(lstm["recurrent"]) for lstm in lstms]
        kernels = [None] + [const(lstm["kernel"]) for lstm in lstms[1:]]
        biases = [None] + [const(lstm["bias"]) for lstm in lstms[1:]]

        def cell(z, c):
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            return tf.sigmoid(o) * tf.tanh(c), c

        def body(t, states, acc):
            new, inputs = [], None
            for k in range(len(lstms)):
                h, c = states[2 * k], states[2 * k + 1]
                z = (tf.gather(projected, t) if k == 0 else tf.matmul(inputs, kernels[k]) + biases[k])
                h, c = cell(z + tf.matmul(h, recurrents[k]), c)
                new += [h, c]
                inputs = h
            if summary == "average":
                acc = acc + inputs
            elif summary == "max":
                acc = tf.maximum(acc, inputs)
            return t + 1, new, acc

        zeros = [tf.zeros(tf.stack([batch, u])) for u in units for _ in range(2)]
        acc0 = tf.fill(tf.stack([batch, units[-1]]), -np.inf if summary == "max" else 0.0)
        _, states, acc = tf.while_loop(lambda t, s, a: t < steps, body, (tf.constant(0), zeros, acc0))
        if summary == "average":
            return acc / tf.cast(steps, tf.float32)
        return acc if summary == "max" else states[-2]

    def member(x, steps_):
        i = 0
        while i < len(steps_):
            step = steps_[i]
            op = step["op"]
            if op == "affine":
                x = x * const(step["scale"]) + const(step["shift"])
            elif op == "conv":
                x = tf.nn.conv1d(x, const(step["kernel"]), stride=1, padding="SAME") + const(step["bias"])
                x = tf.nn.relu(x) if step["activation"] == "relu" else x
            elif op == "relu":
                x = tf.nn.relu(x)
            elif op == "pool":
                pool = tf.nn.max_pool1d if step["kind"] == "max" else tf.nn.avg_pool1d
                x = pool(x, step["size"], step["strides"], step["padding"])
            elif op == "lstm":
                j = i
                while j < len(steps_) and steps_[j]["op"] == "lstm" and (j == i or steps_[j - 1]["sequences"]):
                    j += 1
                lstms = steps_[i:j]
                if lstms[-1]["sequences"]:
                    if j == len(steps_) or steps_[j]["op"] != "global":
                        raise ValueError("an LSTM that returns its sequence must be followed by global pooling")
                    summary, j = steps_[j]["kind"], j + 1
                else:
                    summary = "last"
                x = recurrent(x, lstms, summary)
                i = j
                continue
            elif op == "global":
                x = tf.reduce_mean(x, axis=1) if step["kind"] == "average" else tf.reduce_max(x, axis=1)
            elif op == "dense":
                x = tf.matmul(x, const(step["kernel"])) + const(step["bias"])
                x = tf.nn.relu(x) if step["activation"] == "relu" else x
            i += 1
        return x

    @tf.function(input_signature=[tf.TensorSpec((None, None, n_features), tf.float32)], autograph=False)
    def infer(x):
        outputs = [member(x, steps_) for steps_ in members]
        return outputs[0] if len(outputs) == 1 else tf.add_n(outputs) / float(len(outputs))

    return infer


# --- writing and checking ----------------------------------------------------------------------

def _checked(path: Path, keras_fn, litert_fn, inputs: list[np.ndarray]) -> float:
    worst = 0.0
    for x in inputs:
        expected, got = keras_fn(x), litert_fn(x)
        expected = expected if isinstance(expected, np.ndarray) else np.asarray(expected)
        worst = max(worst, float(np.abs(expected - got).max()))
    if not worst <= TOLERANCE:
        raise ValueError(f"{path}: the LiteRT graph differs from Keras by {worst:.2e} (> {TOLERANCE})")
    return worst


def export_song_crnn(model_path: Path, model=None) -> dict:
    """A song CRNN's `.keras` (or the loaded `model`) -> its `.tflite` beside it, checked against
    Keras on random inputs of 1 to 10 patches, recorded in its card -> the card's litert_file."""
    import tensorflow as tf

    model_path = Path(model_path)
    if model is None:
        model, _ = cards.load_model(model_path)
    infer = crnn_function(crnn_layers(model), model.inputs[0].shape[-1])
    entry = export_litert(infer.get_concrete_function(), model_path.with_suffix(".tflite"))
    keras_fn = tf.function(lambda x: model(x, training=False), autograph=False,
                           input_signature=[tf.TensorSpec((None, None, model.inputs[0].shape[-1]), tf.float32)])
    served = LiteRTModel(model_path.with_suffix(".tflite").read_bytes())
    rng = np.random.default_rng(0)
    inputs = [rng.normal(0.3, 1.0, (b, n, model.inputs[0].shape[-1])).astype(np.float32)
              for b, n in ((1, 1), (3, 2), (2, 5), (1, 7), (4, 10))]
    entry["max_abs_diff_vs_keras"] = _checked(model_path, lambda x: keras_fn(x).numpy(), served, inputs)
    record_litert_file(model_path, entry)
    return entry


def export_musicnn(model_path: Path | None = None) -> dict:
    """musicnn's `.keras` -> its LiteRT graph (`core.song.musicnn.litert_musicnn_function`) beside
    it, checked against the Keras model on real-looking patches, recorded in its card."""
    from core.song import musicnn

    model_path = Path(model_path or musicnn.MODEL_PATH)
    model, _ = cards.load_model(model_path)
    infer = musicnn.litert_musicnn_function(model)
    entry = export_litert(infer.get_concrete_function(), model_path.with_suffix(".tflite"))
    reference = musicnn.Musicnn(model, cards.read_card(model_path))
    served = LiteRTModel(model_path.with_suffix(".tflite").read_bytes())
    rng = np.random.default_rng(0)
    inputs = [np.clip(rng.normal(1.0, 0.8, (n, musicnn.PATCH_FRAMES, musicnn.N_MELS)), 0, None).astype(np.float32)
              for n in (1, 3)]
    entry["max_abs_diff_vs_keras"] = _checked(model_path, reference.embeddings, served, inputs)
    record_litert_file(model_path, entry)
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.song.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path,
                        help="song .keras files (default: models/song/*.keras, the fold models and musicnn)")
    args = parser.parse_args(argv)
    from core.song import musicnn  # noqa: F401  (its graph builder, for the musicnn file)

    paths = args.paths or [musicnn.MODEL_PATH, *served_song_models()]
    for path in paths:
        entry = export_musicnn(path) if cards.read_card(path)["task"] == "musicnn" else export_song_crnn(path)
        print(json.dumps({"model": str(path), **entry}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
