"""Importing TensorFlow/Keras without its start-up chatter on stderr.

TensorFlow's C++ side logs oneDNN and CUDA-probe lines to file descriptor 2 while it loads, before
TF_CPP_MIN_LOG_LEVEL takes effect; a CLI's stderr should carry only its own one-line errors.
"""

from __future__ import annotations

import contextlib
import logging
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


class _OneTracePerRunner(logging.Filter):
    """TensorFlow warns "N out of the last N calls to <lambda> triggered tf.function retracing" when
    several tf.functions made at one line of code are each traced: here one per loaded model
    (core.runner.ModelRunner, and its Monte Carlo dropout copy), each traced once by design, so the
    warning says nothing. A real retrace (one runner traced twice) is caught by tests/test_predict.py,
    which counts each runner's traces."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def _drop_retracing_warnings() -> None:
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _OneTracePerRunner) for f in logger.filters):
        logger.addFilter(_OneTracePerRunner())


def import_keras():
    """Import and return keras, quietly. The app runs on TensorFlow; training may run on another
    backend (KERAS_BACKEND=jax on a GPU machine that has no TensorFlow)."""
    if "keras" in sys.modules:
        _drop_retracing_warnings()
        return sys.modules["keras"]
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        import keras

        return keras
    with quiet_stderr():
        import tensorflow as tf  # loads the C++ runtime, the noisy part

        tf.config.list_physical_devices()  # probes for CUDA now, not at the first prediction
        import keras
    _drop_retracing_warnings()
    return keras
