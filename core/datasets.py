"""Readers for the two shared data sets, in the layouts their SOURCE.md files describe."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MUSIC_FEATURES = "features_logmel.npz"
MUSIC_ANNOTATIONS = "annotations.csv"
FER_TRAINING, FER_PUBLIC_TEST = 0, 1
# FER2013's label order (the `label` column of fer2013.npz).
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@dataclass
class MusicData:
    song_id: np.ndarray         # (n,) str
    logmel: np.ndarray          # (n, 646, 128) float16, dB in [-80, 0]
    n_valid_frames: np.ndarray  # (n,) int, frames whose centre lies inside real audio
    targets: np.ndarray         # (n, 2) float32, (valence, arousal) in [0, 1]
    quadrant: np.ndarray        # (n,) str, "Q1".."Q4"

    def fingerprint(self) -> str:
        return fingerprint(song_id=self.song_id, logmel=self.logmel, n_valid_frames=self.n_valid_frames,
                           targets=self.targets)


@dataclass
class FerData:
    pixels: np.ndarray  # (n, 48, 48) uint8 grey
    label: np.ndarray   # (n,) uint8, index into EXPRESSIONS (above)
    usage: np.ndarray   # (n,) uint8, 0 Training, 1 PublicTest

    def fingerprint(self) -> str:
        return fingerprint(pixels=self.pixels, label=self.label, usage=self.usage)


def fingerprint(**arrays: np.ndarray) -> str:
    """SHA-256 over named arrays (name, dtype, shape and values): identifies the data a model saw
    by its content, whatever file or compression carried it."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def music_files(data_dir: Path) -> tuple[Path, Path]:
    data_dir = Path(data_dir)
    return data_dir / MUSIC_FEATURES, data_dir / MUSIC_ANNOTATIONS


def load_music(data_dir: Path) -> MusicData:
    """Read `features_logmel.npz` and `annotations.csv` and join them on song_id."""
    features_path, annotations_path = music_files(data_dir)
    with np.load(features_path) as npz:
        song_id = npz["song_id"]
        logmel = npz["logmel"]
        n_valid = npz["n_valid_frames"]
    with open(annotations_path, newline="") as f:
        rows = {row["song_id"]: row for row in csv.DictReader(f)}
    missing = [s for s in song_id if s not in rows]
    if missing:
        raise ValueError(f"{len(missing)} songs of {features_path} have no annotation "
                         f"(first: {missing[0]})")
    targets = np.array([[float(rows[s]["valence"]), float(rows[s]["arousal"])] for s in song_id],
                       dtype=np.float32)
    quadrant = np.array([rows[s]["quadrant"] for s in song_id])
    return MusicData(song_id, logmel, n_valid, targets, quadrant)


def load_annotations(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`annotations.csv` alone -> (song_id (n,) str, targets (n, 2) float32 (valence, arousal),
    quadrant (n,) str), in the file's order."""
    with open(Path(data_dir) / MUSIC_ANNOTATIONS, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{Path(data_dir) / MUSIC_ANNOTATIONS} has no songs")
    song_id = np.array([row["song_id"] for row in rows])
    targets = np.array([[float(row["valence"]), float(row["arousal"])] for row in rows], dtype=np.float32)
    return song_id, targets, np.array([row["quadrant"] for row in rows])


def load_fer(path: Path) -> FerData:
    with np.load(path) as npz:
        return FerData(npz["pixels"], npz["label"], npz["usage"])


def stratified_split(groups: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation), the same fraction of each group in validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for g in np.unique(groups):
        idx = rng.permutation(np.flatnonzero(groups == g))
        n_val = int(round(len(idx) * val_fraction))
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.array(train, dtype=int)), np.sort(np.array(val, dtype=int))


def stratified_folds(groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Each example's fold, 0..n_folds-1 -> (n,) int: every group's examples shuffled (one seeded
    generator) and dealt to the folds in turn, so each fold holds each group's share (within one)."""
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, not {n_folds}")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(groups), dtype=int)
    for g in np.unique(groups):
        idx = rng.permutation(np.flatnonzero(groups == g))
        fold[idx] = np.arange(len(idx)) % n_folds
    return fold
