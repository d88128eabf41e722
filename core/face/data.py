"""FER2013 as its SOURCE.md describes it: 48x48 grey faces, their labels and their split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.splits import fingerprint

FER_TRAINING, FER_PUBLIC_TEST = 0, 1
# FER2013's label order (the `label` column of fer2013.npz).
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@dataclass
class FerData:
    pixels: np.ndarray  # (n, 48, 48) uint8 grey
    label: np.ndarray   # (n,) uint8, index into EXPRESSIONS (above)
    usage: np.ndarray   # (n,) uint8, 0 Training, 1 PublicTest

    def fingerprint(self) -> str:
        return fingerprint(pixels=self.pixels, label=self.label, usage=self.usage)


def load_fer(path: Path) -> FerData:
    with np.load(path) as npz:
        return FerData(npz["pixels"], npz["label"], npz["usage"])
