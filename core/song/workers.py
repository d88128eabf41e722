"""Songs' decoding and musicnn patches in worker processes (core.workers), musicnn in the server."""

from __future__ import annotations

import numpy as np

from core.song import features as song_features
from core.song import musicnn
from core.workers import ANSWER_TIMEOUT_S, WorkerPool


class SongFeatureWorkers(WorkerPool):
    """Worker processes that compute songs' features: `song_features(data)` is
    `song_features.song_features(data)`: its decoding and log-mel patches in a worker, musicnn here
    (loaded and traced as the workers start)."""

    def __init__(self, processes: int, timeout_s: float = ANSWER_TIMEOUT_S):
        super().__init__(processes, timeout_s, (f"--prepare={__name__}:prepare", "--keep-freed-memory"))
        song_features.warm_up()

    def song_features(self, data: bytes) -> tuple[float, np.ndarray, np.ndarray]:
        """Bytes -> (duration_s, start_s (k,), windows (k, w, 250) float32 musicnn patch embeddings):
        the patches computed in a worker, musicnn here. Raises InputError as
        `song_features.song_features` does, and WorkerDied when the worker ended on this file."""
        return song_features.embedded_windows(*self.run(song_features.song_patches, data))


def prepare() -> None:
    """Once in each song worker as it starts: the mel filters and the FFT are made before the first
    song, not in a person's wait; and freed memory is kept for the next song."""
    musicnn.log_mel(np.zeros(musicnn.SAMPLE_RATE_HZ * 3, np.float32))
