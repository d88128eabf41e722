import io

import cv2
import numpy as np
import pytest
from PIL import Image

from core.face import detect as faces
from core.errors import InputError


def encode(image: np.ndarray, ext: str = ".png", params=()) -> bytes:
    ok, buffer = cv2.imencode(ext, image, list(params))
    assert ok
    return buffer.tobytes()


def frame_with_faces(fer_faces: np.ndarray, count: int, side_px: int = 144, shape=(480, 640)) -> np.ndarray:
    """FER faces (detected upright ones first) pasted, upscaled, into a plain grey frame."""
    canvas = np.full(shape, 128, np.uint8)
    cols = (shape[1] - 40) // (side_px + 10)
    for i in range(count):
        y, x = 30 + (i // cols) * (side_px + 10), 30 + (i % cols) * (side_px + 10)
        canvas[y:y + side_px, x:x + side_px] = cv2.resize(fer_faces[i], (side_px, side_px),
                                                          interpolation=cv2.INTER_CUBIC)
    return canvas


@pytest.fixture(scope="module")
def detectable(fer_faces) -> np.ndarray:
    """FER faces the detector finds confidently on their own in a frame."""
    alone = [(f, faces.detect_faces(frame_with_faces(f[None], 1))) for f in fer_faces[:80]]
    assert sum(bool(found) for _, found in alone) >= 60  # FER crops are tight, yet most are found
    return np.array([f for f, found in alone if found and found[0].score >= 0.8])


def test_a_pasted_fer_face_is_found_where_it_was_put(detectable):
    frame = frame_with_faces(detectable, 1)
    (face,) = faces.detect_faces(frame)
    x, y, w, h = face.box
    assert abs((x + w / 2) - (30 + 72)) < 25 and abs((y + h / 2) - (30 + 72)) < 25
    crops = faces.crop_faces(frame, [face])
    assert crops.shape == (1, 48, 48, 1) and crops.dtype == np.float32 and crops.max() > 1


def test_many_faces_are_all_found(detectable):
    frame = frame_with_faces(detectable, 6, side_px=120, shape=(480, 640))
    assert len(faces.detect_faces(frame)) == 6


def test_tilted_and_small_faces_are_found(detectable):
    for face in detectable[:10]:
        frame = frame_with_faces(face[None], 1, side_px=160)
        tilted = cv2.warpAffine(frame, cv2.getRotationMatrix2D((110, 110), 25, 1.0), frame.shape[::-1],
                                borderMode=cv2.BORDER_REPLICATE)
        assert len(faces.detect_faces(tilted)) == 1
    small = [frame_with_faces(f[None], 1, side_px=80) for f in detectable[:5]]  # 1/6 of the height
    assert sum(len(faces.detect_faces(frame)) == 1 for frame in small) >= 4


def test_decoding_makes_8_bit_bgr_from_grey_16_bit_alpha_and_cmyk():
    grey16 = (np.arange(100 * 120, dtype=np.uint16).reshape(100, 120) * 5)
    assert faces.decode_image(encode(grey16)).shape == (100, 120, 3)
    rgba = np.zeros((100, 120, 4), np.uint8)
    rgba[..., 3] = 128
    assert faces.decode_image(encode(rgba)).dtype == np.uint8
    cmyk = io.BytesIO()
    Image.new("CMYK", (120, 100), (0, 50, 100, 0)).save(cmyk, "JPEG")
    assert faces.decode_image(cmyk.getvalue()).shape == (100, 120, 3)
    webp = encode(np.full((64, 64, 3), 90, np.uint8), ".webp")
    assert faces.decode_image(webp).shape == (64, 64, 3)


def test_a_huge_picture_is_downscaled_and_a_larger_one_refused():
    big = encode(np.zeros((8000, 8000), np.uint8))
    assert max(faces.decode_image(big).shape[:2]) == faces.WORK_MAX_SIDE_PX
    header = io.BytesIO()
    Image.new("1", (10000, 10000)).save(header, "PNG")
    with pytest.raises(InputError, match="megapixels"):
        faces.decode_image(header.getvalue())


def _png_header_claiming(width: int, height: int) -> bytes:
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk +
            struct.pack(">I", zlib.crc32(chunk)))


BAD_PICTURES = {
    "empty": (b"", "empty"),
    "text renamed to jpg": (b"hello, not a picture\n" * 20, "not an image"),
    "1x1": (encode(np.zeros((1, 1, 3), np.uint8)), "only 1x1"),
    "0x0 header": (_png_header_claiming(0, 0), "not an image|only 0x0"),
    "zip-bomb header 60000x60000": (_png_header_claiming(60000, 60000), "megapixels|not an image"),
}


@pytest.mark.parametrize("name", BAD_PICTURES)
def test_bad_pictures_get_a_clear_error(name):
    data, expected = BAD_PICTURES[name]
    with pytest.raises(InputError, match=expected):
        faces.decode_image(data)


def test_a_truncated_jpg_gives_a_picture_or_a_clear_error():
    data = encode(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8), ".jpg")
    for cut in (len(data) // 2, 400, 40):
        try:
            image = faces.decode_image(data[:cut])
        except InputError as e:
            assert "image" in str(e) or "decoded" in str(e)
        else:
            assert image.shape == (300, 400, 3)


def test_boxes_are_drawn_on_an_rgb_copy():
    image = np.full((200, 300, 3), 255, np.uint8)
    drawn = faces.draw_faces(image, [(50, 60, 80, 80)], ["happy"])
    assert drawn.shape == image.shape and (image == 255).all() and (drawn != 255).any()


def test_the_detector_pool_can_be_made_before_anyone_waits(monkeypatch):
    import queue

    monkeypatch.setattr(faces, "_idle_detectors", queue.SimpleQueue())  # an empty pool
    monkeypatch.setattr(faces, "_detectors_made", 0)
    faces.prepare_detectors()
    assert faces._detectors_made == faces.MAX_DETECTORS == faces._idle_detectors.qsize()
    faces.prepare_detectors()  # a full pool stays as it is
    assert faces._detectors_made == faces.MAX_DETECTORS == faces._idle_detectors.qsize()
    assert faces.detect_faces(np.zeros((64, 64, 3), np.uint8)) == []
    assert faces._idle_detectors.qsize() == faces.MAX_DETECTORS


@pytest.mark.parametrize("shape", [(48, 60000), (60000, 48), (48, 13000), (48, 130000), (130000, 49)])
def test_a_long_thin_picture_gets_a_clear_message(shape):
    # Downscaled to 1280 px on its long side, its short side would be under 48 px (48x130000: 0 px,
    # on which cv2.resize raised).
    with pytest.raises(InputError, match=rf"{shape[1]}x{shape[0]} pixels: too long and narrow"):
        faces.decode_image(encode(np.full(shape, 128, np.uint8)))


@pytest.mark.parametrize("shape", [(48, 1280), (100, 2666), (2666, 100)])
def test_a_long_picture_within_the_ratio_keeps_a_short_side_of_48_px_or_more(shape):
    image = faces.decode_image(encode(np.full(shape, 128, np.uint8)))
    assert max(image.shape[:2]) <= faces.WORK_MAX_SIDE_PX and min(image.shape[:2]) >= faces.MIN_SIDE_PX
    assert faces.detect_faces(image) == []


def test_faces_are_numbered_left_to_right_and_labels_go_under_the_box():
    found = [faces.Face((300, 40, 80, 80)), faces.Face((20, 200, 60, 60)), faces.Face((20, 50, 60, 60))]
    assert [f.box for f in faces.left_to_right(found)] == [(20, 50, 60, 60), (20, 200, 60, 60), (300, 40, 80, 80)]
    assert faces.label_top((20, 50, 60, 60), 20, 480) == 112          # under the box: the forehead stays clear
    assert faces.label_top((20, 440, 60, 30), 20, 480) == 418         # no room under it: above
    canvas = np.full((200, 200, 3), 128, np.uint8)
    drawn = faces.draw_faces(canvas, [(50, 20, 100, 100)], ["happy"])
    assert np.array_equal(drawn[25:118, 55:145], canvas[25:118, 55:145])  # nothing drawn inside the box
    assert (drawn[125:140, 52:90] != 128).any()                          # the label is under it
    assert faces.png_bytes(drawn)[:8] == b"\x89PNG\r\n\x1a\n"
