"""Running a Keras model: loaded with its card, traced once, called in batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from core import cards

# What scores a batch: a LiteRT model (core.litert), a ModelRunner below, or an ensemble of either.
Scorer = Callable[[np.ndarray], np.ndarray]


class ModelRunner:
    """A loaded model behind one traced `tf.function`: traced once, then safe to call from
    several threads (sessions) at once, unlike the first calls of `model.predict_on_batch`."""

    def __init__(self, model, card: dict):
        import tensorflow as tf

        self.model, self.card = model, card
        spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
        # autograph=False: a Keras model needs no conversion, and autograph writes the converted
        # source to a file in the temp folder (a file on disk for every server process).
        self._infer = tf.function(lambda x: model(x, training=False), input_signature=[spec], autograph=False)

    @classmethod
    def load(cls, path: Path) -> "ModelRunner":
        model, card = cards.load_model(path)
        return cls(model, card)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._infer(np.asarray(x, dtype=np.float32)).numpy()

    def mc_dropout(self, x: np.ndarray, passes: int) -> np.ndarray:
        """Monte Carlo dropout: `passes` predictions with every dropout layer kept on (batch
        normalisation stays in inference mode) -> (passes, *output shape)."""
        if not hasattr(self, "_mc_infer"):
            import tensorflow as tf

            sampler = _with_dropout_on(self.model)
            spec = tf.TensorSpec((None, *self.model.inputs[0].shape[1:]), tf.float32)
            self._mc_infer = tf.function(lambda batch: sampler(batch, training=False),
                                         input_signature=[spec], autograph=False)
        x = np.asarray(x, dtype=np.float32)
        repeated = np.repeat(x[None], passes, axis=0).reshape(-1, *x.shape[1:])
        return self._mc_infer(repeated).numpy().reshape(passes, len(x), -1)


def _with_dropout_on(model):
    """A copy of `model`, sharing its weights' values, whose dropout layers drop at inference too."""
    import keras

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.SpatialDropout1D):
            return _AlwaysOn(keras.layers.SpatialDropout1D)(**config)
        if isinstance(layer, keras.layers.Dropout):
            return _AlwaysOn(keras.layers.Dropout)(**config)
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def _AlwaysOn(base):
    class AlwaysOn(base):
        def call(self, inputs, training=None):
            return super().call(inputs, training=True)

    AlwaysOn.__name__ = f"AlwaysOn{base.__name__}"
    return AlwaysOn


BATCH = 256


def batched(model, x: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """`model(x)` in batches of `batch` rows (float32), concatenated: bounded memory for any n."""
    return np.concatenate([model(x[i:i + batch].astype(np.float32)) for i in range(0, len(x), batch)])
