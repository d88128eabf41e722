"""Faces from bytes: decoding in memory, detection, and the 48x48 grey crops the CNN reads.

Detector: OpenCV 4.x's Haar cascade `haarcascade_frontalface_default.xml`, which ships inside the
opencv-python-headless wheel (OpenCV 5 dropped the cascades). When no upright face is found, the
picture is searched again rotated by +-20 degrees, for tilted heads. See README "Face detection".
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np

from core.errors import InputError

FACE_SIZE_PX = 48
SUPPORTED_FORMATS = ("jpg", "jpeg", "png", "webp")
MIN_SIDE_PX = 48
MAX_PIXELS = 70_000_000      # 8000x8000 (64 MP) is accepted and downscaled; 10000x10000 is not
WORK_MAX_SIDE_PX = 1280      # pictures are downscaled to this before detection
CROP_MARGIN = 0.1            # fraction of the box added on each side: FER2013 crops show the whole head
TILT_ANGLES_DEG = (20.0, -20.0)
DETECT_SHORT_SIDE_PX = 480   # detection runs on a copy whose short side is at most this
MIN_FACE_FRACTION = 1 / 12   # smallest face searched for, as a fraction of the short side

_cascade = None


@dataclass
class Face:
    box: tuple[int, int, int, int]  # (x, y, w, h) in the picture's pixels
    angle_deg: float = 0.0          # rotation under which it was found


def decode_image(data: bytes) -> np.ndarray:
    """Decode image bytes in memory -> (h, w, 3) uint8 BGR, downscaled to WORK_MAX_SIDE_PX.

    Grey, 16-bit, alpha-channel and CMYK pictures all become 8-bit BGR; EXIF orientation is applied.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputError("The file is empty. Upload a photo as jpg, png or webp.")
    try:  # read the header only: refuse a huge picture before decoding its pixels
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise InputError("This file is not an image that can be read (supported: jpg, png, webp). "
                         "It may be damaged or of another type.") from None
    if width * height > MAX_PIXELS:
        raise InputError(f"The picture is {width}x{height} pixels; the limit is "
                         f"{MAX_PIXELS / 1e6:.0f} megapixels (e.g. 8000x8000). Resize it and try again.")
    if min(width, height) < MIN_SIDE_PX:
        raise InputError(f"The picture is only {width}x{height} pixels; a face needs at least "
                         f"{MIN_SIDE_PX}x{MIN_SIDE_PX}.")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise InputError("The picture could not be decoded: the file may be cut short or damaged.")
    scale = WORK_MAX_SIDE_PX / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image


def _detector() -> cv2.CascadeClassifier:
    global _cascade
    if _cascade is None:
        _cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    return _cascade


def _detect(grey: np.ndarray) -> list[tuple[int, int, int, int]]:
    # The cascade's cost is mostly in its finest scales: starting at 1/12 of the short side
    # rather than at 24 px makes a 640x480 frame about three times faster to search.
    min_side = max(24, int(min(grey.shape) * MIN_FACE_FRACTION))
    found = _detector().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                         minSize=(min_side, min_side))
    return [tuple(int(v) for v in box) for box in found]


def _rotation(shape: tuple[int, int], angle_deg: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Rotation about the centre onto a canvas large enough to keep every corner -> (matrix, size)."""
    h, w = shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    size = (int(h * sin + w * cos), int(h * cos + w * sin))
    matrix[:, 2] += (size[0] - w) / 2, (size[1] - h) / 2
    return matrix, size


def detect_faces(image: np.ndarray) -> list[Face]:
    """Every face in a BGR or grey picture (at least 1/12 of its short side), largest first."""
    grey = to_grey(image)
    scale = min(1.0, DETECT_SHORT_SIDE_PX / min(grey.shape))
    if scale < 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    faces = [Face(box) for box in _detect(grey)]
    if not faces:
        for angle in TILT_ANGLES_DEG:
            matrix, size = _rotation(grey.shape, angle)
            rotated = cv2.warpAffine(grey, matrix, size, borderMode=cv2.BORDER_REPLICATE)
            inverse = cv2.invertAffineTransform(matrix)
            for x, y, w, h in _detect(rotated):
                cx, cy = inverse @ np.array([x + w / 2, y + h / 2, 1.0])
                faces.append(Face((int(cx - w / 2), int(cy - h / 2), w, h), angle))
            if faces:
                break
    for face in faces:
        face.box = tuple(int(round(v / scale)) for v in face.box)
    return sorted(faces, key=lambda f: -f.box[2] * f.box[3])


def to_grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def crop_faces(image: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Grey 48x48 crops of each face, with a margin -> (n, 48, 48, 1) float32, 0..255.

    The values are raw grey levels, as the training pixels; the model rescales them itself.
    """
    grey = to_grey(image)
    crops = []
    for face in faces:
        x, y, w, h = face.box
        m = int(round(CROP_MARGIN * w))
        source = grey
        if face.angle_deg:  # undo the tilt around the face's centre, so the crop is upright
            matrix = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), face.angle_deg, 1.0)
            source = cv2.warpAffine(grey, matrix, grey.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
        padded = cv2.copyMakeBorder(source, m, m, m, m, cv2.BORDER_REPLICATE)
        crop = padded[y:y + h + 2 * m, x:x + w + 2 * m]
        crops.append(cv2.resize(crop, (FACE_SIZE_PX, FACE_SIZE_PX), interpolation=cv2.INTER_AREA))
    return np.array(crops, dtype=np.float32).reshape(-1, FACE_SIZE_PX, FACE_SIZE_PX, 1)


def whole_image_as_face(image: np.ndarray) -> Face:
    """The centred square of the picture, for 'score the whole picture as one face'."""
    h, w = image.shape[:2]
    side = min(h, w)
    return Face(((w - side) // 2, (h - side) // 2, side, side))


def draw_faces(image: np.ndarray, boxes: list[tuple[int, int, int, int]], labels: list[str]) -> np.ndarray:
    """A copy of the BGR picture as RGB, with a numbered box and label drawn on every face."""
    canvas = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    thickness = max(2, max(canvas.shape[:2]) // 300)
    scale = max(0.5, max(canvas.shape[:2]) / 900)
    for i, ((x, y, w, h), label) in enumerate(zip(boxes, labels), start=1):
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (255, 60, 60), thickness)
        text = f"{i}: {label}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(0, y - th - base - 4)
        cv2.rectangle(canvas, (x, top), (x + tw + 4, top + th + base + 4), (255, 60, 60), -1)
        cv2.putText(canvas, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)
    return canvas
