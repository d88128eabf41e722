"""The face models served on LiteRT (core/face/served.py, written by core/face/export.py) give what
their Keras files give, mirror average included, and serving them imports no TensorFlow."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import cards
from core.errors import ModelFileError
from core.face import served
from tests.conftest import FER_FILE, require_shared

FACE_MODELS = cards.MODELS_DIR / "face"
ENSEMBLE = cards.DEFAULT_MODELS["face"]
TOLERANCE = 1e-4  # on a probability (issue 24)


def public_test(count: int) -> np.ndarray:
    """The first `count` PublicTest faces, (n, 48, 48, 1) float32 0..255."""
    require_shared(FER_FILE)
    with np.load(FER_FILE) as npz:
        return npz["pixels"][np.flatnonzero(npz["usage"] == 1)[:count]][..., None].astype(np.float32)


def exported_models() -> list[Path]:
    return [p for p in sorted(FACE_MODELS.glob("*.keras")) if cards.read_card(p).litert_file]


@pytest.fixture(scope="module")
def ensemble() -> served.FaceEnsemble:
    return served.FaceEnsemble.load()


def test_every_face_model_has_its_checked_tflite_under_15_mb():
    models = sorted(FACE_MODELS.glob("*.keras"))
    assert models and exported_models() == models  # python -m core.face.export writes them all
    for model in models:
        entry = cards.read_card(model).litert_file
        path = model.with_name(entry["name"])
        assert path.suffix == ".tflite" and entry["size_bytes"] == path.stat().st_size < 15_000_000
        assert cards.sha256_file(path) == entry["sha256"]
        assert entry["made_from_sha256"] == cards.read_card(model).model_file["sha256"]
        assert entry["max_abs_diff_vs_keras"] <= TOLERANCE


def test_the_mirror_average_makes_a_face_and_its_mirror_image_score_alike(ensemble):
    x = public_test(16)
    assert ensemble.mirror and len(ensemble.members) == len(json.loads(ENSEMBLE.read_text())["members"])
    p = ensemble(x)
    assert p.shape == (16, 7) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(ensemble(served.mirrored(x)), p, atol=1e-6)
    by_hand = np.mean([(m(x) + m(served.mirrored(x))) / 2 for m in ensemble.members.values()], axis=0)
    np.testing.assert_allclose(p, by_hand, atol=1e-6)
    assert ensemble(x[:0]).shape == (0, 7)


def test_serving_the_ensemble_imports_neither_tensorflow_nor_keras():
    require_shared(FER_FILE)
    code = ("import sys, numpy as np\n"
            "from core.face.served import FaceEnsemble\n"
            f"x = np.load({str(FER_FILE)!r})['pixels'][:4, ..., None].astype(np.float32)\n"
            "p = FaceEnsemble.load()(x)\n"
            "assert p.shape == (4, 7), p.shape\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def copy_of_the_ensemble(tmp_path: Path) -> Path:
    """The ensemble's card, its members' cards and .tflite files (no .keras), in tmp_path."""
    card = json.loads(ENSEMBLE.read_text())
    shutil.copy(ENSEMBLE, tmp_path / ENSEMBLE.name)
    for member in card["members"]:
        keras_path = FACE_MODELS / member["file"]
        shutil.copy(cards.card_path(keras_path), tmp_path)
        shutil.copy(keras_path.with_name(cards.read_card(keras_path).litert_file["name"]), tmp_path)
    return tmp_path / ENSEMBLE.name


def test_a_tflite_that_is_not_the_one_its_card_names_is_refused(tmp_path):
    card_path = copy_of_the_ensemble(tmp_path)
    served.FaceEnsemble.load(card_path)  # the copy as it is loads
    first = json.loads(card_path.read_text())["members"][0]["file"]
    tflite = tmp_path / Path(first).with_suffix(".tflite").name
    content = bytearray(tflite.read_bytes())
    content[len(content) // 2] ^= 1
    tflite.write_bytes(bytes(content))
    with pytest.raises(ModelFileError, match="does not match its card"):
        served.FaceEnsemble.load(card_path)


def test_a_member_the_ensemble_card_did_not_measure_is_refused(tmp_path):
    card_path = copy_of_the_ensemble(tmp_path)
    card = json.loads(card_path.read_text())
    card["members"][0]["sha256"] = "0" * 64  # as if the member were retrained after the card
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="not the one the ensemble card"):
        served.FaceEnsemble.load(card_path)


@pytest.mark.slow
def test_each_member_on_litert_gives_its_keras_probabilities_on_faces_and_mirrors(ensemble):
    # The page's members here; every other export is held to the same tolerance when the export
    # command writes it (test_the_export_command_writes_a_checked_tflite_and_records_it_in_the_card).
    from core.litert import LiteRTModel
    from core.runner import ModelRunner

    x = public_test(256)
    x = np.concatenate([x, served.mirrored(x)])
    for model in [FACE_MODELS / m["file"] for m in ensemble.card["members"]]:
        expected = ModelRunner.load(model)(x)
        actual = LiteRTModel.load(model)(x)
        assert np.abs(actual - expected).max() <= TOLERANCE, model.name


@pytest.mark.slow
def test_the_served_ensemble_gives_face_ensemble_s_probabilities(ensemble):
    from core.face.served import FaceEnsemble
    from core.runner import batched

    x = public_test(300)
    expected, actual = batched(FaceEnsemble.load(runtime="keras"), x), batched(ensemble, x)
    assert np.abs(actual - expected).max() <= TOLERANCE
    assert np.array_equal(actual.argmax(axis=1), expected.argmax(axis=1))


@pytest.mark.slow
def test_the_export_command_writes_a_checked_tflite_and_records_it_in_the_card(tmp_path):
    from core.face import export

    for name in ("default.keras", "default.json"):
        shutil.copy(FACE_MODELS / name, tmp_path)
    card = json.loads((tmp_path / "default.json").read_text())
    card.pop("litert_file", None)
    (tmp_path / "default.json").write_text(json.dumps(card))
    assert export.main(["--models-dir", str(tmp_path), "--data", str(FER_FILE)]) == 0
    entry = cards.read_card(tmp_path / "default.keras").litert_file
    tflite = tmp_path / "default.tflite"
    assert entry["name"] == tflite.name and entry["sha256"] == cards.sha256_file(tflite)
    assert entry["size_bytes"] == tflite.stat().st_size < 15_000_000
    assert entry["made_from_sha256"] == card["model_file"]["sha256"] and entry["max_abs_diff_vs_keras"] <= TOLERANCE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default.json", "default.keras", "default.tflite"]
