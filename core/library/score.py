"""The scan's per-song function: a file of the library -> its row (or its failure), with the Song
page's models. The local path (core.library.scan) and Ray's (core.library.distributed) both call
`score_file`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath

import numpy as np
import pyarrow.fs as pafs

from core import cards
from core.errors import InputError
from core.song import features as song_features
from core.song.predict import predict_song

# Bytes read of one file at most: a 15-min song (core.song.decode.MAX_DURATION_S) as 48 kHz
# 16-bit stereo WAV is 173 MB. A larger file is listed as a failure without being read.
MAX_FILE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class SongFile:
    path: str       # relative to the scanned folder, "/"-separated
    size: int
    mtime_ns: int


class SongScorer:
    """The app's song model, its fold models and how a song's features are computed: a song's
    bytes -> its row's scores (`score`). Models are any callables (windows (k, w, 250) -> (k, 2)):
    `core.predict.load_task_model`'s, whatever runtime serves them."""

    def __init__(self, model: Callable, folds: list[Callable], model_sha256: str,
                 features: Callable[[bytes], tuple] = song_features.song_features):
        self.model, self.folds, self.model_sha256, self.features = model, folds, model_sha256, features

    @classmethod
    def load(cls, features: Callable[[bytes], tuple] | None = None) -> "SongScorer":
        """The Song page's models: core.cards.DEFAULT_MODELS["song"] and the default's fold models."""
        from core.predict import load_task_model
        from core.variants.zoo import fold_model_paths

        model = load_task_model("song")
        folds = [load_task_model("song", path) for path in fold_model_paths("song", "default")]
        return cls(model, folds, cards.sha256_file(cards.DEFAULT_MODELS["song"]),
                   features or song_features.song_features)

    def score(self, data: bytes) -> dict:
        """A song's bytes -> its scores and embedding (the columns of store.SONG_SCHEMA that do not
        describe the file). Raises InputError for a file that is not a usable song."""
        kept = {}

        def features(data_: bytes) -> tuple:
            kept["x"] = result = self.features(data_)
            return result

        result = predict_song(self.model, data, "", features=features, fold_runners=self.folds or None)
        spread = result["folds"]["std"] if "folds" in result else (None, None)
        return {"duration_s": result["duration_s"], "valence": result["valence"], "arousal": result["arousal"],
                "valence_sd": spread[0], "arousal_sd": spread[1], "quadrant": result["quadrant"],
                "mood": result["mood"], "tags": [t["tag"] for t in result["tags"]],
                "tag_probabilities": [t["probability"] for t in result["tags"]],
                "embedding": song_embedding(kept["x"][2]), "model_sha256": self.model_sha256}


def song_embedding(windows: np.ndarray) -> np.ndarray:
    """A song's windows (k, w, 250) -> (250,) float32: the mean of its distinct patches' musicnn
    embeddings (windows overlap; each patch counted once)."""
    flat = windows.reshape(-1, windows.shape[-1])
    _, first = np.unique(flat, axis=0, return_index=True)
    return flat[np.sort(first)].mean(axis=0).astype(np.float32)


def score_file(fs: pafs.FileSystem, base: str, file: SongFile, scorer: SongScorer,
               known_sha256: str | None = None, max_bytes: int = MAX_FILE_BYTES) -> tuple[str, dict | None]:
    """One file -> ("song", row), ("failure", row), or ("same", None) when its content is the
    one `known_sha256` names (only its time changed). Never raises for a bad file: the run goes on."""
    now = datetime.now(timezone.utc)
    common = {"path": file.path, "size": file.size, "mtime_ns": file.mtime_ns, "sha256": None,
              "model_sha256": scorer.model_sha256, "scored_at": now}
    try:
        if file.size > max_bytes:
            raise InputError(f"The file is {file.size / 2 ** 20:.0f} MB, over the scan's limit of "
                             f"{max_bytes / 2 ** 20:.0f} MB a file.")
        with fs.open_input_file(f"{base}/{file.path}") as f:
            data = f.read(max_bytes + 1)
        common["sha256"] = hashlib.sha256(data).hexdigest()
        if common["sha256"] == known_sha256:
            return "same", None
        scores = scorer.score(data)
        del data
        folder = PurePosixPath(file.path).parent.as_posix()
        return "song", {**common, **scores, "folder": "" if folder == "." else folder}
    except (InputError, OSError, MemoryError) as e:
        reason = (e.strerror if isinstance(e, OSError) and e.strerror else str(e)) or type(e).__name__
    except Exception as e:  # noqa: BLE001 - a decoder's unexpected error on one file must not end the scan
        reason = f"{type(e).__name__}: {e}"
    return "failure", {**common, "reason": reason}


