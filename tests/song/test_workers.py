"""Song features computed in worker processes (core/song/workers.py) are the features computed
here, on one thread each, and file errors keep their messages."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from core.song import features as song_features
from core.errors import InputError
from core.song.predict import predict_song
from core.song.workers import SongFeatureWorkers
from core.workers import WorkerDied
from tests.conftest import music_like, wav_bytes


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


@pytest.mark.slow  # starts and restarts song worker processes (over 10 s on 2 cores)
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


def test_the_song_mood_through_workers_is_the_mood_computed_here(workers, real_clip, song_runner):
    name, data = real_clip
    there, here = predict_song(song_runner, data, name, workers.song_features), predict_song(song_runner, data, name)
    assert there["quadrant"] == here["quadrant"] and len(there["windows"]) == len(here["windows"])
    for key in ("valence", "arousal", "duration_s"):  # float rounding only: far below the 3 decimals shown
        assert there[key] == pytest.approx(here[key], abs=1e-5), key
