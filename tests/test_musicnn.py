"""core/musicnn.py: the converted MSD musicnn reproduces musicnn's own outputs from the audio."""

from __future__ import annotations

import io

import librosa
import numpy as np
import pytest
import soundfile as sf

from core import cards, musicnn
from tests.fixtures.musicnn_reference import REFERENCE, synthetic_clip_wav


def _patches_of(data: bytes) -> np.ndarray:
    """musicnn's own way from a file: librosa.load(sr=16000) (libsndfile, channel mean, soxr_hq)."""
    y, sample_rate_hz = sf.read(io.BytesIO(data), dtype="float32")
    y = librosa.resample(y, orig_sr=sample_rate_hz, target_sr=musicnn.SAMPLE_RATE_HZ, res_type="soxr_hq")
    mel = musicnn.log_mel(y)
    return musicnn.patches(mel, musicnn.patch_starts(len(mel)))


def test_the_keras_model_reproduces_musicnns_taggram_and_penultimate_layer():
    reference = np.load(REFERENCE)
    taggram, penultimate = musicnn.default_musicnn()(_patches_of(synthetic_clip_wav()))
    assert taggram.shape == reference["taggram"].shape == (3, len(musicnn.MSD_TAGS))
    np.testing.assert_allclose(taggram, reference["taggram"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(penultimate, reference["penultimate"], atol=1e-4, rtol=0)
    assert tuple(reference["tags"]) == musicnn.MSD_TAGS


def test_the_card_names_the_source_its_licence_and_the_checkpoint_files_read():
    card = cards.read_card(musicnn.MODEL_PATH)
    assert card["source"]["package"] == "musicnn" and card["source"]["version"] == "0.1.0"
    assert card["source"]["licence"] == "ISC"
    assert {".index", ".data-00000-of-00001"} <= set(card["source"]["files_read"])
    assert all(len(digest) == 64 for digest in card["source"]["files_read"].values())
    assert card["tags"] == list(musicnn.MSD_TAGS)
    assert card["model_file"]["sha256"] == cards.sha256_file(musicnn.MODEL_PATH)


def test_loud_audio_gives_finite_tags():
    # musicnn's float16 mel power overflows to inf on loud frames (NaN tags); here it does not.
    t = np.arange(4 * musicnn.SAMPLE_RATE_HZ) / musicnn.SAMPLE_RATE_HZ
    square = np.sign(np.sin(2 * np.pi * 100 * t)).astype(np.float32)
    mel = musicnn.log_mel(square)
    assert np.log10(10000 * mel.max()) > 0 and np.isfinite(mel).all()
    taggram, penultimate = musicnn.default_musicnn()(musicnn.patches(mel, musicnn.patch_starts(len(mel))))
    assert np.isfinite(taggram).all() and np.isfinite(penultimate).all()


def test_patches_are_whole_3_s_patches_from_the_start_or_spread_over_a_long_song():
    assert musicnn.patch_starts(1876).tolist() == list(range(0, 1684, 187))  # a 30-s clip: 10 patches
    assert musicnn.patch_starts(100).tolist() == [0]                          # shorter than a patch
    spread = musicnn.patch_starts(100_000, max_patches=8)
    assert len(spread) == 8 and spread[0] == 0 and spread[-1] + musicnn.PATCH_FRAMES <= 100_000
    assert musicnn.patches(np.ones((100, musicnn.N_MELS), np.float32), np.array([0])).shape == (1, 187, 96)


def test_a_checkpoint_with_a_variable_the_model_does_not_use_is_refused():
    model = musicnn.build_musicnn()
    weights = {}
    for layer in model.layers:
        for variable in layer.weights:
            name = variable.path.split("/")[-1]
            value = np.asarray(variable.numpy())
            if type(layer).__name__ == "Conv1D" and name == "kernel":
                value = value[:, :, None, :]
            weights[f"{layer.name}/{name}"] = value
    musicnn.load_checkpoint(model, weights)
    with pytest.raises(ValueError, match="not used"):
        musicnn.load_checkpoint(model, {**weights, "conv2d_99/kernel": np.zeros(1)})
    with pytest.raises(ValueError, match="positive"):
        musicnn.build_musicnn(n_tags=0)
