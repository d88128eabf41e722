"""The song-mood CRNN: one builder, its choices as keyword arguments.

Layer choices follow ../shared/seeds/crnn_music_emotion_layers.md: Conv1D blocks (64, 128 filters)
with MaxPooling1D(2) and Dropout(0.3), LSTM(128, return_sequences=True), a Dense pyramid
(128 -> 64 -> 32 with dropout 0.4 / 0.3 / 0.2) and Dense(2, linear) for (valence, arousal).

The default summarises the LSTM's sequence with global average pooling (the seed's Pattern 3)
rather than a second LSTM(64) that returns its last step (Pattern 1, `summary="lstm"`): on the
764 songs the stacked-LSTM model reached a validation valence r of about 0.1-0.2, below the
ridge baseline, where the pooled one reached about 0.38 (experiments of 2026-11-22, same split).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, regularizers

N_MELS = 128
POOLINGS = ("max", "average", "none")
SUMMARIES = ("lstm", "global_average", "global_max")
TARGETS = ("valence", "arousal")


def build_song_crnn(
    conv_filters: tuple[int, ...] = (64, 128),
    kernel_size: int = 3,
    pooling: str = "max",
    pool_size: int = 2,
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
    """Build the CRNN for a log-mel window -> (valence, arousal).

    Input: (batch, n_frames, 128) float32 log-mel in dB, [-80, 0] (any n_frames >= pool_size**blocks).
    Output: (batch, 2) linear (valence, arousal).

    pooling: "max" (MaxPooling1D), "average" (AveragePooling1D) or "none" after each conv block.
    dropout: rate after each conv block; spatial_dropout uses SpatialDropout1D (whole feature maps).
    summary: "lstm" keeps the last LSTM (return_sequences=False); "global_average"/"global_max"
        replace the last LSTM with global pooling over time.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
    if summary not in SUMMARIES:
        raise ValueError(f"summary must be one of {SUMMARIES}, not {summary!r}")
    if len(dense_dropout) != len(dense_units):
        raise ValueError("dense_dropout needs one rate per dense layer")
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
            x = layers.MaxPooling1D(pool_size, name=f"pool{i + 1}")(x)
        elif pooling == "average":
            x = layers.AveragePooling1D(pool_size, name=f"pool{i + 1}")(x)
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
