"""core/musicnn.py: the converted MSD musicnn reproduces musicnn's own outputs from the audio."""

from __future__ import annotations

import io

import librosa
import numpy as np
import pytest
import soundfile as sf

from core import cards
from core.song import musicnn
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


def _random_weights_with_dead_filters(model, rng):
    """Random weights everywhere (batch norms with non-trivial statistics), then the kernel of a
    third of each convolution's filters set to all zero, as weight decay left MSD musicnn's."""
    for layer in model.layers:
        values = [rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()]
        if type(layer).__name__ == "BatchNormalization":
            values[3] = rng.uniform(0.5, 2.0, values[3].shape).astype(np.float32)  # variance > 0
        if layer.name in musicnn.CONV_BATCH_NORMS:
            values[0][..., ::3] = 0.0
        if values:
            layer.set_weights(values)


def test_pruning_dead_filters_keeps_every_output():
    # Random weights with planted dead filters: the pruned model must give the full model's
    # taggram and penultimate layer (float32 rounding apart), including at the zero-padded edges.
    model = musicnn.build_musicnn(frontend_filters=0.25, midend_filters=16, backend_units=24, n_tags=5)
    _random_weights_with_dead_filters(model, np.random.default_rng(3))
    pruned = musicnn.prune_dead_filters(model)
    assert pruned.get_layer("conv2d").filters == len(range(1, 32, 3)) + len(range(2, 32, 3))  # 32 -> 21
    assert pruned.get_layer("conv2d_5_scatter").units == 16
    x = np.random.default_rng(4).uniform(0, 3, (3, musicnn.PATCH_FRAMES, musicnn.N_MELS)).astype(np.float32)
    for full, fast in zip(model(x, training=False), pruned(x, training=False)):
        np.testing.assert_allclose(np.asarray(fast), np.asarray(full), atol=1e-4, rtol=1e-5)


def test_the_app_runs_msd_musicnn_pruned_to_its_live_filters_with_the_same_outputs():
    network = musicnn.default_musicnn()
    assert network.pruned.count_params() < 0.7 * network.model.count_params()
    assert network.pruned.get_layer("conv2d").filters < 30  # of 204: the rest are dead
    x = _patches_of(synthetic_clip_wav())
    full_taggram, full_penultimate = (np.asarray(v) for v in network.model(x, training=False))
    taggram, penultimate = network(x)
    # Outputs of order 1 (tags in [0, 1], the penultimate layer within +-5): float32 rounding.
    np.testing.assert_allclose(taggram, full_taggram, atol=1e-5, rtol=0)
    np.testing.assert_allclose(penultimate, full_penultimate, atol=1e-5, rtol=0)


def test_the_log_mel_is_librosas_melspectrogram():
    # musicnn.log_mel re-does librosa's STFT and Slaney filters without librosa (no numba at a
    # worker's start); the log-mel of any signal must stay librosa's within float32 rounding.
    y = np.random.default_rng(5).normal(0, 0.3, musicnn.SAMPLE_RATE_HZ * 7 + 123).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=musicnn.SAMPLE_RATE_HZ, n_fft=musicnn.N_FFT,
                                         hop_length=musicnn.HOP_LENGTH, n_mels=musicnn.N_MELS).T
    expected = np.log10(10000 * mel + 1)
    got = musicnn.log_mel(y)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
