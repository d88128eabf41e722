import io
import json

import cv2
import librosa
import numpy as np
import pytest

from core.song import musicnn
from core.song import features as song_features
from core.errors import InputError
from core.face.data import EXPRESSIONS
from core.runner import ModelRunner
from core.predict import main as predict_main
from core.face.predict import predict_faces
from core.song.predict import predict_song
from tests.conftest import music_like, wav_bytes


@pytest.fixture(scope="module")
def song_runner(tiny_song_model):
    return ModelRunner.load(tiny_song_model)


@pytest.fixture(scope="module")
def face_runner(tiny_face_model):
    return ModelRunner.load(tiny_face_model)


def test_a_long_song_gets_a_mood_that_is_the_mean_of_its_windows(song_runner):
    result = predict_song(song_runner, wav_bytes(music_like(70.0, 44100), 44100), "long.wav")
    assert result["quadrant"] in {"Q1", "Q2", "Q3", "Q4"} and result["duration_s"] == pytest.approx(70.0)
    windows = result["windows"]
    # 23 whole 3-s patches: windows of 10 consecutive patches at most 3 patches (9 s) apart
    assert len(windows) == 6 and windows[0]["start_s"] == 0.0
    assert max(np.diff([w["start_s"] for w in windows])) <= 3 * musicnn.PATCH_S + 0.01
    window_s = song_features.WINDOW_PATCHES * musicnn.PATCH_S
    assert 70.0 - musicnn.PATCH_S <= windows[-1]["start_s"] + window_s <= 70.0
    assert result["valence"] == pytest.approx(np.mean([w["valence"] for w in windows]), abs=1e-6)
    assert result["arousal"] == pytest.approx(np.mean([w["arousal"] for w in windows]), abs=1e-6)


def test_a_song_is_scored_on_musicnn_patches_of_the_plain_librosa_path(song_runner):
    data = wav_bytes(music_like(70.0, 44100, channels=2, seed=3), 44100)
    scored = predict_song(song_runner, data)
    y, _ = librosa.load(io.BytesIO(data), sr=musicnn.SAMPLE_RATE_HZ)  # musicnn's own decoding
    mel = musicnn.log_mel(y)
    starts = musicnn.patch_starts(len(mel))
    embeddings = musicnn.default_musicnn().embeddings(musicnn.patches(mel, starts))
    _, windows = song_features.windows(embeddings, starts * musicnn.PATCH_S / musicnn.PATCH_FRAMES)
    np.testing.assert_allclose([[w["valence"], w["arousal"]] for w in scored["windows"]], song_runner(windows),
                               rtol=0, atol=1e-4)
    tags = scored["tags"]
    assert [t["tag"] for t in tags] == [musicnn.MSD_TAGS[i] for i in np.argsort(-embeddings[:, 200:].mean(0))[:5]]
    assert tags[0]["probability"] == pytest.approx(embeddings[:, 200:].mean(0).max(), abs=1e-4)


def test_a_song_longer_than_the_patch_budget_is_sampled_from_start_to_end(song_runner):
    seconds = 4 * 60.0
    result = predict_song(song_runner, wav_bytes(music_like(seconds, 16000, seed=4), 16000))
    windows = result["windows"]
    assert windows[0]["start_s"] == 0.0
    assert windows[-1]["start_s"] > seconds - 60  # the last window's patches reach the song's end
    duration, starts_s, patches = song_features.song_patches(wav_bytes(music_like(seconds, 16000, seed=4), 16000))
    assert len(patches) == song_features.MAX_PATCHES and starts_s[-1] + musicnn.PATCH_S <= seconds


def test_the_runner_is_safe_to_call_from_several_threads(song_runner):
    from concurrent.futures import ThreadPoolExecutor

    x = np.random.default_rng(0).normal(size=(4, song_features.WINDOW_PATCHES, musicnn.EMBEDDING_DIM))
    expected = song_runner(x)
    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(lambda k: song_runner(x[k:k + 1]), [0, 1, 2, 3] * 5))
    for k, out in enumerate(outputs):
        np.testing.assert_allclose(out[0], expected[k % 4], rtol=1e-4, atol=1e-5)


def test_song_cli_prints_one_json_line_per_file(tiny_song_model, tmp_path, capsys):
    good = tmp_path / "song.wav"
    good.write_bytes(wav_bytes(music_like(4.0), 22050))
    assert predict_main(["song", str(good), str(good), "--model", str(tiny_song_model)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    result = json.loads(lines[0])
    assert {"file", "valence", "arousal", "quadrant", "windows", "tags"} <= set(result)
    assert set(result["windows"][0]) == {"start_s", "valence", "arousal"}


def test_song_cli_fails_with_a_one_line_error_on_bad_files(tiny_song_model, tmp_path, capsys):
    bad = tmp_path / "notes.mp3"
    bad.write_text("not audio")
    assert predict_main(["song", str(bad), str(tmp_path / "missing.wav"), "--model", str(tiny_song_model)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith(f"error: {bad}: This file could not be read as audio")
    assert "No such file" in err[1]


def test_faces_are_scored_in_one_batch_with_seven_probabilities(face_runner):
    canvas = np.random.default_rng(5).integers(0, 256, (480, 640), dtype=np.uint8)
    data = cv2.imencode(".png", canvas)[1].tobytes()
    whole = predict_faces(face_runner, data, "one.png", whole_image=True)
    (face,) = whole["faces"]
    assert list(face["probabilities"]) == list(EXPRESSIONS)
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)


def test_face_cli_prints_json_and_refuses_a_non_image(tiny_face_model, tmp_path, capsys):
    photo = tmp_path / "blank.jpg"
    photo.write_bytes(cv2.imencode(".jpg", np.full((120, 160, 3), 200, np.uint8))[1].tobytes())
    assert predict_main(["face", str(photo), "--model", str(tiny_face_model)]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == []
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG but not really")
    assert predict_main(["face", str(bad), "--model", str(tiny_face_model)]) == 1
    assert "not an image" in capsys.readouterr().err
    with pytest.raises(InputError):
        predict_faces(ModelRunner.load(tiny_face_model), b"")


def test_monte_carlo_dropout_spreads_predictions_but_plain_calls_do_not(song_runner):
    x = np.random.default_rng(1).normal(size=(2, song_features.WINDOW_PATCHES, musicnn.EMBEDDING_DIM))
    samples = song_runner.mc_dropout(x, passes=8)
    assert samples.shape == (8, 2, 2)
    assert samples.std(axis=0).min() > 0  # dropout on: the passes differ
    np.testing.assert_allclose(song_runner(x), song_runner(x))  # plain calls stay deterministic
    # the passes centre near the plain prediction (dropout is unbiased in expectation)
    assert np.abs(samples.mean(axis=0) - song_runner(x)).max() < 5 * samples.std(axis=0).max() + 1e-3


def test_each_runner_is_traced_once_whatever_the_batch_and_passes(tiny_face_model):
    """One trace per runner (and one for its Monte Carlo copy), for any batch size or number of
    passes: why core.runner may drop TensorFlow's retracing warning about many runners."""
    from core.runner import ModelRunner

    runners = [ModelRunner.load(tiny_face_model) for _ in range(6)]
    for runner in runners:
        for batch in (1, 3, 8):
            runner(np.zeros((batch, 48, 48, 1), np.float32))
        for passes in (1, 5, 20):
            runner.mc_dropout(np.zeros((2, 48, 48, 1), np.float32), passes)
        assert runner._infer.experimental_get_tracing_count() == 1
        assert runner._mc_infer.experimental_get_tracing_count() == 1


def test_tensorflow_s_retracing_warning_about_many_runners_is_dropped(caplog):
    import logging

    from core.tf_runtime import import_keras

    import_keras()
    logger = logging.getLogger("tensorflow")
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        logger.warning("5 out of the last 5 calls to <function <lambda>> triggered tf.function retracing.")
        logger.warning("another warning")
    assert [r.getMessage() for r in caplog.records] == ["another warning"]


def test_a_picture_s_faces_become_rows_for_a_csv():
    from core.face.predict import face_rows

    result = {"file": "two.png", "faces": [
        {"box": [10, 20, 30, 40], "label": "happy", "probabilities": {n: (1.0 if n == "happy" else 0.0) for n in EXPRESSIONS}},
        {"box": [90, 20, 30, 40], "label": "sad", "probabilities": {n: (1.0 if n == "sad" else 0.0) for n in EXPRESSIONS}}]}
    rows = face_rows(result)
    assert [r["face"] for r in rows] == [1, 2] and rows[1]["x"] == 90 and rows[0]["label"] == "happy"
    assert list(rows[0])[:7] == ["file", "face", "x", "y", "width", "height", "label"] and rows[1]["sad"] == 1.0
