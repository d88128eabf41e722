"""The song-mood CRNN: one builder, its choices as keyword arguments.

Its input is a sequence: by default the musicnn embeddings of a song's 3-s patches
(core.song.features: (patches, 250), standardised by a Normalization layer adapted in training);
`input_features="logmel"` gives the earlier model over a 30-s log-mel window ((646, 128) dB).

Layer choices follow ../shared/seeds/crnn_music_emotion_layers.md: Conv1D blocks (64, 128 filters)
with MaxPooling1D(2) and Dropout(0.3), LSTM(128, return_sequences=True), a Dense pyramid
(128 -> 64 -> 32 with dropout 0.4 / 0.3 / 0.2) and Dense(2, linear) for (valence, arousal).

The default summarises the LSTM's sequence with global average pooling (the seed's Pattern 3)
rather than a second LSTM(64) that returns its last step (Pattern 1, `summary="lstm"`): on the
764 songs the stacked-LSTM model fell below the ridge baseline, where the pooled one beat it
(docs/song_model.md; the zoo's `last_lstm` variant is that choice, with its interval and verdict).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, regularizers

N_MELS = 128
EMBEDDING_DIM = 250  # core.song.musicnn.EMBEDDING_DIM: penultimate layer (200) + tags (50) per patch
INPUT_FEATURES = ("musicnn", "logmel")
POOLINGS = ("max", "average", "none")
PADDINGS = ("same", "valid")
SUMMARIES = ("lstm", "global_average", "global_max")
TARGETS = ("valence", "arousal")


def build_song_crnn(
    input_features: str = "musicnn",
    conv_filters: tuple[int, ...] = (64, 128),
    kernel_size: int = 3,
    pooling: str = "max",
    pool_size: int = 2,
    pool_padding: str = "same",
    dropout: float = 0.3,
    spatial_dropout: bool = False,
    batch_norm: bool = True,
    lstm_units: tuple[int, ...] = (128, 64),
    lstm_dropout: float = 0.3,
    bidirectional: bool = False,
    summary: str = "global_average",
    dense_units: tuple[int, ...] = (128, 64, 32),
    dense_dropout: tuple[float, ...] = (0.4, 0.3, 0.2),
    l2: float = 1e-3,
    name: str = "song_crnn",
) -> keras.Model:
    """Build the CRNN for a sequence -> (valence, arousal).

    Input: (batch, steps, 250) float32 musicnn patch embeddings (input_features="musicnn", any
    steps >= 1 with pool_padding="same"), or (batch, n_frames, 128) float32 log-mel in dB, [-80, 0]
    (input_features="logmel"). Output: (batch, 2) linear (valence, arousal).

    Args:
        input_features: "musicnn" (standardised by a Normalization layer named "standardize",
            which training adapts to its data) or "logmel" (dB rescaled to [-1, 1]).
        conv_filters: filters of each Conv1D block, in order.
        kernel_size: the Conv1D kernel length, in steps.
        pooling: "max" (MaxPooling1D), "average" (AveragePooling1D) or "none" after each conv block.
        pool_size: the pooling window and stride, in steps.
        pool_padding: "same" (a sequence shorter than the window still gives one step) or "valid".
        dropout: rate after each conv block.
        spatial_dropout: SpatialDropout1D (whole feature maps) instead of Dropout.
        batch_norm: BatchNormalization after each convolution (which then has no bias).
        lstm_units: units of each LSTM; with a global summary the last entry is not built.
        lstm_dropout: the LSTMs' input dropout.
        bidirectional: wrap each LSTM in Bidirectional.
        summary: "lstm" keeps the last LSTM (return_sequences=False); "global_average"/"global_max"
            replace the last LSTM with global pooling over time.
        dense_units: units of each ReLU Dense layer before the output.
        dense_dropout: dropout after each Dense layer (one rate per layer).
        l2: L2 penalty on the Dense kernels.
        name: the model's name.
    Raises ValueError naming a choice that is not one of the above.
    """
    if input_features not in INPUT_FEATURES:
        raise ValueError(f"input_features must be one of {INPUT_FEATURES}, not {input_features!r}")
    if pool_padding not in PADDINGS:
        raise ValueError(f"pool_padding must be one of {PADDINGS}, not {pool_padding!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
    if summary not in SUMMARIES:
        raise ValueError(f"summary must be one of {SUMMARIES}, not {summary!r}")
    if len(dense_dropout) != len(dense_units):
        raise ValueError("dense_dropout needs one rate per dense layer")
    if input_features == "musicnn":
        inputs = keras.Input((None, EMBEDDING_DIM), name="musicnn_patches")
        x = layers.Normalization(axis=-1, name="standardize")(inputs)
    else:
        inputs = keras.Input((None, N_MELS), name="logmel_db")
        # dB in [-80, 0] -> [-1, 1]
        x = layers.Rescaling(1.0 / 40.0, offset=1.0, name="scale")(inputs)
    for i, width in enumerate(conv_filters):
        x = layers.Conv1D(width, kernel_size, padding="same", use_bias=not batch_norm,
                          name=f"conv{i + 1}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"conv{i + 1}_bn")(x)
        x = layers.ReLU(name=f"conv{i + 1}_relu")(x)
        if pooling == "max":
            x = layers.MaxPooling1D(pool_size, padding=pool_padding, name=f"pool{i + 1}")(x)
        elif pooling == "average":
            x = layers.AveragePooling1D(pool_size, padding=pool_padding, name=f"pool{i + 1}")(x)
        if dropout > 0:
            drop = layers.SpatialDropout1D if spatial_dropout else layers.Dropout
            x = drop(dropout, name=f"dropout{i + 1}")(x)

    recurrent = lstm_units if summary == "lstm" else lstm_units[:-1]
    for i, units in enumerate(recurrent):
        last = summary == "lstm" and i == len(recurrent) - 1
        lstm = layers.LSTM(units, return_sequences=not last, dropout=lstm_dropout,
                           name=f"lstm{i + 1}")
        x = layers.Bidirectional(lstm, name=f"bilstm{i + 1}")(x) if bidirectional else lstm(x)
    if summary == "global_average":
        x = layers.GlobalAveragePooling1D(name="global_pool")(x)
    elif summary == "global_max":
        x = layers.GlobalMaxPooling1D(name="global_pool")(x)

    for i, (units, rate) in enumerate(zip(dense_units, dense_dropout)):
        x = layers.Dense(units, activation="relu", kernel_regularizer=regularizers.l2(l2),
                         name=f"dense{i + 1}")(x)
        if rate > 0:
            x = layers.Dropout(rate, name=f"dense{i + 1}_dropout")(x)
    outputs = layers.Dense(len(TARGETS), activation="linear", name="valence_arousal")(x)
    return keras.Model(inputs, outputs, name=name)


def fold_target_scaling(model: keras.Model, mean: np.ndarray, std: np.ndarray) -> None:
    """Make a model trained on standardised targets output raw (valence, arousal).

    The output Dense computes z = h W + b; y = z * std + mean = h (W * std) + (b * std + mean).
    """
    head = model.get_layer("valence_arousal")
    kernel, bias = head.get_weights()
    head.set_weights([kernel * std[None, :], bias * std + mean])
