"""Every face of a picture with the probabilities of the 7 expressions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.face import detect
from core.face.data import EXPRESSIONS
from core.runner import Scorer


def face_rows(result: dict) -> list[dict]:
    """One table row per face of a picture's result: its number (left to right), box, label and the
    seven probabilities (for a CSV download)."""
    return [{"file": result["file"], "face": i, "x": face["box"][0], "y": face["box"][1],
             "width": face["box"][2], "height": face["box"][3], "label": face["label"],
             **{name: round(p, 4) for name, p in face["probabilities"].items()}}
            for i, face in enumerate(result["faces"], start=1)]


def expression_probabilities(probabilities: np.ndarray) -> list[dict]:
    """(n faces, 7) probabilities -> per face its top label and the 7 probabilities by name."""
    return [{"label": EXPRESSIONS[int(p.argmax())],
             "probabilities": {name: float(v) for name, v in zip(EXPRESSIONS, p)}} for p in probabilities]


def score_faces(runner: Scorer, image: np.ndarray, found: list[detect.Face]) -> list[dict]:
    """All faces of one picture in one batch -> box, top label and the 7 probabilities each."""
    if not found:
        return []
    scored = expression_probabilities(runner(detect.crop_faces(image, found)))
    return [{"box": list(face.box), **result} for face, result in zip(found, scored)]


def analyse_picture(runner: Scorer, data: bytes, name: str = "", whole_image: bool = False,
                    decode: Callable[[bytes], np.ndarray] = detect.decode_image) -> tuple[np.ndarray, dict]:
    """Bytes of a picture -> (the decoded BGR picture, every face with its probabilities).

    whole_image: score the centred square of the picture as one face, without detection.
    decode: `detect.decode_image`, or what decodes the same elsewhere (the app: in a worker process
    with a time and memory limit, `core.face.workers.PictureWorkers`).
    """
    image = decode(data)
    return image, picture_faces(runner, image, name, whole_image)


def picture_faces(runner: Scorer, image: np.ndarray, name: str = "", whole_image: bool = False) -> dict:
    """A decoded BGR picture -> every face with its probabilities (see `analyse_picture`)."""
    found = [detect.whole_image_as_face(image)] if whole_image else detect.left_to_right(detect.detect_faces(image))
    return {"file": name, "width": int(image.shape[1]), "height": int(image.shape[0]),
            "faces": score_faces(runner, image, found)}


def predict_faces(runner: Scorer, data: bytes, name: str = "", whole_image: bool = False) -> dict:
    """The JSON-ready result of `analyse_picture`."""
    return analyse_picture(runner, data, name, whole_image)[1]
