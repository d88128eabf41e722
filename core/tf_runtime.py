"""Importing TensorFlow/Keras without its start-up chatter on stderr.

TensorFlow's C++ side logs oneDNN and CUDA-probe lines to file descriptor 2 while it loads, before
TF_CPP_MIN_LOG_LEVEL takes effect; a CLI's stderr should carry only its own one-line errors.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def quiet_stderr():
    """Send file descriptor 2 (where C++ libraries log) to /dev/null for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_keras():
    """Import and return keras, quietly. The app runs on TensorFlow; training may run on another
    backend (KERAS_BACKEND=jax on a GPU machine that has no TensorFlow)."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        import keras

        return keras
    with quiet_stderr():
        import tensorflow as tf  # loads the C++ runtime, the noisy part

        tf.config.list_physical_devices()  # probes for CUDA now, not at the first prediction
        import keras
    return keras
