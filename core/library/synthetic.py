"""A made-up library of any size (store.SONG_SCHEMA's rows, random moods, tags and embeddings):
for the page's tests and its load-time benchmark (bench/library_scan.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from core.library.store import SONG_SCHEMA
from core.metrics import QUADRANT_NAMES, quadrant
from core.song.musicnn import EMBEDDING_DIM, MSD_TAGS


def synthetic_songs(n: int, seed: int = 0, folders: int = 20, paths: list[str] | None = None) -> pa.Table:
    """n songs in `folders` folders (or at `paths`), each with a random mood, five of musicnn's tags
    and an embedding near one of eight clusters (so "songs like this" has something to find)."""
    rng = np.random.default_rng(seed)
    valence, arousal = rng.beta(2, 2, n).astype(np.float32), rng.beta(2, 2, n).astype(np.float32)
    q = [int(quadrant(float(v), float(a))) for v, a in zip(valence, arousal)]
    centres = rng.normal(size=(8, EMBEDDING_DIM)).astype(np.float32)
    cluster = rng.integers(0, 8, n)
    embeddings = centres[cluster] + 0.3 * rng.normal(size=(n, EMBEDDING_DIM)).astype(np.float32)
    tags = [list(np.asarray(MSD_TAGS)[rng.choice(len(MSD_TAGS), 5, replace=False)]) for _ in range(n)]
    paths = paths or [f"folder {i % folders:02d}/song {i:06d}.mp3" for i in range(n)]
    now = datetime.now(timezone.utc)
    columns = {
        "path": paths, "folder": [p.rpartition("/")[0] for p in paths],
        "size": np.full(n, 4_000_000), "mtime_ns": np.zeros(n, np.int64),
        "sha256": [f"{i:064x}" for i in range(n)], "duration_s": rng.uniform(30, 400, n).astype(np.float32),
        "valence": valence, "arousal": arousal,
        "valence_sd": rng.uniform(0, 0.05, n).astype(np.float32), "arousal_sd": rng.uniform(0, 0.05, n).astype(np.float32),
        "quadrant": [f"Q{k}" for k in q], "mood": [QUADRANT_NAMES[k] for k in q], "tags": tags,
        "tag_probabilities": [sorted(rng.uniform(0, 1, 5).astype(np.float32), reverse=True) for _ in range(n)],
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(embeddings.ravel()), EMBEDDING_DIM),
        "model_sha256": ["synthetic"] * n, "scored_at": [now] * n,
    }
    return pa.table({name: pa.array(columns[name], SONG_SCHEMA.field(name).type)
                     if not isinstance(columns[name], pa.Array) else columns[name] for name in SONG_SCHEMA.names},
                    schema=SONG_SCHEMA)
