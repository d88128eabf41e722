"""The face training command (core.face.train): members side by side, the in-graph augmentation,
the epoch plan that fits a deadline, the student, and the card every run writes."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from core import cards
from core.face import train as face_train

TINY = {"blocks": 2, "filters": 4, "dense_units": [8]}


def test_the_learning_rate_warms_up_then_falls_on_a_cosine_to_near_zero():
    rates = [face_train.epoch_learning_rate(e, 10, 0.02, 2) for e in range(10)]
    assert rates[0] < rates[1] < rates[2] == pytest.approx(0.02)
    assert all(a > b for a, b in zip(rates[2:], rates[3:])) and 0 < rates[-1] < 0.002


def test_the_planned_epochs_fit_the_time_left():
    assert face_train.planned_epochs(300, 3, 2.0, 100.0) == 3 + int(100 // 2.2)
    assert face_train.planned_epochs(50, 3, 2.0, 1000.0) == 50  # never more than asked
    assert face_train.planned_epochs(300, 7, 2.0, -5.0) == 7  # never fewer than done


def test_face_augment_changes_faces_only_in_training():
    keras = face_train.keras_module()
    augment = face_train.face_augment_layer(keras)
    faces = np.zeros((128, 48, 48, 1), np.float32)
    faces[:, :, :24] = 200  # a bright left half: a mirror moves it right
    plain = augment(seed=1, erasing=0.0)
    np.testing.assert_array_equal(np.asarray(plain(faces, training=False)), faces)
    out = np.asarray(plain(faces, training=True))
    assert out.shape == faces.shape and 0 <= out.min() and out.max() <= 255
    mirrored = out[:, :, 36:].mean(axis=(1, 2, 3)) > out[:, :, :12].mean(axis=(1, 2, 3))
    assert 32 < mirrored.sum() < 96  # about half
    assert len({round(float(o.sum())) for o in out}) > 100  # each face its own draw
    erased = np.asarray(augment(seed=1, erasing=1.0)(np.full((64, 48, 48, 1), 100.0, np.float32), training=True))
    changed = (np.abs(erased - 100) > 1e-3).mean(axis=(1, 2, 3))
    assert ((changed > 0.01) & (changed < 0.25)).mean() > 0.9  # one rectangle, 2-20% of each face
    with pytest.raises(ValueError, match="probability"):
        augment(erasing=1.5)


@pytest.mark.slow
def test_members_train_side_by_side_and_each_gets_its_card(tiny_fer_file, tmp_path):
    log = tmp_path / "run.json"
    started = time.time()
    paths = face_train.train_face_members(
        tiny_fer_file, {"a": TINY, "b": {**TINY, "pooling": "average"}, "s": TINY}, tmp_path,
        {"epochs": 5, "batch_size": 32}, seed=3, student="s", stop_at=started, log=log)
    assert [p.name for p in paths] == ["a.keras", "b.keras", "s.keras"]
    run = json.loads(log.read_text())
    for path in paths:
        model, card = cards.load_model(path)
        training = card["training"]
        # the deadline had passed: the first two epochs ran (the first holds compilation), no more
        assert training["epochs_run"] == 2 and len(card["curves"]["val_accuracy"]) == 2
        assert training["mixed_bfloat16_used"] is False  # no accelerator here
        assert "Keras on" in training["machine"] and training["seed"] == 3
        assert card["split"]["n_train"] == 112 and card["validation"]["n"] == 28
        assert model.count_params() == card["parameters"] and card["model_file"]["size_bytes"] < 15e6
        # the card's accuracy is the float32 shipped model's, the last epoch's validation
        assert card["validation"]["accuracy"] == pytest.approx(card["curves"]["val_accuracy"][-1], abs=0.04)
        assert run["members"][path.stem]["accuracy"] == card["validation"]["accuracy"]
    student = cards.read_card(paths[2])["training"]
    assert student["distilled_from"]["teachers"] == ["a", "b"]
    assert cards.read_card(paths[0])["training"]["trained_side_by_side_with"] == ["b", "s"]


@pytest.mark.slow
def test_the_command_trains_and_refuses_bad_arguments(tiny_fer_file, tmp_path, capsys):
    assert face_train.main(["--data", str(tiny_fer_file), "--out", str(tmp_path), "--members", "{bad"]) == 2
    assert face_train.main(["--data", str(tiny_fer_file), "--out", str(tmp_path), "--members", json.dumps({"a": TINY}),
                            "--student", "a"]) == 2
    assert face_train.main(["--data", str(tiny_fer_file), "--out", str(tmp_path), "--members", json.dumps({"a": TINY}),
                            "--training", json.dumps({"epochs": 1, "batch_size": 32, "augmentation": "opencv"})]) == 0
    card = cards.read_card(tmp_path / "a.keras")
    assert card["training"]["epochs_run"] == 1 and "OpenCV" in card["training"]["augmentation"]
