"""A song's mood: musicnn patch embeddings in 30-s windows, scored by the song model (core/song/predict.py)."""

import io

import librosa
import numpy as np
import pytest

from core.song import features as song_features
from core.song import musicnn
from core.song.predict import predict_song
from tests.conftest import music_like, wav_bytes


def test_a_long_song_gets_a_mood_that_is_the_mean_of_its_windows(song_runner):
    result = predict_song(song_runner, wav_bytes(music_like(70.0, 44100), 44100), "long.wav")
    assert result["quadrant"] in {"Q1", "Q2", "Q3", "Q4"} and result["duration_s"] == pytest.approx(70.0, rel=1e-6)
    windows = result["windows"]
    # 23 whole 3-s patches: windows of 10 consecutive patches at most 3 patches (9 s) apart
    assert len(windows) == 6 and windows[0]["start_s"] == pytest.approx(0.0, abs=1e-9)
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
    assert windows[0]["start_s"] == pytest.approx(0.0, abs=1e-9)
    assert windows[-1]["start_s"] > seconds - 60  # the last window's patches reach the song's end
    duration, starts_s, patches = song_features.song_patches(wav_bytes(music_like(seconds, 16000, seed=4), 16000))
    assert len(patches) == song_features.MAX_PATCHES and starts_s[-1] + musicnn.PATCH_S <= seconds
