import numpy as np
import pytest

from core.face.model import EXPRESSIONS, build_face_cnn


def test_the_default_face_cnn_is_the_seeds_four_blocks_of_two_3x3_convolutions_and_7_outputs():
    model = build_face_cnn()
    types = [type(layer).__name__ for layer in model.layers]
    assert model.input_shape == (None, 48, 48, 1) and model.output_shape == (None, 7)
    assert types.count("MaxPooling2D") == 4 and types.count("Conv2D") == 8
    conv = model.get_layer("block1_conv1")
    assert conv.kernel_size == (3, 3) and conv.padding == "same" and conv.strides == (1, 1)
    assert model.get_layer("block1_dropout").rate == 0.25
    assert [model.get_layer(f"block{b}_conv1").filters for b in (1, 2, 3, 4)] == [32, 64, 128, 256]
    assert len(EXPRESSIONS) == 7 and EXPRESSIONS[3] == "happy"


@pytest.mark.parametrize("pooling, layer", [("max", "MaxPooling2D"), ("average", "AveragePooling2D"),
                                            ("strided", None)])
def test_pooling_choices_halve_the_map_each_block(pooling, layer):
    model = build_face_cnn(pooling=pooling, blocks=3)
    types = [type(l).__name__ for l in model.layers]
    if layer:
        assert types.count(layer) == 3
    else:
        assert not any("Pooling" in t for t in types)
        assert model.get_layer("block3_conv2").strides == (2, 2)
    assert model.get_layer("flatten").input.shape[1:3] == (6, 6)
    probabilities = model.predict_on_batch(np.zeros((2, 48, 48, 1), np.float32))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_dropout_zero_removes_the_dropout_layers():
    model = build_face_cnn(dropout=0.0, dense_dropout=0.0)
    assert not any(type(l).__name__ == "Dropout" for l in model.layers)
    with pytest.raises(ValueError, match="pooling"):
        build_face_cnn(pooling="median")
