"""The face-expression CNN: one builder, its choices as keyword arguments.

Layer choices follow ../shared/seeds/cnn_facial_expression_notebook.md: blocks of
Conv2D(3x3, padding='same', stride 1) -> BatchNormalization -> ReLU, then MaxPooling2D(2x2) and
Dropout(0.25), with filters doubling with depth, then a dense head with dropout and a 7-way softmax.
"""

from __future__ import annotations

import keras
from keras import layers

from core.face.data import EXPRESSIONS

FACE_SIZE_PX = 48
POOLINGS = ("max", "average", "strided")


def build_face_cnn(
    blocks: int = 4,
    filters: int = 32,
    convs_per_block: int = 2,
    pooling: str = "max",
    dropout: float = 0.25,
    dense_units: tuple[int, ...] = (256,),
    dense_dropout: float = 0.5,
    num_classes: int = len(EXPRESSIONS),
    name: str = "face_cnn",
) -> keras.Model:
    """Build the CNN for (48, 48, 1) grey faces with values 0..255 -> (7,) softmax probabilities.

    blocks: conv blocks; block i has `filters * 2**i` filters.
    pooling: how each block halves the map: "max" (MaxPooling2D 2x2), "average"
        (AveragePooling2D 2x2) or "strided" (the block's last conv has stride 2, no pooling layer).
    dropout: rate of the Dropout after each block; dense_dropout: after each dense layer.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
    inputs = keras.Input((FACE_SIZE_PX, FACE_SIZE_PX, 1), name="face")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    for b in range(blocks):
        width = filters * 2**b
        for c in range(convs_per_block):
            last = c == convs_per_block - 1
            stride = 2 if (pooling == "strided" and last) else 1
            x = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False,
                              name=f"block{b + 1}_conv{c + 1}")(x)
            x = layers.BatchNormalization(name=f"block{b + 1}_bn{c + 1}")(x)
            x = layers.ReLU(name=f"block{b + 1}_relu{c + 1}")(x)
        if pooling == "max":
            x = layers.MaxPooling2D(2, name=f"block{b + 1}_pool")(x)
        elif pooling == "average":
            x = layers.AveragePooling2D(2, name=f"block{b + 1}_pool")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name=f"block{b + 1}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(dense_units):
        x = layers.Dense(units, use_bias=False, name=f"dense{i + 1}")(x)
        x = layers.BatchNormalization(name=f"dense{i + 1}_bn")(x)
        x = layers.ReLU(name=f"dense{i + 1}_relu")(x)
        if dense_dropout > 0:
            x = layers.Dropout(dense_dropout, name=f"dense{i + 1}_dropout")(x)
    # float32 softmax even when trained with mixed_bfloat16
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="expression")(x)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="moodlens")
class HorizontalFlip(layers.Layer):
    """Mirror pictures left to right: (batch, h, w, c) -> the same shape."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=2)


def with_mirror_average(model: keras.Model) -> keras.Model:
    """Test-time augmentation: the model's probabilities averaged over the picture and its mirror
    image (faces are near-symmetric, and training flips them too). Same weights, twice the work."""
    inputs = keras.Input(model.input_shape[1:], name="face")
    mirrored = HorizontalFlip(name="mirror")(inputs)
    outputs = layers.Average(name="mirror_average")([model(inputs), model(mirrored)])
    return keras.Model(inputs, outputs, name=f"{model.name}_mirror_average")
