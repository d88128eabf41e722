"""Importing TensorFlow/Keras without its start-up chatter on stderr.

TensorFlow's C++ side logs oneDNN and CUDA-probe lines to file descriptor 2 while it loads, before
TF_CPP_MIN_LOG_LEVEL takes effect; a CLI's stderr should carry only its own one-line errors.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_keras():
    """Import and return keras, with file descriptor 2 sent to /dev/null while TensorFlow loads."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf  # loads the C++ runtime, the noisy part

            tf.config.list_physical_devices()  # probes for CUDA now, not at the first prediction
            import keras
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return keras
