"""Pictures decoded in worker processes (core.workers), each with a time and a memory limit."""

from __future__ import annotations

import os

import numpy as np

from core.errors import InputError
from core.face import detect
from core.workers import WorkerPool

# Several times the slowest picture allowed (8000x8000 grey png, progressive JPEG, 16-bit RGBA png),
# so a loaded machine still finishes it: the timings are in docs/performance.md.
PICTURE_TIMEOUT_S = 20.0
# What a picture worker may add to its address space while decoding: 8000x8000 16-bit RGBA pixels
# are 512 MB, and their 8-bit BGR copy 192 MB more.
PICTURE_MEMORY_MB = 1536


class PictureWorkers(WorkerPool):
    """Worker processes that decode pictures: `decode_image(data)` is `detect.decode_image(data)`,
    run in a worker that is stopped after timeout_s and may add at most memory_mb to its address
    space (RLIMIT_AS): a picture over either limit gets a message, and the worker carries on or is
    replaced."""

    def __init__(self, processes: int, timeout_s: float = PICTURE_TIMEOUT_S, memory_mb: int = PICTURE_MEMORY_MB):
        super().__init__(processes, timeout_s, (f"--prepare={__name__}:prepare", f"--memory-mb={memory_mb}"))
        self.memory_mb = memory_mb

    def decode_image(self, data: bytes) -> np.ndarray:
        """Bytes -> (h, w, 3) uint8 BGR, as `detect.decode_image`, decoded in a worker. Raises
        InputError as it does, and WorkerDied when the worker was stopped or ended on this file."""
        try:
            return self.run(detect.decode_image, data)
        except MemoryError:
            raise InputError(f"Decoding this picture needs more than the {self.memory_mb} MB a picture may use "
                             "(it may be damaged or made to need it). Resize it and try again.") from None


def prepare() -> None:
    """In a picture worker, before its first picture: OpenCV loaded by core.face.detect (which sets its
    pixel limit first), on one thread (threads made later would need address space of their own
    under the memory limit), and its decoders and resizing used once."""
    assert os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS") == str(detect.MAX_PIXELS)
    detect.cv2.setNumThreads(1)
    picture = detect.cv2.imencode(".png", np.zeros((100, 2 * detect.WORK_MAX_SIDE_PX, 3), np.uint8))[1]
    detect.decode_image(picture.tobytes())
