"""The face ensemble as the server runs it: each member's `.tflite` on LiteRT, no TensorFlow.

`ServedFaceEnsemble` computes what `core.face.ensemble.FaceEnsemble` computes from the `.keras`
files (tests/face/test_served.py holds the two within 1e-4 on PublicTest faces): the members'
probabilities averaged, each member's the mean over the face and its mirror image, the faces and
their mirrors run as one batch. Its card is the ensemble's (models/face/ensemble.json); each
member's `.tflite` is the one its own card's `litert_file` names, written by
`python -m core.face.export` from the `.keras` the ensemble's card measured.
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


class ServedFaceEnsemble:
    """The Face page's ensemble on LiteRT: (n, 48, 48, 1) float32 0..255 -> (n, 7) probabilities,
    as `core.face.ensemble.FaceEnsemble`, one interpreter call per member (the faces and their
    mirrors in one batch).

    Args:
        members: name -> a model called on float32 batches (a `LiteRTModel`).
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
    def load(cls, card_path: Path | None = None, **litert) -> "ServedFaceEnsemble":
        """The ensemble its card describes (default: models/face/ensemble.json), each member's
        `.tflite` checked three ways: the member's card names the `.keras` the ensemble's card
        measured (SHA-256), its `litert_file` was made from that `.keras`, and the `.tflite` is the
        file its card names. ModelFileError names the file that is wrong. `litert`: keyword
        arguments of core.litert.LiteRTModel (num_threads, max_interpreters)."""
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
