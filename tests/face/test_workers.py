"""Pictures decoded in worker processes (core/face/workers.py): the same pixels, the same refusals,
a memory limit, and a stalled decoder stopped without holding up others."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from core.errors import InputError
from core.face.workers import PictureWorkers
from core.workers import WorkerDied
from tests.hostile_files import progressive_jpeg, radiance_hdr_posing_as_photo_cd
from tests.waiting import wait_until


def _png(image: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png", image)[1].tobytes()


@pytest.fixture(scope="module")
def picture_workers():
    pool = PictureWorkers(2)
    yield pool
    pool.close()


def test_a_picture_from_a_worker_is_the_picture_decoded_here(picture_workers):
    from core.face import detect as faces

    rng = np.random.default_rng(0)
    for data in (_png(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)), progressive_jpeg(3000)):
        np.testing.assert_array_equal(picture_workers.decode_image(data), faces.decode_image(data))


@pytest.mark.parametrize("data, message", [
    (b"", "The file is empty"),
    (radiance_hdr_posing_as_photo_cd(), "not an image"),
    (_png(np.zeros((1, 1, 3), np.uint8)), "only 1x1 pixels"),
], ids=["empty", "radiance-hdr", "1x1"])
def test_a_picture_refused_in_a_worker_keeps_its_message(picture_workers, data, message):
    with pytest.raises(InputError, match=message):
        picture_workers.decode_image(data)


def test_a_picture_worker_cannot_grow_past_its_memory_limit_and_carries_on(picture_workers):
    with pytest.raises(MemoryError):
        picture_workers.run(np.ones, (picture_workers.memory_mb + 100) * 1024 * 1024, np.uint8)
    small = PictureWorkers(1, memory_mb=60)  # less than an 8000x8000 picture's decoded pixels (192 MB)
    try:
        with pytest.raises(InputError, match="needs more memory than a picture may use"):
            small.decode_image(_png(np.full((8000, 8000, 3), 90, np.uint8)))
        assert small.decode_image(_png(np.full((100, 120, 3), 90, np.uint8))).shape == (100, 120, 3)
    finally:
        small.close()
    assert picture_workers.decode_image(_png(np.full((100, 120, 3), 90, np.uint8))).shape == (100, 120, 3)


def test_a_picture_that_stalls_its_decoder_is_stopped_and_holds_up_no_one_else():
    from core.face import detect as faces

    slow = progressive_jpeg(8000, repeat_last_scan=faces.MAX_JPEG_SCANS - 10)  # under the scan limit
    pool = PictureWorkers(2, timeout_s=1.0)
    try:
        with ThreadPoolExecutor(1) as other:
            started = time.monotonic()
            stalled = other.submit(pytest.raises, WorkerDied, pool.decode_image, slow)
            wait_until(lambda: pool._idle.qsize() == 1, 10, message="the stalled picture never reached a worker")
            for _ in range(5):  # another person's pictures meanwhile, in the other worker
                assert pool.decode_image(_png(np.full((480, 640, 3), 90, np.uint8))).shape == (480, 640, 3)
            assert not stalled.done(), "the other pictures waited for the stalled one"
            assert "took over 1 s and was stopped" in str(stalled.result(timeout=30).value)
            assert time.monotonic() - started < 15
        assert pool.decode_image(_png(np.full((100, 120, 3), 90, np.uint8))).shape == (100, 120, 3)
    finally:
        pool.close()


def test_in_a_picture_worker_opencv_itself_refuses_a_picture_over_the_pixel_limit(picture_workers):
    # The size is checked by the decoder that decodes: OpenCV, from the header it reads itself
    # (OPENCV_IO_MAX_IMAGE_PIXELS, set by core.face.detect before OpenCV loads), not by another library.
    from core.face import detect as faces
    from tests.hostile_files import opencv_decode

    side = int(faces.MAX_PIXELS ** 0.5) + 1
    with pytest.raises(faces.cv2.error, match="pixels <= CV_IO_MAX_IMAGE_PIXELS"):
        picture_workers.run(opencv_decode, _png(np.full((side, side), 90, np.uint8)))
    assert picture_workers.run(opencv_decode, _png(np.full((side - 2, side - 2), 90, np.uint8))) == (side - 2, side - 2)
