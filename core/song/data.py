"""The music data set as its SOURCE.md describes it: `annotations.csv` (valence, arousal and
quadrant a song), `songs/` (the audio) and `features_logmel.npz` (the data set's own log-mels)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.splits import fingerprint

MUSIC_FEATURES = "features_logmel.npz"
MUSIC_ANNOTATIONS = "annotations.csv"


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
