"""Song features computed in worker processes are the features computed here, file errors keep their
messages, and a worker that dies gives a message and is replaced."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from core import audio, cards
from core.errors import InputError
from core.predict import ModelRunner, predict_song
from core.workers import SongFeatureWorkers, WorkerDied
from tests.conftest import music_like, wav_bytes


@pytest.fixture(scope="module")
def workers():
    pool = SongFeatureWorkers(2)
    yield pool
    pool.close()


def _assert_same_features(got, expected) -> None:
    duration_s, starts_s, features = got
    assert duration_s == expected[0]
    np.testing.assert_array_equal(starts_s, expected[1])
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features, expected[2])


def test_features_from_a_worker_equal_the_features_computed_here(workers, real_clip):
    long_song = wav_bytes(music_like(70.0, 44100, channels=2, seed=3), 44100)  # several windows
    for data in (real_clip[1], long_song):
        _assert_same_features(workers.song_features(data), audio.song_features(data))
    assert len(workers.song_features(long_song)[1]) > 1


@pytest.mark.parametrize("data", [
    b"",
    bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)),
    wav_bytes(music_like(0.2), 22050),
    wav_bytes(np.zeros(22050 * 3, np.float32), 22050),
], ids=["empty", "random bytes", "0.2 s", "silent"])
def test_a_file_that_is_not_a_song_gets_the_same_message_from_a_worker(workers, data):
    with pytest.raises(InputError) as here:
        audio.song_features(data)
    with pytest.raises(InputError) as there:
        workers.song_features(data)
    assert type(there.value) is InputError and str(there.value) == str(here.value)


def test_a_worker_that_dies_gives_a_clear_message_and_the_next_song_is_analysed(workers, song_wav):
    with pytest.raises(WorkerDied, match="ended unexpectedly.*Try it again"):
        workers.run(os._exit, 1)  # what a decoder crashing in a worker looks like to the server
    _assert_same_features(workers.song_features(song_wav), audio.song_features(song_wav))


def test_songs_from_8_threads_at_once_each_get_their_own_features(workers):
    songs = [wav_bytes(music_like(5.0 + k, 44100, seed=k), 44100) for k in range(8)]
    alone = [audio.song_features(data) for data in songs]
    barrier = threading.Barrier(len(songs))

    def analyse(data):
        barrier.wait()
        return workers.song_features(data)

    with ThreadPoolExecutor(len(songs)) as pool:
        together = list(pool.map(analyse, songs))
    for got, expected in zip(together, alone):
        _assert_same_features(got, expected)


def test_the_song_mood_through_workers_is_the_mood_computed_here(workers, real_clip):
    if not cards.DEFAULT_MODELS["song"].exists():
        pytest.skip("the default song model is not trained")
    runner = ModelRunner.load(cards.DEFAULT_MODELS["song"])
    name, data = real_clip
    assert predict_song(runner, data, name, workers.song_features) == predict_song(runner, data, name)
