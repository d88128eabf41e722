"""`python -m core.train` (core/train.py): the CLI's arguments and the zoo through it; face training
(core/face/train.py) until tests/face/test_train.py takes it over."""

import json

import pytest

from core import cards
from core.train import main as train_main


@pytest.mark.slow  # trains
def test_a_tiny_face_training_writes_a_model_and_a_complete_card(tiny_face_model):
    card = cards.read_card(tiny_face_model)
    assert card["split"] == {"train": "usage 0 (Training)", "validation": "usage 1 (PublicTest)",
                             "n_train": 112, "n_val": 28}
    assert len(card["curves"]["val_accuracy"]) == 2
    assert len(card["validation"]["confusion"]) == 7 and card["validation"]["n"] == 28
    model, _ = cards.load_model(tiny_face_model)
    assert model.dtype_policy.name == "float32"
    assert model.count_params() == card["parameters"] < 15e6 / 4


def test_the_cli_refuses_an_unknown_builder_argument(tiny_music_dir, song_embedding_cache, tmp_path):
    with pytest.raises(ValueError, match="no argument"):
        train_main(["song", "--data", str(tiny_music_dir),
                    "--cache", str(song_embedding_cache), "--out", str(tmp_path / "x"),
                    "--config", json.dumps({"poling": "max"})])
    assert train_main(["song", "--data", str(tiny_music_dir),
                       "--cache", str(song_embedding_cache), "--out", str(tmp_path / "x"),
                       "--config", "{not json"]) == 2


@pytest.mark.slow  # trains
def test_the_zoo_trains_variants_that_differ_in_one_choice(tiny_music_dir, song_embedding_cache, tmp_path):
    from tests.conftest import TINY_SONG_CONFIG, TINY_SONG_TRAINING

    assert train_main(["song", "--zoo", "--only", "default,pooling_average", "--data", str(tiny_music_dir),
                       "--cache", str(song_embedding_cache),
                       "--out", str(tmp_path), "--config", json.dumps(TINY_SONG_CONFIG),
                       "--training", json.dumps({**TINY_SONG_TRAINING, "epochs": 1})]) == 0
    default = cards.read_card(tmp_path / "default.keras")
    average = cards.read_card(tmp_path / "pooling_average.keras")
    changed = {k for k in default["config"] if default["config"][k] != average["config"][k]}
    assert changed == {"pooling"} and average["config"]["pooling"] == "average"
    assert default["split"] == average["split"] and default["training"]["epochs"] == average["training"]["epochs"]
    assert train_main(["song", "--zoo", "--only", "nonsense", "--data", str(tiny_music_dir),
                       "--cache", str(song_embedding_cache)]) == 2


@pytest.mark.slow  # trains
def test_a_single_pass_face_model_can_be_given_the_mirror_average(tiny_fer_file, tmp_path):
    import numpy as np

    from tests.conftest import TINY_FACE_CONFIG, TINY_FACE_TRAINING

    assert train_main(["face", "--data", str(tiny_fer_file), "--out", str(tmp_path / "single"),
                       "--config", json.dumps(TINY_FACE_CONFIG),
                       "--training", json.dumps({**TINY_FACE_TRAINING, "mirror_average": False})]) == 0
    single = cards.read_card(tmp_path / "single.keras")
    assert not single["training"]["mirror_average"]
    assert train_main(["face", "--data", str(tiny_fer_file), "--mirror-average-of", str(tmp_path / "single.keras"),
                       "--out", str(tmp_path / "mirrored")]) == 0
    mirrored = cards.read_card(tmp_path / "mirrored.keras")
    assert mirrored["derived_from"]["sha256"] == single["model_file"]["sha256"]
    model, _ = cards.load_model(tmp_path / "mirrored.keras")
    inner = model.get_layer("face_cnn")
    x = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(model.predict_on_batch(x),
                               (inner.predict_on_batch(x) + inner.predict_on_batch(x[:, :, ::-1])) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="already"):  # not wrapped twice
        train_main(["face", "--data", str(tiny_fer_file), "--mirror-average-of", str(tmp_path / "mirrored.keras"),
                    "--out", str(tmp_path / "twice")])
    assert mirrored["curves"] == single["curves"] and mirrored["parameters"] == single["parameters"]
    assert mirrored["validation_single_pass"]["accuracy"] == single["validation"]["accuracy"]


@pytest.mark.slow  # trains
def test_face_training_can_continue_from_a_trained_model(tiny_face_model, tiny_fer_file, tmp_path):
    from tests.conftest import TINY_FACE_TRAINING

    assert train_main(["face", "--data", str(tiny_fer_file), "--continue-from", str(tiny_face_model),
                       "--out", str(tmp_path / "more"), "--training", json.dumps({**TINY_FACE_TRAINING, "epochs": 1})]) == 0
    source, more = cards.read_card(tiny_face_model), cards.read_card(tmp_path / "more.keras")
    assert more["config"] == source["config"] and more["continued_from"]["sha256"] == source["model_file"]["sha256"]
    assert more["training"]["epochs_run"] == source["training"]["epochs_run"] + 1
    assert len(more["curves"]["val_accuracy"]) == more["training"]["epochs_run"]


def test_face_augmentation_keeps_the_face_size_and_varies_each_face():
    import numpy as np

    from core.face.train import augment_faces

    faces = np.zeros((64, 48, 48), np.uint8)
    faces[:, :, :24] = 200  # bright left half: a flip moves the brightness right
    out = augment_faces(faces, np.random.default_rng(0))
    assert out.shape == (64, 48, 48) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 255
    flipped = out[:, :, 36:].mean(axis=(1, 2)) > out[:, :, :12].mean(axis=(1, 2))
    assert 16 < flipped.sum() < 48  # about half the faces mirrored
    assert len({round(float(o.sum())) for o in out}) > 50  # each face its own rotation/zoom/shift
