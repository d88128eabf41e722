"""The app's models are shared by every session: calls from 8 threads at once give the single-threaded answers.

Streamlit runs each session's script in its own thread, and `webapp/loaders.py` hands them all
the same `ModelRunner` (st.cache_resource). The threads start together (a barrier), on a fresh
runner, so the first call's tracing also happens under contention.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from core import cards
from core.runner import ModelRunner
from core.variants.zoo import model_path
from core.face.predict import predict_faces
from core.song.predict import predict_song
from tests.conftest import FER_FILE, has_shared, music_like, wav_bytes

THREADS = 8
ROUNDS = 3
# Float32 on several intra-op threads: the same input may differ in the last bits, never more.
RTOL, ATOL = 1e-5, 1e-6


def _all_at_once(fn, inputs: list) -> list:
    """fn on every input, each in its own thread, all released at the same moment."""
    barrier = threading.Barrier(len(inputs))

    def call(x):
        barrier.wait()
        return fn(x)

    with ThreadPoolExecutor(len(inputs)) as pool:
        return list(pool.map(call, inputs))


def _fresh_runner(task: str) -> ModelRunner:
    return ModelRunner.load(cards.DEFAULT_MODELS["song"] if task == "song" else model_path("face", "default"))


def _song_batches() -> list[np.ndarray]:
    """8 batches of 1 to 3 different 30-s windows of musicnn patch embeddings (the song model's
    input, core.variants.compare.INPUT_SHAPES): tags in 0..1 as musicnn gives them, the rest around 0."""
    from core.variants.compare import INPUT_SHAPES

    rng = np.random.default_rng(0)
    windows = rng.normal(0, 1, (6, *INPUT_SHAPES["song"])).astype(np.float32)
    windows[..., -50:] = rng.uniform(0, 1, (6, INPUT_SHAPES["song"][0], 50))
    return [np.stack([windows[(k + j) % 6] for j in range(1 + k % 3)]) for k in range(THREADS)]


def _face_batches() -> list[np.ndarray]:
    """8 batches of 1 to 4 different 48x48 grey crops (0..255), real faces where ../shared is present."""
    if has_shared(FER_FILE):
        with np.load(FER_FILE) as npz:
            crops = npz["pixels"][np.flatnonzero(npz["usage"] == 1)[:10]].astype(np.float32)
    else:
        crops = np.random.default_rng(0).uniform(0, 255, (10, 48, 48)).astype(np.float32)
    return [crops[k:k + 1 + k % 4, :, :, None] for k in range(THREADS)]


# The song model's fresh load and trace in 8 threads takes over 10 s on 2 cores: slow; the face one stays fast.
@pytest.mark.parametrize("task", [pytest.param("song", marks=pytest.mark.slow), "face"])
def test_one_runner_called_from_8_threads_at_once_gives_the_single_threaded_results(task):
    runner = _fresh_runner(task)  # not traced yet: the trace itself happens in 8 threads at once
    batches = _song_batches() if task == "song" else _face_batches()
    together = [_all_at_once(runner, batches) for _ in range(ROUNDS)]
    alone = [runner(x) for x in batches]
    # The inputs give clearly different outputs, so a mix-up between threads would show.
    assert not np.allclose(alone[0][0], alone[1][0], rtol=RTOL, atol=1e-3)
    for outputs in together:
        for got, expected in zip(outputs, alone):
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.slow  # 8 sessions through both models (over 10 s on 2 cores)
def test_songs_and_photos_from_8_sessions_at_once_get_their_own_results():
    song_runner, face_runner = _fresh_runner("song"), _fresh_runner("face")
    songs = [wav_bytes(music_like(4.0 + k, 44100, seed=k), 44100) for k in range(THREADS // 2)]
    canvas = np.full((480, 640), 128, np.uint8)
    photos = []
    for k in range(THREADS // 2):
        picture = canvas.copy()
        picture[100:260, 200 + 20 * k:360 + 20 * k] = cv2.resize(_face_batches()[k][0, :, :, 0].astype(np.uint8),
                                                                 (160, 160))
        photos.append(cv2.imencode(".png", picture)[1].tobytes())

    def analyse(job):
        kind, i = job
        if kind == "song":
            return predict_song(song_runner, songs[i], f"song{i}")
        return predict_faces(face_runner, photos[i], f"photo{i}", whole_image=i % 2 == 1)

    jobs = [("song", i) for i in range(THREADS // 2)] + [("photo", i) for i in range(THREADS // 2)]
    together = _all_at_once(analyse, jobs)
    alone = [analyse(job) for job in jobs]
    for got, expected in zip(together, alone):
        assert got["file"] == expected["file"]
        if "valence" in expected:
            assert got["valence"] == pytest.approx(expected["valence"], rel=RTOL, abs=ATOL)
            assert got["arousal"] == pytest.approx(expected["arousal"], rel=RTOL, abs=ATOL)
            assert len(got["windows"]) == len(expected["windows"])
        else:
            assert [f["box"] for f in got["faces"]] == [f["box"] for f in expected["faces"]]
            for f_got, f_expected in zip(got["faces"], expected["faces"]):
                assert f_got["probabilities"] == pytest.approx(f_expected["probabilities"], rel=RTOL, abs=ATOL)
    assert any(r.get("faces") for r in alone)  # at least the whole-picture ones were scored


def test_faces_found_from_8_threads_at_once_match_one_at_a_time_with_one_detector_per_cpu():
    from core.face import detect as faces

    canvas = np.full((480, 640), 128, np.uint8)
    pictures = []
    for k in range(THREADS):
        picture = canvas.copy()
        side = 120 + 10 * k
        picture[80:80 + side, 100 + 20 * k:100 + 20 * k + side] = cv2.resize(
            _face_batches()[k % len(_face_batches())][0, :, :, 0].astype(np.uint8), (side, side))
        pictures.append(cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR))
    alone = [faces.detect_faces(p) for p in pictures]
    together = _all_at_once(faces.detect_faces, pictures)
    assert together == alone and sum(map(bool, alone)) >= THREADS // 2  # most pictures show a found face
    assert 1 <= faces._detectors_made <= faces.MAX_DETECTORS
