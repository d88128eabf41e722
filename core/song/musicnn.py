"""musicnn (Pons & Serra, MSD checkpoint) as a Keras 3 model, with its exact log-mel front-end.

    python -m core.song.musicnn convert --checkpoint DIR [--out models/musicnn/msd_musicnn]
    python -m core.song.export        (then: the .tflite the app serves, checked against the .keras)

DIR is the `MSD_musicnn/` folder of the `musicnn` 0.1.0 wheel (ISC licence), e.g. installed with
`pip install --no-deps musicnn==0.1.0` into a throwaway environment: musicnn itself is no run-time
dependency (its metadata pins numpy<1.17 and its code needs TensorFlow 1's graph layers). The
conversion reads the checkpoint with `tf.compat.v1.train.NewCheckpointReader`, loads the weights
into `build_musicnn()` and writes a `.keras` file and its card (source, licence, the SHA-256 of
each checkpoint file read, the tag names).

Front-end (musicnn's `extractor.batch_data`): 16 kHz mono, librosa mel power spectrogram (n_fft
512, hop 256, 96 bands, Slaney, centred), then log10(10000 x + 1), cut into patches of 187 frames
(3 s) that do not overlap. musicnn casts the mel power to float16 before the log, where loud frames
overflow under NumPy 2 (inf, then NaN tags): here it stays float32.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

import numpy as np
import scipy.fft

from core.cards import MODELS_DIR

SAMPLE_RATE_HZ = 16000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3 s) + 1, as musicnn computes it
PATCH_S = PATCH_FRAMES * HOP_LENGTH / SAMPLE_RATE_HZ  # 2.992 s
PENULTIMATE_UNITS = 200
# The MSD checkpoint's 50 tags, in its output order (musicnn.configuration.MSD_LABELS).
MSD_TAGS = ("rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
            "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
            "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
            "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
            "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
            "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
            "sad", "House", "happy")
EMBEDDING_DIM = PENULTIMATE_UNITS + len(MSD_TAGS)  # a patch's penultimate layer, then its 50 tags

MODEL_PATH = MODELS_DIR / "musicnn" / "msd_musicnn.keras"
SOURCE = {"package": "musicnn", "version": "0.1.0", "licence": "ISC",
          "checkpoint": "musicnn/MSD_musicnn/", "authors": "Jordi Pons, Xavier Serra",
          "paper": "musicnn: pre-trained convolutional neural networks for music audio tagging "
                   "(ISMIR 2019 late-breaking demo)"}


# --- front-end ---------------------------------------------------------------------------------

def log_mel(y: np.ndarray) -> np.ndarray:
    """(n,) float32 mono at 16 kHz -> (1 + n // 256, 96) float32, log10(10000 * mel power + 1).

    librosa.feature.melspectrogram(y, sr=16000, n_fft=512, hop_length=256, n_mels=96) step for step
    (a centred, zero-padded STFT with a periodic Hann window; Slaney mel filters), in NumPy and
    scipy.fft: librosa's first call imports numba, seconds that a worker's start must not cost.
    tests/song/test_musicnn.py holds it against librosa."""
    y = np.pad(np.asarray(y, np.float32), N_FFT // 2)
    n_frames = 1 + (len(y) - N_FFT) // HOP_LENGTH
    frames = np.lib.stride_tricks.as_strided(y, (n_frames, N_FFT), (y.strides[0] * HOP_LENGTH, y.strides[0]))
    spectrum = scipy.fft.rfft(frames * _hann(), axis=1)
    power = spectrum.real ** 2 + spectrum.imag ** 2          # (frames, 257)
    mel = (power @ _mel_basis().T).astype(np.float32)
    return np.log10(np.float32(10000.0) * mel + np.float32(1.0))


def patch_starts(n_frames: int, max_patches: int | None = None) -> np.ndarray:
    """First frame of each 187-frame patch of a spectrogram of n_frames frames -> (p,) int.

    musicnn's patches: every 187 frames from frame 0, whole patches only (at least one: a clip
    shorter than 3 s is zero-padded by `patches`). With `max_patches` and more patches than that,
    `max_patches` patches evenly spread from the first to the last.
    """
    starts = np.arange(0, max(n_frames - PATCH_FRAMES, 0) + 1, PATCH_FRAMES)
    if max_patches is not None and len(starts) > max_patches:
        starts = np.linspace(0, starts[-1], max_patches).round().astype(int)
    return starts


def patches(mel: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(frames, 96) log-mel and (p,) first frames -> (p, 187, 96) float32 (zero-padded at the end)."""
    if len(mel) < PATCH_FRAMES:
        mel = np.pad(mel, ((0, PATCH_FRAMES - len(mel)), (0, 0)))
    return mel[np.asarray(starts)[:, None] + np.arange(PATCH_FRAMES)]


@cache
def _hann() -> np.ndarray:
    """scipy.signal.get_window("hann", N_FFT, fftbins=True): (512,) float32."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa.hz_to_mel, htk=False): linear to 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    return np.where(hz >= _MIN_LOG_HZ, _MIN_LOG_HZ / _F_SP + np.log(np.maximum(hz, 1e-10) / _MIN_LOG_HZ) / _LOG_STEP,
                    hz / _F_SP)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    return np.where(mel >= _MIN_LOG_HZ / _F_SP, _MIN_LOG_HZ * np.exp(_LOG_STEP * (mel - _MIN_LOG_HZ / _F_SP)),
                    _F_SP * mel)


_F_SP, _MIN_LOG_HZ, _LOG_STEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0  # Slaney's Auditory Toolbox


@cache
def _mel_basis() -> np.ndarray:
    """librosa.filters.mel(sr=16000, n_fft=512, n_mels=96) (Slaney scale and area norm):
    (96, 257) float32 triangles over the STFT bins."""
    bins_hz = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE_HZ)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE_HZ / 2), N_MELS + 2))
    widths = np.diff(edges_hz)
    ramps = np.subtract.outer(edges_hz, bins_hz)
    weights = np.maximum(0, np.minimum(-ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]))
    return (weights * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]).astype(np.float32)


# --- the network -------------------------------------------------------------------------------

def build_musicnn(n_tags: int = len(MSD_TAGS), frontend_filters: float = 1.6, midend_filters: int = 64,
                  backend_units: int = PENULTIMATE_UNITS, name: str = "msd_musicnn",
                  live: dict[str, np.ndarray] | None = None):
    """musicnn's graph (`musicnn.models.build_musicnn`) in Keras 3 layers, for inference.

    Input: (batch, 187, 96) float32 log-mel patches (`log_mel`). Outputs: [taggram (batch, n_tags)
    sigmoid probabilities, penultimate (batch, backend_units), the batch-normalised dense layer
    before the tags]. Built-in layers only, so the `.keras` file loads in safe mode.

    Args:
        n_tags: tags of the output layer (50 for the MSD and MTT checkpoints).
        frontend_filters: musicnn's `num_filt` of the front-end: int(1.6 * 128) = 204 filters in each
            timbral block, int(1.6 * 32) = 51 in each temporal block.
        midend_filters: filters of each of the three mid-end convolutions (64 for MSD_musicnn).
        backend_units: units of the penultimate dense layer (200 for MSD_musicnn).
        name: the model's name.
        live: {convolution name: indices of the filters it computes}, for `prune_dead_filters`:
            such a convolution and its batch normalisation keep only those filters, and a
            "<name>_scatter" Dense layer puts them back among the constant outputs of the others.
    """
    import keras
    from keras import layers

    for arg, value in (("n_tags", n_tags), ("midend_filters", midend_filters), ("backend_units", backend_units)):
        if int(value) != value or value < 1:
            raise ValueError(f"{arg} must be a positive integer, not {value!r}")
    if frontend_filters <= 0:
        raise ValueError(f"frontend_filters must be positive, not {frontend_filters!r}")
    inputs = keras.Input((PATCH_FRAMES, N_MELS), name="log_mel")
    x = layers.Reshape((PATCH_FRAMES, N_MELS, 1), name="expand")(inputs)
    x = layers.BatchNormalization(epsilon=1e-3, name="batch_normalization")(x)

    live = live or {}

    def width(conv_name, filters):
        return len(live[conv_name]) if conv_name in live else filters

    def scattered(y, conv_name, filters):
        # The dropped filters' outputs are constants: a Dense layer with a 0/1 kernel and those
        # constants as its bias puts the computed ones back in place (exactly: x * 1 + 0 + ...).
        if conv_name not in live or len(live[conv_name]) == filters:
            return y
        return layers.Dense(filters, name=f"{conv_name}_scatter")(y)

    def pooled_over_frequency(y, filters, tag):
        y = layers.MaxPooling2D((1, y.shape[2]), name=f"{tag}_freq_pool")(y)
        return layers.Reshape((PATCH_FRAMES, filters), name=f"{tag}_squeeze")(y)

    # Front-end: two timbral blocks (7 frames x 40% / 70% of the bands), three temporal blocks
    # (128 / 64 / 32 frames x 1 band); each max-pooled over frequency. The names are the
    # checkpoint's, in the order musicnn creates them.
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name="time_pad")(x)
    timbral, temporal = int(frontend_filters * 128), int(frontend_filters * 32)
    blocks = []
    for i, bands in enumerate((int(0.4 * N_MELS), int(0.7 * N_MELS))):
        conv = "conv2d" if i == 0 else f"conv2d_{i}"
        y = layers.Conv2D(width(conv, timbral), (7, bands), padding="valid", activation="relu", name=conv)(padded)
        y = layers.BatchNormalization(epsilon=1e-3, name=f"batch_normalization_{i + 1}")(y)
        blocks.append(scattered(pooled_over_frequency(y, width(conv, timbral), f"timbral{i + 1}"), conv, timbral))
    for i, length in enumerate((128, 64, 32)):
        conv = f"conv2d_{i + 2}"
        y = layers.Conv2D(width(conv, temporal), (length, 1), padding="same", activation="relu", name=conv)(x)
        y = layers.BatchNormalization(epsilon=1e-3, name=f"batch_normalization_{i + 3}")(y)
        blocks.append(scattered(pooled_over_frequency(y, width(conv, temporal), f"temporal{i + 1}"), conv, temporal))
    frontend = layers.Concatenate(name="frontend")(blocks)  # (batch, 187, 561)

    # Mid-end: three 7-frame convolutions over all channels, the last two residual.
    features, previous = [frontend], frontend
    for i in range(3):
        conv = f"conv2d_{i + 5}"
        y = layers.ZeroPadding1D(3, name=f"midend{i + 1}_pad")(previous)
        y = layers.Conv1D(width(conv, midend_filters), 7, padding="valid", activation="relu", name=conv)(y)
        y = layers.BatchNormalization(epsilon=1e-3, name=f"batch_normalization_{i + 6}")(y)
        y = scattered(y, conv, midend_filters)
        if i > 0:
            y = layers.Add(name=f"midend{i + 1}_residual")([y, previous])
        features.append(y)
        previous = y
    midend = layers.Concatenate(name="midend")(features)  # (batch, 187, 753)

    # Back-end: max and mean over time, a dense layer (the penultimate features), the tags. musicnn
    # flattens (753, 2) [max, mean] pairs, so its 1,506 inputs alternate max and mean per channel.
    channels = midend.shape[-1]
    pairs = [layers.Reshape((channels, 1), name=f"{kind}_pool_column")(pool(name=f"{kind}_pool")(midend))
             for kind, pool in (("max", layers.GlobalMaxPooling1D), ("mean", layers.GlobalAveragePooling1D))]
    pooled = layers.Flatten(name="temporal_pool")(layers.Concatenate(name="max_mean_pairs")(pairs))
    y = layers.BatchNormalization(epsilon=1e-3, name="batch_normalization_9")(pooled)
    y = layers.Dense(backend_units, activation="relu", name="dense")(y)
    penultimate = layers.BatchNormalization(epsilon=1e-3, name="batch_normalization_10")(y)
    logits = layers.Dense(n_tags, name="dense_1")(penultimate)
    taggram = layers.Activation("sigmoid", name="taggram")(logits)
    return keras.Model(inputs, [taggram, penultimate], name=name)


def checkpoint_weights(checkpoint_dir: Path) -> dict[str, np.ndarray]:
    """Every variable of a musicnn checkpoint folder (its file prefix is empty, hence the trailing
    slash), the optimiser's slots left out -> {name: array}."""
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(str(checkpoint_dir).rstrip("/") + "/")
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if "Adam" not in name and not name.endswith("_power")}


def load_checkpoint(model, weights: dict[str, np.ndarray]) -> None:
    """Set `build_musicnn`'s layers from checkpoint variables; every variable must be used."""
    used = set()
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            names = [f"{layer.name}/{v}" for v in ("gamma", "beta", "moving_mean", "moving_variance")]
        elif kind in ("Conv2D", "Conv1D", "Dense"):
            names = [f"{layer.name}/kernel", f"{layer.name}/bias"]
        else:
            continue
        values = [weights[n] for n in names]
        if kind == "Conv1D":  # musicnn's [7, channels, 1, filters] 2-D kernel over all channels
            values[0] = values[0].reshape(values[0].shape[0], values[0].shape[1], values[0].shape[3])
        layer.set_weights(values)
        used.update(names)
    unused = sorted(set(weights) - used)
    if unused:
        raise ValueError(f"checkpoint variables not used by the model: {unused}")


# The convolutions and the batch normalisation that follows each, by name.
CONV_BATCH_NORMS = {"conv2d": "batch_normalization_1", "conv2d_1": "batch_normalization_2",
                    "conv2d_2": "batch_normalization_3", "conv2d_3": "batch_normalization_4",
                    "conv2d_4": "batch_normalization_5", "conv2d_5": "batch_normalization_6",
                    "conv2d_6": "batch_normalization_7", "conv2d_7": "batch_normalization_8"}


# A filter whose every weight is under this is dead: in MSD musicnn the dead ones' largest weight is
# 2.1e-7 and the live ones' smallest maximum 9.4e-4. Dropping them changes no output by more than
# float32 rounding: 3.8e-6 on the penultimate layer (values within +-2.4), 196 patches of the 20
# demo clips (session 8); tests/test_musicnn.py checks it on a synthetic clip.
DEAD_WEIGHT = 1e-6


def prune_dead_filters(model):
    """The same function as a `build_musicnn` model, computing only the filters whose kernel is not
    all zero -> a new Keras model (the given one is unchanged).

    Most of MSD musicnn's filters are dead: weight decay left every weight of their kernel under
    1e-6 (most under 1e-29), while each live filter has one over 1e-4. 181 of 204 and 190 of 204
    filters in the timbral blocks are dead, 48 of 51 in the first temporal one, 44 of 64 in the
    first mid-end convolution. Such a filter's output is the same number at every frame and band:
    batch_norm(relu(bias)), also after pooling over frequency. The pruned model computes the live
    filters and adds the dead ones' constants back, so it gives the same outputs up to float32
    rounding (tests/test_musicnn.py) for much less CPU time a patch (docs/song_model.md)."""
    live = {}
    for conv in CONV_BATCH_NORMS:
        kernel = model.get_layer(conv).get_weights()[0]
        live[conv] = np.flatnonzero(np.abs(kernel.reshape(-1, kernel.shape[-1])).max(axis=0) > DEAD_WEIGHT)
    conv_of_batch_norm = {bn: conv for conv, bn in CONV_BATCH_NORMS.items()}
    pruned = build_musicnn(n_tags=model.get_layer("dense_1").units, backend_units=model.get_layer("dense").units,
                           frontend_filters=model.get_layer("conv2d").filters / 128,
                           midend_filters=model.get_layer("conv2d_5").filters, name=f"{model.name}_pruned", live=live)
    for layer in pruned.layers:
        if layer.name.endswith("_scatter"):
            conv = layer.name.removesuffix("_scatter")
            kernel, bias = model.get_layer(conv).get_weights()
            gamma, beta, mean, variance = model.get_layer(CONV_BATCH_NORMS[conv]).get_weights()
            epsilon = model.get_layer(CONV_BATCH_NORMS[conv]).epsilon
            constants = gamma * (np.maximum(bias, 0) - mean) / np.sqrt(variance + epsilon) + beta
            scatter = np.zeros((len(live[conv]), kernel.shape[-1]), np.float32)
            scatter[np.arange(len(live[conv])), live[conv]] = 1.0
            constants[live[conv]] = 0.0
            layer.set_weights([scatter, constants.astype(np.float32)])
        elif layer.weights:
            values = model.get_layer(layer.name).get_weights()
            keep = live.get(layer.name, live.get(conv_of_batch_norm.get(layer.name)))
            if keep is not None:
                values = [v[..., keep] for v in values]
            layer.set_weights(values)
    return pruned


def convert(checkpoint_dir: Path, out: Path = MODEL_PATH) -> Path:
    """The checkpoint as a `.keras` file with its card (core.cards layout) -> the model's path."""
    from core import cards

    checkpoint_dir = Path(checkpoint_dir)
    files = sorted(p for p in checkpoint_dir.iterdir() if p.name.startswith(".") and p.is_file()
                   or p.name == "checkpoint")
    model = build_musicnn()
    load_checkpoint(model, checkpoint_weights(checkpoint_dir))
    out = Path(out).with_suffix(".keras")
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    card = {
        "task": "musicnn", "name": out.stem, "builder": "core.song.musicnn.build_musicnn", "config": {},
        "source": {**SOURCE, "files_read": {p.name: cards.sha256_file(p) for p in files}},
        "input": {"sample_rate_hz": SAMPLE_RATE_HZ, "n_fft": N_FFT, "hop_length": HOP_LENGTH,
                  "n_mels": N_MELS, "patch_frames": PATCH_FRAMES, "scaling": "log10(10000 x + 1), float32"},
        "outputs": {"taggram": len(MSD_TAGS), "penultimate": PENULTIMATE_UNITS},
        "tags": list(MSD_TAGS),
        "model_file": {"name": out.name, "sha256": cards.sha256_file(out), "size_bytes": out.stat().st_size},
        "parameters": int(model.count_params()),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    cards.write_card(out, card)
    return out


# --- running it --------------------------------------------------------------------------------

class Musicnn:
    """The converted model behind one traced function: (p, 187, 96) patches -> (taggram (p, 50),
    penultimate (p, 200)). Safe to call from several threads once built."""

    def __init__(self, model, card: dict):
        import tensorflow as tf

        self.model, self.card = model, card
        self.pruned = prune_dead_filters(model)  # the same outputs for less CPU time (its docstring)
        spec = tf.TensorSpec((None, PATCH_FRAMES, N_MELS), tf.float32)
        self._infer = tf.function(lambda x: self.pruned(x, training=False), input_signature=[spec], autograph=False)

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> "Musicnn":
        from core import cards

        return cls(*cards.load_model(path))

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        taggram, penultimate = self._infer(np.asarray(x, np.float32))
        return taggram.numpy(), penultimate.numpy()

    def embeddings(self, x: np.ndarray) -> np.ndarray:
        """(p, 187, 96) patches -> (p, 250) float32: each patch's penultimate layer, then its tags."""
        taggram, penultimate = self(x)
        return np.concatenate([penultimate, taggram], axis=1)


@cache
def default_musicnn() -> Musicnn:
    """The shipped model, loaded once per process."""
    return Musicnn.load(MODEL_PATH)


# --- serving it with LiteRT ---------------------------------------------------------------------

def _bn(model, name):
    """A BatchNormalization layer as (scale, shift), float64."""
    layer = model.get_layer(name)
    gamma, beta, mean, variance = (np.asarray(w, np.float64) for w in layer.get_weights())
    scale = gamma / np.sqrt(variance + layer.epsilon)
    return scale, beta - mean * scale


TIMBRAL_GROUPS = 3  # band-offset groups of a timbral block's matrix product (docs/litert.md)


def litert_musicnn_function(model, frontend: str = "matmul"):
    """A `build_musicnn` model -> a tf.function (p, 187, 96) log-mel patches -> (p, 250) embeddings
    (penultimate layer, then the tags: `Musicnn.embeddings`), for LiteRT: built-in ops only.

    The same function as `prune_dead_filters`' model, arranged for XNNPACK (docs/litert.md):
      - each front-end convolution has one input channel and a tall kernel, which XNNPACK runs
        far slower than oneDNN; with frontend="matmul" they become matrix products: a timbral
        block (7 frames x b bands) is a 7-frame convolution with the 96 bands as input channels
        and (band offset, filter) as output channels, then the max over band offsets; the three
        temporal blocks (128/64/32 frames x 1 band) are one product with a banded (Toeplitz)
        matrix over the 187 frames, every band of every patch a column;
      - dead filters (`prune_dead_filters`) are not computed: their constant outputs enter the
        mid-end's first convolution as a per-frame bias (exact, zero padding included) and the
        back-end's dense layer as a bias;
      - every batch normalisation is a multiply and an add, or folded into the next matrix.
    frontend="conv" keeps the front end as the original 2-D convolutions (for comparison).
    """
    import tensorflow as tf

    if frontend not in ("matmul", "conv"):
        raise ValueError(f"frontend must be 'matmul' or 'conv', not {frontend!r}")
    f32 = lambda a: tf.constant(np.asarray(a, np.float32))  # noqa: E731
    weights = {conv: [np.asarray(w, np.float64) for w in model.get_layer(conv).get_weights()] for conv in CONV_BATCH_NORMS}
    norms = {layer.name: _bn(model, layer.name) for layer in model.layers
             if type(layer).__name__ == "BatchNormalization"}
    live = {conv: np.flatnonzero(np.abs(k.reshape(-1, k.shape[-1])).max(axis=0) > DEAD_WEIGHT)
            for conv, (k, _) in weights.items()}
    # Each front-end block's output channels in the frontend concatenation, and the dead ones' value.
    blocks = ["conv2d", "conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4"]
    widths = [weights[c][0].shape[-1] for c in blocks]
    offsets = np.concatenate([[0], np.cumsum(widths)])
    frontend_constant = np.zeros(offsets[-1])
    live_channels = []
    for conv, start in zip(blocks, offsets):
        kernel, bias = weights[conv]
        scale, shift = norms[CONV_BATCH_NORMS[conv]]
        constant = scale * np.maximum(bias, 0) + shift
        constant[live[conv]] = 0.0
        frontend_constant[start:start + len(constant)] = constant
        live_channels.extend(start + live[conv])
    live_channels = np.array(live_channels)
    s0, t0 = norms["batch_normalization"]

    def pooled(y, axis, bias, scale, shift):
        # max over bands of batch_norm(relu(y + bias)): relu and a positive scale keep the order,
        # so the max comes first and the rest runs on a tensor 59-96 times smaller; a filter with
        # a negative scale takes the min instead.
        top = tf.reduce_max(y, axis=axis)
        if (scale >= 0).all():
            return tf.nn.relu(top + f32(bias)) * f32(scale) + f32(shift)
        bottom = tf.reduce_min(y, axis=axis)
        chosen = tf.where(f32(scale >= 0) > 0, top, bottom)
        return tf.nn.relu(chosen + f32(bias)) * f32(scale) + f32(shift)

    def timbral(x, conv):  # x (p, 187, 96) standardised -> (p, 187, live filters)
        kernel, bias = weights[conv]
        keep = live[conv]
        kernel, bias = kernel[..., keep], bias[keep]  # (7, b, 1, n)
        scale, shift = (v[keep] for v in norms[CONV_BATCH_NORMS[conv]])
        frames, bands, _, n = kernel.shape
        padded = tf.pad(x, [[0, 0], [3, 3], [0, 0]])
        if frontend == "conv":
            y = tf.nn.conv2d(padded[..., None], f32(kernel), 1, "VALID")
            return pooled(y, 2, bias, scale, shift)
        # Band offsets in TIMBRAL_GROUPS groups: a group reads only the bands its offsets cover.
        positions = N_MELS - bands + 1
        tops = []
        for group in np.array_split(np.arange(positions), TIMBRAL_GROUPS):
            first, width = group[0], len(group) + bands - 1
            wide = np.zeros((frames, width, len(group), n))
            for j in range(len(group)):
                wide[:, j:j + bands, j, :] = kernel[:, :, 0, :]
            y = tf.nn.conv1d(padded[:, :, first:first + width], f32(wide.reshape(frames, width, -1)), 1, "VALID")
            tops.append(tf.reshape(y, [-1, PATCH_FRAMES, len(group), n]))
        return pooled(tf.concat(tops, axis=2), 2, bias, scale, shift)

    def temporal(x):  # the three temporal blocks -> (p, 187, live filters of each, together)
        if frontend == "conv":
            out = []
            for conv in ("conv2d_2", "conv2d_3", "conv2d_4"):
                kernel, bias = weights[conv]
                keep = live[conv]
                scale, shift = (v[keep] for v in norms[CONV_BATCH_NORMS[conv]])
                y = tf.nn.conv2d(x[..., None], f32(kernel[..., keep]), 1, "SAME")
                out.append(pooled(y, 2, bias[keep], scale, shift))
            return tf.concat(out, axis=-1)
        # A k-frame 'same' convolution over time is a product with a banded (Toeplitz) matrix over
        # the 187 frames, each (patch, band) a column; the frames are cut into chunks about 1.5 k
        # long so that each chunk's matrix holds only the frames its outputs read.
        columns = tf.reshape(tf.transpose(x, [1, 0, 2]), [PATCH_FRAMES, -1])  # (187, p * 96)
        out = []
        for conv in ("conv2d_2", "conv2d_3", "conv2d_4"):
            kernel, bias = weights[conv]
            keep = live[conv]
            scale, shift = (v[keep] for v in norms[CONV_BATCH_NORMS[conv]])
            k = kernel[:, 0, 0, keep]  # (length, n)
            length, n = k.shape
            left = (length - 1) // 2
            chunks = []
            for frames in np.array_split(np.arange(PATCH_FRAMES), max(1, round(PATCH_FRAMES / (1.5 * length)))):
                lo, hi = max(frames[0] - left, 0), min(frames[-1] - left + length, PATCH_FRAMES)
                matrix = np.zeros((n, len(frames), hi - lo))
                for row, t in enumerate(frames):
                    a, b = max(t - left, 0), min(t - left + length, PATCH_FRAMES)
                    matrix[:, row, a - lo:b - lo] = k[a - t + left:b - t + left].T
                y = tf.matmul(f32(matrix.reshape(-1, hi - lo)), columns[lo:hi])
                chunks.append(tf.reshape(y, [n, len(frames), -1, N_MELS]))
            y = pooled(tf.concat(chunks, axis=1), 3, bias[keep, None, None], scale[:, None, None], shift[:, None, None])
            out.append(tf.transpose(y, [2, 1, 0]))  # (n, 187, p) -> (p, 187, n)
        return tf.concat(out, axis=-1)

    # The mid-end's first convolution over the live front-end channels, plus the dead ones'
    # constants convolved (zero-padded at both ends as the model pads) as a per-frame bias.
    k5, b5 = weights["conv2d_5"]
    k5 = k5.reshape(k5.shape[0], k5.shape[1], k5.shape[-1]) if k5.ndim == 4 else k5
    constant_signal = np.pad(np.tile(frontend_constant, (PATCH_FRAMES, 1)), ((3, 3), (0, 0)))
    frame_bias = sum(constant_signal[d:d + PATCH_FRAMES] @ k5[d] for d in range(k5.shape[0])) + b5
    midend = [(k5[:, live_channels, :], frame_bias)]
    for conv in ("conv2d_6", "conv2d_7"):
        kernel, bias = weights[conv]
        midend.append((kernel.reshape(kernel.shape[0], kernel.shape[1], kernel.shape[-1]) if kernel.ndim == 4 else kernel, bias))
    midend_bn = [norms[f"batch_normalization_{i}"] for i in (6, 7, 8)]

    # Back-end: [max, mean] pairs per channel of the 753, batch-normalised, into the dense layer.
    # The dead front-end channels' pair is (c, c): their product with the kernel is a bias.
    s9, t9 = norms["batch_normalization_9"]
    dense_kernel, dense_bias = (np.asarray(w, np.float64) for w in model.get_layer("dense").get_weights())
    n_channels = len(frontend_constant) + 3 * midend[1][0].shape[-1]
    pooled_constant = np.zeros(2 * n_channels)
    pooled_constant[0:2 * len(frontend_constant):2] = frontend_constant
    pooled_constant[1:2 * len(frontend_constant):2] = frontend_constant
    computed = np.concatenate([live_channels, np.arange(len(frontend_constant), n_channels)])
    rows_max, rows_mean = 2 * computed, 2 * computed + 1
    folded = dense_kernel * s9[:, None]
    dense_bias = dense_bias + t9 @ dense_kernel + (pooled_constant * s9) @ dense_kernel
    folded_max, folded_mean = folded[rows_max], folded[rows_mean]
    s10, t10 = norms["batch_normalization_10"]
    tags_kernel, tags_bias = model.get_layer("dense_1").get_weights()

    @tf.function(input_signature=[tf.TensorSpec((None, PATCH_FRAMES, N_MELS), tf.float32)], autograph=False)
    def infer(x):
        x = x * float(s0[0]) + float(t0[0])
        front = tf.concat([timbral(x, "conv2d"), timbral(x, "conv2d_1"), temporal(x)], axis=-1)  # (p, 187, 64)
        features, previous = [front], front
        for i, ((kernel, bias), (scale, shift)) in enumerate(zip(midend, midend_bn)):
            y = tf.nn.conv1d(tf.pad(previous, [[0, 0], [3, 3], [0, 0]]), f32(kernel), 1, "VALID") + f32(bias)
            y = tf.nn.relu(y) * f32(scale) + f32(shift)
            if i > 0:
                y = y + previous
            features.append(y)
            previous = y
        computed_features = tf.concat(features, axis=-1)  # (p, 187, 64 + 3 x 64)
        hidden = (tf.matmul(tf.reduce_max(computed_features, axis=1), f32(folded_max))
                  + tf.matmul(tf.reduce_mean(computed_features, axis=1), f32(folded_mean)) + f32(dense_bias))
        penultimate = tf.nn.relu(hidden) * f32(s10) + f32(t10)
        tags = tf.sigmoid(tf.matmul(penultimate, f32(tags_kernel)) + f32(tags_bias))
        return tf.concat([penultimate, tags], axis=1)

    return infer



class LiteRTMusicnn:
    """musicnn served by LiteRT (`litert_musicnn_function`'s graph, `.tflite` beside the `.keras`):
    the same calls as `Musicnn`, without TensorFlow. Safe to call from several threads
    (core.litert.LiteRTModel)."""

    # Patches a call: the graph's intermediate tensors grow with the batch (a timbral block's
    # output is 1 MB a patch), and chunks of 10 stay in cache (docs/litert.md).
    CHUNK_PATCHES = 10

    def __init__(self, runner):
        self.runner, self.card = runner, runner.card

    @classmethod
    def load(cls, path: Path = MODEL_PATH, **kwargs) -> "LiteRTMusicnn":
        from core.litert import LiteRTModel

        return cls(LiteRTModel.load(path, **kwargs))

    def embeddings(self, x: np.ndarray) -> np.ndarray:
        """(p, 187, 96) patches -> (p, 250) float32: each patch's penultimate layer, then its tags.
        A long song's chunks run side by side, one per CPU (each interpreter releases the GIL)."""
        x = np.asarray(x, np.float32)
        chunks = [x[i:i + self.CHUNK_PATCHES] for i in range(0, len(x), self.CHUNK_PATCHES)]
        if not chunks:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        if len(chunks) == 1:
            return self.runner(chunks[0])
        return np.concatenate(list(_chunk_pool().map(self.runner, chunks)))

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embeddings = self.embeddings(x)
        return embeddings[:, PENULTIMATE_UNITS:], embeddings[:, :PENULTIMATE_UNITS]


@cache
def _chunk_pool():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="musicnn-chunks")


@cache
def default_litert_musicnn() -> LiteRTMusicnn:
    """The shipped model served by LiteRT, loaded once per process."""
    return LiteRTMusicnn.load(MODEL_PATH)

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.song.musicnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    conversion = commands.add_parser("convert", help="musicnn's MSD checkpoint -> a .keras file and card")
    conversion.add_argument("--checkpoint", required=True, type=Path, help="the wheel's musicnn/MSD_musicnn/ folder")
    conversion.add_argument("--out", type=Path, default=MODEL_PATH.with_suffix(""))
    args = parser.parse_args(argv)
    path = convert(args.checkpoint, args.out)
    print(json.dumps({"model": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
