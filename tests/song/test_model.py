import numpy as np
import pytest

from core.song.model import build_song_crnn, fold_target_scaling


def _layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


def test_the_default_song_crnn_is_the_seeds_layers_over_musicnn_patch_embeddings():
    model = build_song_crnn()
    assert model.input.shape[1:] == (None, 250) and type(model.layers[1]).__name__ == "Normalization"
    types = _layer_types(model)
    assert types.count("Conv1D") == 2 and types.count("MaxPooling1D") == 2
    assert types.count("Dropout") == 2 + 3 and model.get_layer("dropout1").rate == 0.3
    assert model.get_layer("lstm1").units == 128 and model.get_layer("lstm1").return_sequences
    assert "GlobalAveragePooling1D" in types  # the seed's Pattern 3
    assert [model.get_layer(f"dense{i}").units for i in (1, 2, 3)] == [128, 64, 32]
    assert model.output_shape == (None, 2)
    assert model.get_layer("valence_arousal").activation.__name__ == "linear"


def test_stacked_lstm_summary_returns_the_last_step():
    model = build_song_crnn(summary="lstm")
    lstms = [layer for layer in model.layers if type(layer).__name__ == "LSTM"]
    assert [l.units for l in lstms] == [128, 64]
    assert [l.return_sequences for l in lstms] == [True, False]


@pytest.mark.parametrize("kwargs, pooled_frames", [
    ({"pooling": "max", "pool_size": 2, "pool_padding": "valid"}, 646 // 2 // 2),
    ({"pooling": "average", "pool_size": 3, "pool_padding": "valid"}, 646 // 3 // 3),
    ({"pooling": "max", "pool_size": 4, "pool_padding": "valid"}, 646 // 4 // 4),
    ({"pooling": "max", "pool_size": 2}, -(-(-(-646 // 2)) // 2)),  # "same": rounded up
    ({"pooling": "none"}, 646),
])
def test_pooling_choices_set_the_sequence_length_the_lstm_sees(kwargs, pooled_frames):
    model = build_song_crnn(input_features="logmel", **kwargs)
    assert model.get_layer("lstm1").input.shape[1] is None  # any number of frames
    x = np.random.default_rng(0).uniform(-80, 0, (2, 646, 128)).astype(np.float32)
    import keras
    probe = keras.Model(model.input, model.get_layer("lstm1").input)
    assert probe.predict_on_batch(x).shape == (2, pooled_frames, 128)
    assert model.predict_on_batch(x).shape == (2, 2)


def test_spatial_dropout_global_max_and_bidirectional_add_their_layers_and_dropout_adds_no_weights():
    model = build_song_crnn(spatial_dropout=True, summary="global_max", bidirectional=True)
    types = _layer_types(model)
    assert types.count("SpatialDropout1D") == 2
    assert "GlobalMaxPooling1D" in types and types.count("Bidirectional") == 1
    assert build_song_crnn(dropout=0.0, dense_dropout=(0, 0, 0)).count_params() == build_song_crnn().count_params()


@pytest.mark.parametrize("steps", [1, 3, 10, 64])
def test_a_sequence_of_any_number_of_patches_gets_one_prediction(steps):
    model = build_song_crnn(pool_size=4)
    x = np.random.default_rng(2).normal(size=(2, steps, 250)).astype(np.float32)
    assert model.predict_on_batch(x).shape == (2, 2)


def test_bad_choices_are_refused():
    with pytest.raises(ValueError, match="pooling"):
        build_song_crnn(pooling="median")
    with pytest.raises(ValueError, match="summary"):
        build_song_crnn(summary="attention")
    with pytest.raises(ValueError, match="input_features"):
        build_song_crnn(input_features="chroma")
    with pytest.raises(ValueError, match="pool_padding"):
        build_song_crnn(pool_padding="causal")


def test_folding_the_target_scaling_gives_raw_values():
    model = build_song_crnn(input_features="logmel", conv_filters=(4,), lstm_units=(4, 4), dense_units=(4,),
                            dense_dropout=(0,))
    x = np.random.default_rng(1).uniform(-80, 0, (3, 100, 128)).astype(np.float32)
    z = model.predict_on_batch(x)
    mean, std = np.array([0.5, 0.48]), np.array([0.22, 0.12])
    fold_target_scaling(model, mean, std)
    np.testing.assert_allclose(model.predict_on_batch(x), z * std + mean, rtol=1e-5, atol=1e-6)
