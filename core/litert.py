"""Serving a model with LiteRT (`ai_edge_litert`, XNNPACK): what the server runs, without TensorFlow.

TensorFlow trains and writes each served model's `.tflite` beside its `.keras` (`export_litert`,
called by the task's export command); the card records the file as
`litert_file: {"name", "sha256", "size_bytes"}`. `LiteRTModel` checks that SHA-256 before it
builds an interpreter, then runs the graph like `core.runner.ModelRunner`: float32 in, NumPy out,
any batch size and, where the graph allows, any sequence length.

This module imports NumPy, ai_edge_litert and the kernel only; `export_litert` imports TensorFlow
inside the function, for training code.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import numpy as np

from core import cards
from core.errors import ModelFileError

# One XNNPACK thread an interpreter: the server runs one analysis per CPU at a time, so more
# threads a call only make the calls wait on each other (docs/litert.md has the figures).
DEFAULT_THREADS = 1


class LiteRTModel:
    """A `.tflite` graph behind a small pool of interpreters, safe to call from several threads.

    An Interpreter is not thread-safe, so each call borrows one from the pool (made on first need,
    1-3 ms, at most `max_interpreters` of them) and gives it back; the call waits for one when all
    are busy. Each interpreter keeps its input shape until a call brings another (then it resizes
    and reallocates its tensors, well under a millisecond for the song graphs).

    Args:
        content: the `.tflite` file's bytes (already checked: use `load`).
        card: the model's card (core.cards.Card), kept as `self.card`.
        num_threads: XNNPACK threads of each interpreter.
        max_interpreters: how many calls run at once (default: the CPU count).
        name: what error messages call the model.
    """

    def __init__(self, content: bytes, card=None, num_threads: int = DEFAULT_THREADS,
                 max_interpreters: int | None = None, name: str = "model"):
        if int(num_threads) != num_threads or num_threads < 1:
            raise ValueError(f"num_threads must be a positive integer, not {num_threads!r}")
        self.card, self.name, self.num_threads = card, name, int(num_threads)
        self._content = bytes(content)
        self._max = int(max_interpreters or os.cpu_count() or 1)
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._made = 0
        self._lock = threading.Lock()
        self._idle.put(self._new_interpreter())  # a bad file fails here, not on a person's first call
        details = self._peek().get_input_details()
        if len(details) != 1:
            raise ModelFileError(f"{name}: a LiteRT graph with one input was expected, not {len(details)}")
        self.input_shape = tuple(int(d) for d in details[0]["shape_signature"])  # -1: any size

    @classmethod
    def load(cls, model_path: Path, **kwargs) -> "LiteRTModel":
        """The `.tflite` that the card beside `model_path` (a `.keras`, `.tflite` or `.json` path)
        names in `litert_file`, after checking its SHA-256 -> a LiteRTModel. Raises ModelFileError
        naming the file when the card has no `litert_file`, or the file is missing or altered."""
        path = litert_path(model_path)
        if not path.exists() and not cards.card_path(model_path).exists():
            raise ModelFileError(f"The model file {Path(model_path).name} is missing ({path} and its card "
                                 "are not there): restore them from git or retrain.")
        card = cards.read_card(model_path)
        expected = (card.get("litert_file") or {}).get("sha256")
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise ModelFileError(f"The LiteRT file {path} is missing: write it with `python -m core.song.export` "
                                 "or `python -m core.face.export` (or, from a command, score the .keras with "
                                 "--runtime keras), or restore it from git.")
        import hashlib

        actual = hashlib.sha256(content).hexdigest()
        if expected != actual:
            raise ModelFileError(f"The LiteRT file {path} does not match its card (SHA-256 {actual[:12]}… "
                                 f"instead of {str(expected)[:12]}…): it is corrupt or was replaced; "
                                 "restore it from git or export it again.")
        return cls(content, card, name=path.name, **kwargs)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(batch, *input shape) -> the graph's output, float32; the batch and any dimension the
        graph leaves open (-1 in `input_shape`) may take any size."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != len(self.input_shape) or any(s not in (-1, n) for s, n in zip(self.input_shape, x.shape)):
            raise ValueError(f"{self.name} takes {self.input_shape} (-1: any size), not {x.shape}")
        interpreter = self._borrow()
        try:
            index = interpreter.get_input_details()[0]["index"]
            if tuple(interpreter.get_input_details()[0]["shape"]) != x.shape:
                interpreter.resize_tensor_input(index, x.shape, strict=True)
                interpreter.allocate_tensors()
            interpreter.set_tensor(index, x)
            interpreter.invoke()  # releases the GIL while it computes
            return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        finally:
            self._idle.put(interpreter)

    def _new_interpreter(self):
        from ai_edge_litert.interpreter import Interpreter

        from core.tf_runtime import quiet_stderr

        try:
            with quiet_stderr():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" banner
                interpreter = Interpreter(model_content=self._content, num_threads=self.num_threads)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelFileError(f"The LiteRT file {self.name} could not be read ({e}).")
        self._made += 1
        return interpreter

    def _borrow(self):
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._made < self._max:
                return self._new_interpreter()
        return self._idle.get()

    def _peek(self):
        interpreter = self._idle.get()
        self._idle.put(interpreter)
        return interpreter


def litert_path(model_path: Path) -> Path:
    """Where the `.tflite` of a model lives: the name its card's `litert_file` gives, beside the
    card, else the model's path with the suffix `.tflite`."""
    model_path = Path(model_path)
    try:
        named = (cards.read_card(model_path).get("litert_file") or {}).get("name")
    except ModelFileError:
        named = None
    return model_path.parent / named if named else model_path.with_suffix(".tflite")


# --- writing them (training code: TensorFlow imported here only) --------------------------------

def export_litert(concrete_function, out: Path) -> dict:
    """A TensorFlow concrete function -> a `.tflite` file of LiteRT's built-in operators only (no
    Flex/TensorFlow ops, no quantisation: float32 as trained) -> its card entry
    {"name", "sha256", "size_bytes"}. Raises ValueError when the graph needs an op that is not
    built in (the converter's message says which)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_function])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.optimizations = []
    try:
        content = converter.convert()
    except Exception as e:  # the converter raises ConverterError and others
        raise ValueError(f"{out}: the graph does not convert to LiteRT built-in ops ({e})") from e
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(content)
    return {"name": out.name, "sha256": cards.sha256_file(out), "size_bytes": out.stat().st_size}


def record_litert_file(model_path: Path, entry: dict) -> Path:
    """Write `export_litert`'s entry into the card beside `model_path` (its `litert_file`)."""
    card = cards.read_card(model_path)
    card["litert_file"] = entry
    return cards.write_card(model_path, card)
