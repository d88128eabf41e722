"""The face ensemble: what the Face page runs (models/face/ensemble.json names its members).

`FaceEnsemble` averages its members' probabilities, each member's the mean over the face and its
mirror image, the faces and their mirrors run as one batch. Loaded for serving (runtime "litert",
the default: each member's `.tflite`, the one its own card's `litert_file` names, written by
`python -m core.face.export` from the `.keras` the ensemble's card measured; no TensorFlow) or
for what needs Keras (runtime "keras": Grad-CAM, measuring the `.keras` files).
tests/face/test_served.py holds the two within 1e-4 on PublicTest faces. The ensemble's card is
written by `python -m core.face.ensemble card`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core import cards
from core.errors import ModelFileError
from core.litert import LiteRTModel

ENSEMBLE_CARD = cards.DEFAULT_MODELS["face"]


def mirrored(x: np.ndarray) -> np.ndarray:
    """Faces (n, h, w, c) mirrored left to right."""
    return np.ascontiguousarray(x[:, :, ::-1, :])


class FaceEnsemble:
    """(n, 48, 48, 1) float32 0..255 -> (n, 7) probabilities, one call per member (the faces and
    their mirrors in one batch).

    Args:
        members: name -> a model called on float32 batches (a `LiteRTModel` or a `ModelRunner`).
        mirror: average each member over the face and its mirror image.
        card: the ensemble's card (default: one naming the members).
    """

    def __init__(self, members: dict, mirror: bool = True, card: dict | None = None):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members, self.mirror = dict(members), bool(mirror)
        self.card = card if card is not None else {"members": [{"name": n} for n in members],
                                                   "mirror_average": self.mirror}

    @classmethod
    def load(cls, card_path: Path | None = None, runtime: str = "litert", **litert) -> "FaceEnsemble":
        """The ensemble its card describes (default: models/face/ensemble.json). Each member is
        checked against the ensemble's card: its own card names the `.keras` the ensemble's card
        measured (SHA-256), so a retrained member is refused until the ensemble's card is written
        again; on LiteRT its `litert_file` was made from that `.keras` and is the file its card
        names. ModelFileError names the file that is wrong.

        runtime: "litert" (serving) or "keras" (the `.keras` files in TensorFlow: Grad-CAM).
        litert: keyword arguments of core.litert.LiteRTModel (num_threads, max_interpreters)."""
        if runtime not in ("litert", "keras"):
            raise ValueError(f"runtime must be 'litert' or 'keras', not {runtime!r}")
        card_path = Path(card_path or ENSEMBLE_CARD)
        try:
            card = json.loads(card_path.read_text())
            listed, mirror = [(m["name"], m["file"], m["sha256"]) for m in card["members"]], card["mirror_average"]
        except FileNotFoundError:
            raise ModelFileError(f"The ensemble card {card_path} is missing: write it with "
                                 "`python -m core.face.ensemble card`.")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ModelFileError(f"The ensemble card {card_path} is not valid JSON ({e}).")
        except (KeyError, TypeError) as e:
            raise ModelFileError(f"The ensemble card {card_path} lacks its members or mirror_average ({e!r}).")
        members = {}
        for name, file, keras_sha256 in listed:
            path = card_path.parent / file
            member_card = cards.read_card(path)
            if (member_card.model_file or {}).get("sha256") != keras_sha256:
                raise ModelFileError(f"The model {path} is not the one the ensemble card {card_path} measured: "
                                     "write the card again with `python -m core.face.ensemble card`.")
            if runtime == "keras":
                from core.runner import ModelRunner

                members[name] = ModelRunner.load(path)
                continue
            made_from = (member_card.litert_file or {}).get("made_from_sha256")
            if made_from is not None and made_from != keras_sha256:
                raise ModelFileError(f"The LiteRT file of {path} was made from another .keras file: write it "
                                     "again with `python -m core.face.export`.")
            members[name] = LiteRTModel.load(path, **litert)
        if not members:
            raise ModelFileError(f"The ensemble card {card_path} lists no members.")
        return cls(members, mirror, card)

    def member_probabilities(self, x: np.ndarray) -> np.ndarray:
        """Each member's probabilities (mirror-averaged if the ensemble mirrors) -> (members, n, 7)."""
        x = np.asarray(x, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((len(self.members), 0, 7), np.float32)
        batch = np.concatenate([x, mirrored(x)]) if self.mirror else x
        passes = 2 if self.mirror else 1
        return np.stack([model(batch).reshape(passes, len(x), -1).mean(axis=0) for model in self.members.values()])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.member_probabilities(x).mean(axis=0)
