"""What the Face page runs (core.face.ensemble): the members' mirror-averaged probabilities averaged,
its card checked against the files, and `core.evaluate face` without --model scoring exactly it."""

import json
import shutil

import numpy as np
import pytest

from core.face.data import FER_PUBLIC_TEST
from core import cards, evaluate, metrics
from core.face import ensemble as face_ensemble
from core.face.data import EXPRESSIONS
from core.errors import ModelFileError
from core.face.served import FaceEnsemble
from core.face.model import build_face_cnn
from core.runner import ModelRunner
from core.variants.zoo import model_path


def _public_test(path):
    with np.load(path) as npz:
        rows = npz["usage"] == 1
        return npz["pixels"][rows][..., None].astype(np.float32), npz["label"][rows].astype(int)


def test_the_ensemble_is_the_mean_of_its_members_mirror_averaged_probabilities(tiny_fer_file):
    x, _ = _public_test(tiny_fer_file)
    import keras

    keras.utils.set_random_seed(4)
    members = {f"m{i}": ModelRunner(build_face_cnn(blocks=2, filters=4, dense_units=(8,)), {}) for i in range(3)}
    mirrored = x[:, :, ::-1, :]
    each_mirrored = [(r(x) + r(mirrored)) / 2 for r in members.values()]
    np.testing.assert_allclose(FaceEnsemble(members, mirror=True)(x), np.mean(each_mirrored, axis=0), atol=1e-6)
    np.testing.assert_allclose(FaceEnsemble(members, mirror=False)(x),
                               np.mean([r(x) for r in members.values()], axis=0), atol=1e-6)
    # the faces are not symmetric, so the mirror changes the result (the check above can fail)
    assert np.abs(FaceEnsemble(members, mirror=True)(x) - FaceEnsemble(members, mirror=False)(x)).max() > 1e-4
    assert FaceEnsemble(members)(x).sum(axis=1) == pytest.approx(np.ones(len(x)), abs=1e-5)


def test_one_call_per_member_however_many_faces(tiny_fer_file):
    x, _ = _public_test(tiny_fer_file)
    calls = []

    class Counting:
        def __init__(self, runner):
            self.runner = runner

        def __call__(self, batch):
            calls.append(len(batch))
            return self.runner(batch)

    runner = ModelRunner(build_face_cnn(blocks=2, filters=4, dense_units=(8,)), {})
    FaceEnsemble({"a": Counting(runner), "b": Counting(runner)}, mirror=True)(x)
    assert calls == [2 * len(x), 2 * len(x)]


def _ensemble_card(folder, members: dict[str, str], mirror: bool = True) -> dict:
    return {"members": [{"name": name, "file": file, "sha256": sha} for name, (file, sha) in members.items()],
            "mirror_average": mirror}


@pytest.mark.parametrize("runtime", ["litert", "keras"])
def test_the_card_names_the_files_it_measured_and_load_refuses_others(tmp_path, runtime):
    for suffix in (".keras", ".json", ".tflite"):
        shutil.copy(model_path("face", "default").with_suffix(suffix), tmp_path / f"default{suffix}")
    sha = cards.read_card(tmp_path / "default.keras")["model_file"]["sha256"]
    card = tmp_path / "ensemble.json"
    card.write_text(json.dumps(_ensemble_card(tmp_path, {"default": ("default.keras", sha)})))
    loaded = FaceEnsemble.load(card, runtime)
    assert list(loaded.members) == ["default"] and loaded.mirror
    card.write_text(json.dumps(_ensemble_card(tmp_path, {"default": ("default.keras", "0" * 64)})))
    with pytest.raises(ModelFileError, match="not the one the ensemble card"):
        FaceEnsemble.load(card, runtime)
    with pytest.raises(ModelFileError, match="is missing"):
        FaceEnsemble.load(tmp_path / "nothing.json", runtime)
    card.write_text(json.dumps({"members": [{"name": "default"}], "mirror_average": True}))
    with pytest.raises(ModelFileError, match="lacks its members"):
        FaceEnsemble.load(card, runtime)
    card.write_text(json.dumps({"members": [], "mirror_average": True}))
    with pytest.raises(ModelFileError, match="lists no members"):
        FaceEnsemble.load(card, runtime)


def test_the_committed_card_matches_the_committed_models():
    card = json.loads(face_ensemble.ENSEMBLE_CARD.read_text())
    assert card["members"] and card["size_bytes"] <= 40 * 2**20  # the budget: 40 MB of models
    for member in card["members"]:
        path = face_ensemble.ENSEMBLE_CARD.parent / member["file"]
        assert cards.sha256_file(path) == member["sha256"], path
    assert card["validation"]["n"] == card["split"]["n_val"] == 3589


def _assert_same_metrics(printed: dict, expected: dict) -> None:
    assert printed["confusion"] == expected["confusion"]
    assert printed["per_class_recall"] == pytest.approx(expected["per_class_recall"], rel=1e-6)
    assert (printed["accuracy"], printed["macro_f1"]) == pytest.approx((expected["accuracy"], expected["macro_f1"]), rel=1e-6)


@pytest.mark.slow  # trains a tiny model (session fixture)
def test_evaluate_without_a_model_scores_what_the_face_page_runs(tiny_face_model, tiny_fer_file, monkeypatch,
                                                                  capsys):
    import keras

    # A second member: another tiny model, saved beside the first with its card.
    keras.utils.set_random_seed(5)
    second = tiny_face_model.parent / "second.keras"
    build_face_cnn(blocks=2, filters=4, dense_units=(8,)).save(second)
    cards.write_card(second, {"task": "face", "name": "second", "model_file": {"sha256": cards.sha256_file(second)}})
    card = tiny_face_model.parent / "ensemble.json"
    card.write_text(json.dumps(_ensemble_card(card.parent, {
        "tiny": (tiny_face_model.name, cards.sha256_file(tiny_face_model)),
        "second": (second.name, cards.sha256_file(second))})))
    monkeypatch.setitem(cards.DEFAULT_MODELS, "face", card)  # "the face model": what the page runs

    # The tiny members have no .tflite: their Keras files, through the same default path.
    assert evaluate.main(["face", "--data", str(tiny_fer_file), "--runtime", "keras"]) == 0
    printed = json.loads(capsys.readouterr().out)
    # computed here from the two models' own runners, without FaceEnsemble
    x, labels = _public_test(tiny_fer_file)
    runners = [ModelRunner.load(tiny_face_model), ModelRunner.load(second)]
    expected = np.mean([(r(x) + r(x[:, :, ::-1])) / 2 for r in runners], axis=0)
    _assert_same_metrics(printed, metrics.classification_metrics(labels, expected, EXPRESSIONS))
    # (the page serves the same card's members through LiteRT: tests/face/test_served.py)
    # with --model, one model as before
    assert evaluate.main(["face", "--data", str(tiny_fer_file), "--model", str(second), "--runtime", "keras"]) == 0
    alone = json.loads(capsys.readouterr().out)
    _assert_same_metrics(alone, metrics.classification_metrics(labels, runners[1](x), EXPRESSIONS))
    # and without the card, evaluate says so instead of scoring another model
    monkeypatch.setitem(cards.DEFAULT_MODELS, "face", card.parent / "gone.json")
    assert evaluate.main(["face", "--data", str(tiny_fer_file)]) == 2
    assert "gone.json is missing" in capsys.readouterr().err


def test_every_set_is_measured_with_and_without_the_mirror():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 40)
    probabilities = {n: rng.dirichlet(np.ones(7), (2, 40)) for n in ("a", "b", "c")}
    rows = face_ensemble.measure_all(labels, probabilities)
    assert len(rows) == 2 * (2**3 - 1)
    assert [r["accuracy"] for r in rows] == sorted((r["accuracy"] for r in rows), reverse=True)
    ab = next(r for r in rows if r["members"] == ["a", "b"] and r["mirror_average"])
    p = (probabilities["a"].mean(axis=0) + probabilities["b"].mean(axis=0)) / 2
    assert ab["accuracy"] == pytest.approx(np.mean(p.argmax(1) == labels), rel=1e-6)
    assert ab["accuracy_half"]["odd"] == pytest.approx(np.mean(p[1::2].argmax(1) == labels[1::2]), rel=1e-6)
    check = face_ensemble.selection_check(labels, probabilities, ["a", "b"], True)
    assert check["sets_tried"] == 14 and rows[check["rank_by_accuracy"] - 1] is not None
    assert rows[check["rank_by_accuracy"] - 1]["members"] == ["a", "b"]
    best, against = check["best_set"], check["best_set"]["against_the_chosen_set"]
    assert best["members"] == rows[0]["members"] and best["accuracy"] == rows[0]["accuracy"]
    difference = against["accuracy_difference"]
    assert difference["value"] == pytest.approx(rows[0]["accuracy"] - ab["accuracy"], abs=1e-9)
    assert difference["low"] <= difference["value"] <= difference["high"]
    faces = against["faces_only_the_best_set_gets_right"] - against["faces_only_the_chosen_set_gets_right"]
    assert faces == round(difference["value"] * len(labels))
    assert against["verdict"] in ("better", "no detectable difference")
    # the chosen set against itself: nothing to tell apart
    itself = face_ensemble.best_against_chosen(labels, probabilities, ab, ["a", "b"], True)
    assert itself["accuracy_difference"]["value"] == 0 and itself["verdict"] == "no detectable difference"
    assert FER_PUBLIC_TEST == 1


@pytest.mark.slow  # loads every member of the ensemble and the default: ~10 s on a loaded 2-core machine
def test_predict_without_a_model_scores_a_picture_with_the_face_pages_ensemble(fer_faces, tmp_path, capsys):
    import cv2

    from core.face import detect as faces
    from core.face import predict
    from core.predict import main as predict_main

    canvas = np.full((480, 640), 128, np.uint8)
    face = next(f for f in fer_faces if faces.detect_faces(
        cv2.copyMakeBorder(cv2.resize(f, (160, 160)), 100, 100, 100, 100, cv2.BORDER_CONSTANT, value=128)))
    canvas[100:260, 200:360] = cv2.resize(face, (160, 160))
    picture = tmp_path / "me.png"
    picture.write_bytes(cv2.imencode(".png", canvas)[1].tobytes())
    assert predict_main(["face", str(picture)]) == 0
    printed = json.loads(capsys.readouterr().out)["faces"]
    expected = predict.predict_faces(FaceEnsemble.load(), picture.read_bytes())["faces"]
    alone = predict.predict_faces(ModelRunner.load(model_path("face", "default")), picture.read_bytes())["faces"]
    assert len(printed) == len(expected) == 1
    got = np.array(list(printed[0]["probabilities"].values()))
    np.testing.assert_allclose(got, list(expected[0]["probabilities"].values()), atol=1e-5)
    assert np.abs(got - list(alone[0]["probabilities"].values())).max() > 1e-3  # not the default alone
