"""core/song_features.py: a song's patches, windows and tags, from bytes as the app gets them."""

from __future__ import annotations

import numpy as np
import pytest

from core.song import musicnn
from core.song import features as song_features
from core.errors import InputError
from tests.conftest import music_like, wav_bytes


def test_a_30_s_clip_is_one_window_of_its_10_patches():
    duration_s, starts_s, windows = song_features.song_features(wav_bytes(music_like(30.0, 44100, channels=2), 44100))
    assert duration_s == pytest.approx(30.0, abs=1e-6)
    np.testing.assert_allclose(starts_s, [0.0], rtol=0, atol=1e-9)
    assert windows.shape == (1, 10, musicnn.EMBEDDING_DIM) and windows.dtype == np.float32
    tags = windows[0, :, musicnn.PENULTIMATE_UNITS:]
    assert ((tags >= 0) & (tags <= 1)).all()


def test_a_short_clip_is_one_shorter_window_and_a_clip_under_3_s_one_padded_patch():
    assert song_features.song_features(wav_bytes(music_like(10.0), 22050))[2].shape == (1, 3, 250)
    _, _, patches = song_features.song_patches(wav_bytes(music_like(1.5), 22050))
    assert patches.shape == (1, musicnn.PATCH_FRAMES, musicnn.N_MELS) and (patches[0, -50:] == 0).all()


@pytest.mark.parametrize("n_patches, expected", [(1, [0]), (10, [0]), (11, [0, 1]), (23, [0, 3, 5, 8, 10, 13]),
                                                 (64, list(np.linspace(0, 54, 19).round().astype(int)))])
def test_windows_start_at_most_3_patches_apart_from_the_first_to_the_last(n_patches, expected):
    starts = song_features.window_starts(n_patches)
    assert starts.tolist() == expected
    assert starts[-1] + min(n_patches, song_features.WINDOW_PATCHES) == n_patches
    embeddings = np.arange(n_patches, dtype=np.float32)[:, None] * np.ones((1, 250), np.float32)
    window_starts_s, windows = song_features.windows(embeddings, np.arange(n_patches) * 3.0)
    np.testing.assert_allclose(window_starts_s, starts * 3.0, rtol=0, atol=1e-9)
    assert windows[:, :, 0].tolist() == [list(range(s, s + min(n_patches, 10))) for s in starts]


def test_the_shifted_training_grid_starts_half_a_patch_later():
    data = wav_bytes(music_like(30.0, 16000, seed=2), 16000)
    _, starts0, p0 = song_features.song_patches(data)
    _, starts1, p1 = song_features.song_patches(data, offset_frames=song_features.TRAINING_OFFSETS_FRAMES[1])
    assert len(p0) == 10 and len(p1) == 9
    assert starts1[0] == pytest.approx(93 * musicnn.HOP_LENGTH / musicnn.SAMPLE_RATE_HZ, rel=1e-6)
    # the same frames, half a patch on (one decoding and mel per call: the same up to float rounding)
    np.testing.assert_allclose(p1[0, :94], p0[0, 93:], rtol=0, atol=1e-4)


def test_the_top_tags_count_each_patch_once_however_many_windows_hold_it():
    embeddings = np.zeros((12, 250), np.float32)
    embeddings[:, 200 + 3] = 0.9            # 'indie' everywhere
    embeddings[:2, 200 + 0] = 1.0           # 'rock' in the first two patches only
    embeddings[:, 0] = np.arange(12)        # patches differ
    _, windows = song_features.windows(embeddings, np.arange(12) * 3.0)
    assert len(windows) == 2  # patches 0-9 and 2-11: the middle ones twice
    tags = song_features.song_tags(windows, top=2)
    assert [t["tag"] for t in tags] == ["indie", "rock"]
    assert tags[1]["probability"] == pytest.approx(2 / 12, rel=1e-6)
    assert song_features.tags_text(tags) == "indie 0.90 · rock 0.17"


def test_a_file_that_is_not_a_song_gets_the_audio_message():
    with pytest.raises(InputError, match="silent"):
        song_features.song_features(wav_bytes(np.zeros(22050 * 3, np.float32), 22050))
    with pytest.raises(InputError, match="could not be read as audio"):
        song_features.song_features(b"not audio at all" * 100)


def test_the_song_file_of_a_music_folder_is_found_by_id_in_any_format(tmp_path):
    (tmp_path / "songs").mkdir()
    (tmp_path / "songs" / "MT1.opus").write_bytes(b"x")
    (tmp_path / "songs" / "MT2.txt").write_bytes(b"x")
    assert song_features.song_file(tmp_path, "MT1").name == "MT1.opus"
    with pytest.raises(FileNotFoundError, match="MT2"):
        song_features.song_file(tmp_path, "MT2")
