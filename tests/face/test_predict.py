"""A picture's faces: each found face scored by the face model, as rows for a CSV (core/face/predict.py)."""

import cv2
import numpy as np
import pytest

from core.errors import InputError
from core.face.data import EXPRESSIONS
from core.face.predict import predict_faces


def test_faces_are_scored_in_one_batch_with_seven_probabilities(face_runner):
    canvas = np.random.default_rng(5).integers(0, 256, (480, 640), dtype=np.uint8)
    data = cv2.imencode(".png", canvas)[1].tobytes()
    whole = predict_faces(face_runner, data, "one.png", whole_image=True)
    (face,) = whole["faces"]
    assert list(face["probabilities"]) == list(EXPRESSIONS)
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)


def test_an_empty_picture_is_refused_with_an_input_error(face_runner):
    with pytest.raises(InputError):
        predict_faces(face_runner, b"")


def test_a_picture_s_faces_become_rows_for_a_csv():
    from core.face.predict import face_rows

    result = {"file": "two.png", "faces": [
        {"box": [10, 20, 30, 40], "label": "happy", "probabilities": {n: (1.0 if n == "happy" else 0.0) for n in EXPRESSIONS}},
        {"box": [90, 20, 30, 40], "label": "sad", "probabilities": {n: (1.0 if n == "sad" else 0.0) for n in EXPRESSIONS}}]}
    rows = face_rows(result)
    assert [r["face"] for r in rows] == [1, 2] and rows[1]["x"] == 90 and rows[0]["label"] == "happy"
    assert list(rows[0])[:7] == ["file", "face", "x", "y", "width", "height", "label"] and rows[1]["sad"] == pytest.approx(1.0, abs=1e-12)
