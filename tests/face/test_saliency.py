"""Grad-CAM (core.face.saliency): shape and range, and a map that finds a cue planted in the faces."""

import time

import numpy as np
import pytest

from core.face import saliency
from core.variants.zoo import model_path
from core.face.served import FaceEnsemble
from core.face.model import build_face_cnn
from core.runner import ModelRunner

STRIPE_ROWS = slice(10, 20)  # where tests/conftest.py's tiny_fer_file puts its learnable cue


def _fer_arrays(path):
    with np.load(path) as npz:
        return npz["pixels"][..., None].astype(np.float32), npz["label"].astype(int)


def test_the_map_is_48_by_48_in_0_to_1_from_the_last_convolution_block(tiny_fer_file):
    x, label = _fer_arrays(tiny_fer_file)
    for pooling in ("max", "average", "strided"):
        model = build_face_cnn(blocks=3, filters=4, dense_units=(8,), pooling=pooling)
        cam = saliency.GradCam(model)
        assert cam.layer_name == "block3_conv2 input"
        maps = cam(x[:9], label[:9])
        assert maps.shape == (9, 48, 48) and maps.dtype == np.float32
        assert maps.min() >= 0 and maps.max() <= 1
        # every map that is not all zero reaches 1 (each is scaled by its own maximum)
        peaks = maps.reshape(9, -1).max(axis=1)
        assert np.all((peaks == 0) | np.isclose(peaks, 1))
        assert (peaks > 0).any()


def test_few_maps_of_real_faces_are_empty(fer_faces, face_runner):
    """At the zoo's block output (after which come pooling and a Flatten head), the channel-mean
    weights cancel and 28-60% of the maps of real faces were all zero (42% of 200 here for the
    default); not so at the last convolution's input."""
    from core import cards

    runner = face_runner
    x = fer_faces[:200, ..., None].astype(np.float32)
    labels = runner(x).argmax(axis=1)
    empty = saliency.GradCam(runner.model)(x, labels).reshape(len(x), -1).max(axis=1) == 0
    assert empty.mean() <= 0.02, empty.mean()


def test_the_map_is_computed_well_under_a_second_per_face(tiny_fer_file):
    x, label = _fer_arrays(tiny_fer_file)
    cam = saliency.GradCam(build_face_cnn())  # the zoo's shape: 4 blocks from 32 filters
    cam(x[:1], label[:1])  # traced once
    start = time.perf_counter()
    for i in range(5):
        cam(x[i:i + 1], label[i:i + 1])
    assert (time.perf_counter() - start) / 5 < 0.25


def _stripe_reader(x: np.ndarray, label: np.ndarray):
    """A small CNN (no batch normalisation, so that 20 epochs on 140 faces give a model that works in
    inference mode) trained on the faces: it can only tell the classes by the stripe."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1))
    h = layers.Rescaling(1 / 255)(inputs)
    h = layers.MaxPooling2D(2)(layers.Conv2D(8, 3, padding="same", activation="relu")(h))
    h = layers.MaxPooling2D(2)(layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv")(h))
    model = keras.Model(inputs, layers.Dense(7, activation="softmax")(layers.Flatten()(h)))
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x, label, epochs=20, batch_size=14, verbose=0)
    return model


@pytest.fixture(scope="module")
def stripe_reader(tiny_fer_file):
    x, label = _fer_arrays(tiny_fer_file)
    model = _stripe_reader(x, label)
    assert np.mean(model.predict(x, verbose=0).argmax(1) == label) > 0.9, "the planted cue was not learnt"
    return model


def _heat_on_the_stripe(maps: np.ndarray) -> tuple[float, float]:
    """(mean heat on the stripe rows, elsewhere) over the maps that are not all zero."""
    lit = maps[maps.reshape(len(maps), -1).max(axis=1) > 0]
    assert len(lit) >= len(maps) // 2, "most maps should show something"
    elsewhere = np.concatenate([lit[:, :STRIPE_ROWS.start], lit[:, STRIPE_ROWS.stop:]], axis=1)
    return float(lit[:, STRIPE_ROWS].mean()), float(elsewhere.mean())


@pytest.mark.slow  # trains a model
def test_the_map_lights_up_the_planted_stripe(tiny_fer_file, stripe_reader):
    x, label = _fer_arrays(tiny_fer_file)
    cam = saliency.GradCam(stripe_reader)
    assert cam.layer_name == "last_conv input"
    on, off = _heat_on_the_stripe(cam(x, label))
    assert on > 3 * off, (on, off)
    # Moving the stripe moves the heat: the same faces with the stripe rolled 24 rows down.
    moved = np.roll(x, 24, axis=1)
    maps = cam(moved, label)
    lit = maps[maps.reshape(len(maps), -1).max(axis=1) > 0]
    assert lit[:, 34:44].mean() > 3 * lit[:, STRIPE_ROWS].mean()


@pytest.mark.slow  # trains a model
def test_an_ensembles_map_is_the_mean_of_its_members_mirrored_maps(tiny_fer_file, stripe_reader):
    x, label = _fer_arrays(tiny_fer_file)
    other = build_face_cnn(blocks=2, filters=4, dense_units=(8,))
    members = {"stripe": ModelRunner(stripe_reader, {}), "other": ModelRunner(other, {})}
    faces_, classes = x[:14], label[:14]
    for mirror in (False, True):
        ensemble = FaceEnsemble(members, mirror=mirror)
        expected = []
        for runner in members.values():
            cam = saliency.GradCam(runner.model)
            expected.append(saliency.normalised(saliency.upsampled(cam.raw(faces_, classes))))
            if mirror:
                seen = saliency.upsampled(cam.raw(faces_[:, :, ::-1], classes))[:, :, ::-1]
                expected.append(saliency.normalised(seen))
        np.testing.assert_allclose(saliency.face_heat_maps(ensemble, faces_, classes),
                                   saliency.normalised(np.mean(expected, axis=0)), atol=1e-5)
    # through the ensemble, the stripe still lights up
    on, off = _heat_on_the_stripe(saliency.face_heat_maps(FaceEnsemble(members, mirror=True), x, label))
    assert on > 2 * off, (on, off)


def test_the_overlay_keeps_the_face_where_the_map_is_cold():
    face = np.tile(np.linspace(0, 255, 48, dtype=np.float32), (48, 1))
    heat = np.zeros((48, 48), np.float32)
    heat[:24] = 1.0
    picture = saliency.overlay(face, heat)
    assert picture.shape == (saliency.OVERLAY_SIZE_PX, saliency.OVERLAY_SIZE_PX, 3) and picture.dtype == np.uint8
    cold = picture[-60:]  # the bottom rows, far from the hot half: the grey face unchanged
    assert np.all(cold[..., 0] == cold[..., 1]) and np.all(cold[..., 1] == cold[..., 2])
    hot = picture[:60].astype(int)  # the hot half is tinted red ('jet' at 1)
    assert (hot[..., 0] - hot[..., 2]).mean() > 50
