"""Song features computed in worker processes are the features computed here, file errors keep their
messages, and a worker that dies gives a message and is replaced."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from core import cards
from core.song import features as song_features
from core.errors import InputError
from core.runner import ModelRunner
from core.song.predict import predict_song
from core.face.workers import PictureWorkers
from core.song.workers import SongFeatureWorkers
from core.workers import WorkerDied, WorkersFailed
from tests.conftest import ROOT, music_like, wav_bytes
from tests.hostile_files import progressive_jpeg, radiance_hdr_posing_as_photo_cd


@pytest.fixture(scope="module")
def workers():
    pool = SongFeatureWorkers(2)
    yield pool
    pool.close()


def _assert_same_features(got, expected) -> None:
    # The same code in another process: equal but for float rounding (musicnn embeddings within 1e-4).
    duration_s, starts_s, features = got
    assert duration_s == pytest.approx(expected[0], abs=1e-6)
    np.testing.assert_allclose(starts_s, expected[1], rtol=0, atol=1e-9)
    assert features.dtype == np.float32
    np.testing.assert_allclose(features, expected[2], rtol=0, atol=1e-4)


def test_features_from_a_worker_equal_the_features_computed_here(workers, real_clip):
    long_song = wav_bytes(music_like(70.0, 44100, channels=2, seed=3), 44100)  # several windows
    for data in (real_clip[1], long_song):
        _assert_same_features(workers.song_features(data), song_features.song_features(data))
    assert len(workers.song_features(long_song)[1]) > 1


def test_a_song_worker_computes_on_one_thread(workers, real_clip):
    # Spinning BLAS threads cost a worker four times the CPU time of the work (core.workers.ONE_THREAD).
    workers.song_features(real_clip[1])
    for worker in workers._all:
        assert len(os.listdir(f"/proc/{worker.process.pid}/task")) == 1


@pytest.mark.parametrize("data", [
    b"",
    bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)),
    wav_bytes(music_like(0.2), 22050),
    wav_bytes(np.zeros(22050 * 3, np.float32), 22050),
], ids=["empty", "random bytes", "0.2 s", "silent"])
def test_a_file_that_is_not_a_song_gets_the_same_message_from_a_worker(workers, data):
    with pytest.raises(InputError) as here:
        song_features.song_features(data)
    with pytest.raises(InputError) as there:
        workers.song_features(data)
    assert type(there.value) is InputError and str(there.value) == str(here.value)


def test_a_worker_that_dies_gives_a_clear_message_and_the_next_song_is_analysed(workers, song_wav):
    for _ in range(workers.processes):  # each worker in turn: none is lost
        with pytest.raises(WorkerDied, match="ended unexpectedly.*Try it again"):
            workers.run(os._exit, 1)  # what a decoder crashing in a worker looks like to the server
    result = []  # with no worker left, the call would wait for ever: a daemon thread, given 60 s
    thread = threading.Thread(target=lambda: result.append(workers.song_features(song_wav)), daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert result, "no worker answered after the others died"
    _assert_same_features(result[0], song_features.song_features(song_wav))


def test_songs_from_8_threads_at_once_each_get_their_own_features(workers):
    songs = [wav_bytes(music_like(5.0 + k, 44100, seed=k), 44100) for k in range(8)]
    alone = [song_features.song_features(data) for data in songs]
    barrier = threading.Barrier(len(songs))

    def analyse(data):
        barrier.wait()
        return workers.song_features(data)

    with ThreadPoolExecutor(len(songs)) as pool:
        together = list(pool.map(analyse, songs))
    for got, expected in zip(together, alone):
        _assert_same_features(got, expected)


def test_the_song_mood_through_workers_is_the_mood_computed_here(workers, real_clip):
    runner = ModelRunner.load(cards.DEFAULT_MODELS["song"])
    name, data = real_clip
    there, here = predict_song(runner, data, name, workers.song_features), predict_song(runner, data, name)
    assert there["quadrant"] == here["quadrant"] and len(there["windows"]) == len(here["windows"])
    for key in ("valence", "arousal", "duration_s"):  # float rounding only: far below the 3 decimals shown
        assert there[key] == pytest.approx(here[key], abs=1e-5), key


def _ended(pid: int) -> bool:
    """The process has exited (gone, or a zombie its new parent has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_close_ends_the_workers():
    pool = SongFeatureWorkers(1)
    process = pool._all[0].process
    pool.close()
    assert process.returncode is not None


def test_the_workers_end_when_the_process_that_started_them_is_killed():
    """A server killed outright leaves no worker behind: each worker ends when its stdin closes."""
    code = ("import sys; from core.song.workers import SongFeatureWorkers; w = SongFeatureWorkers(2); "
            "print(*[x.process.pid for x in w._all], flush=True); sys.stdin.read()")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(pids) == 2 and not any(map(_ended, pids))
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while not all(map(_ended, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(map(_ended, pids)), "a worker outlived the process that started it"


def test_workers_that_cannot_start_say_so(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")  # a worker that exits at once
    with pytest.raises(WorkersFailed, match=r"ended as it started, with exit status 1"):
        SongFeatureWorkers(2)


def test_workers_that_die_and_cannot_start_again_say_so_instead_of_waiting(monkeypatch, song_wav):
    pool = SongFeatureWorkers(2)
    try:
        monkeypatch.setattr(sys, "executable", "/bin/false")  # from now on a new worker exits at once
        for _ in range(2):
            with pytest.raises(WorkerDied, match="ended unexpectedly"):
                pool.run(os._exit, 1)
        result = []  # a call that waited for a worker that never comes would hang the page
        thread = threading.Thread(target=lambda: result.append(pytest.raises(WorkerDied, pool.song_features, song_wav)),
                                  daemon=True)
        thread.start()
        thread.join(timeout=30)
        assert result, "the call still waits for a worker"
        assert "could not be started again" in str(result[0].value)
    finally:
        pool.close()


def test_a_worker_that_hangs_on_a_file_is_stopped_and_replaced(song_wav):
    pool = SongFeatureWorkers(1, timeout_s=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(WorkerDied, match="took over 1 s and was stopped"):
            pool.run(time.sleep, 30)  # what a decoder looping for ever looks like to the server
        assert time.monotonic() - started < 15
        _assert_same_features(pool.song_features(song_wav), song_features.song_features(song_wav))
    finally:
        pool.close()


# --- pictures -------------------------------------------------------------------------------------

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
            time.sleep(0.3)
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
