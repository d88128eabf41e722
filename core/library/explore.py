"""What the Library page does with a scanned library: load it, filter it, find songs like one,
walk a mood path, export a list (M3U, CSV), and say which song files may be played.

A library is a pandas DataFrame of store.SONG_SCHEMA's rows (the embedding as a separate
(n, 250) float32 matrix, L2-normalised, so "songs like this" is one matrix-vector product).
"""

from __future__ import annotations

import io
import os
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from core.library import store
from core.song import decode
from core.text import csv_text

LIST_COLUMNS = ["path", "quadrant", "mood", "valence", "arousal", "duration_s", "tags"]


class Library:
    """A library's songs (one row each, without the embedding; "tags" as one line of text), where
    its files are (`root`, when known) and, read when first asked for, its embeddings."""

    def __init__(self, songs: pd.DataFrame, root: str | None, read_embeddings):
        self.songs, self.root, self._read_embeddings, self._embeddings = songs, root, read_embeddings, None

    @property
    def embeddings(self) -> np.ndarray:
        """(n, 250) float32, each row of unit length (zero for a zero embedding), or (n, 0) when
        the library has none. Read on first use: a third of a 100,000-song file, not needed to draw."""
        if self._embeddings is None:
            self._embeddings = _unit_rows(self._read_embeddings(), len(self.songs))
        return self._embeddings


def load_library(source: str | bytes) -> Library:
    """A library from a dataset folder or .parquet file (a path the server was given) or the bytes
    of one .parquet file (an upload: its paths are shown, never read)."""
    if isinstance(source, bytes):
        root = None
    else:
        meta = store.read_meta(source) if Path(source).is_dir() else _file_meta(source)
        root = meta.get("root")
    available = set(_schema_names(source))
    missing = {"path", "valence", "arousal", "quadrant"} - available
    if missing:
        raise ValueError(f"not a MoodLens library: no {', '.join(sorted(missing))} column")
    wanted = [c for c in store.SONG_SCHEMA.names if c in available and c != "embedding"]
    table = store.read_table(source, wanted)
    rows = store.latest_rows(table)
    songs = table.take(rows).to_pandas()
    if "folder" not in songs:
        songs["folder"] = songs["path"].map(lambda p: PurePosixPath(p).parent.as_posix()).replace(".", "")
    songs["tags"] = songs["tags"].map(", ".join) if "tags" in songs else ""
    for column in ("duration_s", "mood"):
        if column not in songs:
            songs[column] = np.nan if column == "duration_s" else ""

    def read_embeddings():
        if "embedding" not in available:
            return None
        column = store.read_table(source, ["embedding"])["embedding"].take(rows)
        return column.combine_chunks().flatten().to_numpy(zero_copy_only=False)

    return Library(songs.reset_index(drop=True), root, read_embeddings)


def _schema_names(source: str | bytes) -> list[str]:
    import pyarrow.fs as pafs

    if isinstance(source, bytes):
        return pq.read_schema(io.BytesIO(source)).names
    fs, path = store.filesystem(source)
    if fs.get_file_info(path).type == pafs.FileType.File:
        return pq.read_schema(path, filesystem=fs).names
    return store.SONG_SCHEMA.names


def _unit_rows(flat: np.ndarray | None, n: int) -> np.ndarray:
    if flat is None or n == 0:
        return np.zeros((n, 0), np.float32)
    embeddings = np.asarray(flat, np.float32).reshape(n, -1)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return np.divide(embeddings, norms, out=np.zeros_like(embeddings), where=norms > 0)


def _file_meta(path: str) -> dict:
    """A compacted file's META, written beside it as <file>.json (store.compact)."""
    import json

    try:
        return json.loads(Path(path + ".json").read_text())
    except (OSError, ValueError):
        return {}


def all_tags(library: Library) -> list[str]:
    tags = library.songs["tags"].str.split(", ").explode()
    return sorted(t for t in tags.dropna().unique() if t)


def filter_songs(library: Library, quadrants: list[str] | None = None, tags: list[str] | None = None,
                 duration_s: tuple[float, float] | None = None, folder: str = "") -> np.ndarray:
    """Indices of the songs that pass every filter given: quadrant in `quadrants`, any of `tags`
    among its top tags, duration within `duration_s`, path under `folder`."""
    songs = library.songs
    keep = np.ones(len(songs), bool)
    if quadrants:
        keep &= songs["quadrant"].isin(quadrants).to_numpy()
    if tags:
        wanted = set(tags)
        keep &= songs["tags"].map(lambda t: bool(wanted & set(t.split(", ")))).to_numpy()
    if duration_s is not None:
        d = songs["duration_s"].to_numpy()
        keep &= (d >= duration_s[0]) & (d <= duration_s[1])
    if folder:
        prefix = folder.strip("/")
        keep &= ((songs["folder"] == prefix) | songs["folder"].str.startswith(prefix + "/")).to_numpy()
    return np.flatnonzero(keep)


def songs_like(library: Library, index: int, among: np.ndarray | None = None, k: int = 10) -> np.ndarray:
    """The `k` songs nearest song `index` by cosine similarity of their embeddings (itself left
    out), most alike first, among the indices `among` (default all)."""
    if library.embeddings.shape[1] == 0:
        raise ValueError("this library has no embeddings (scan it again with python -m core.library scan)")
    among = np.arange(len(library.songs)) if among is None else np.asarray(among)
    among = among[among != index]
    similarity = library.embeddings[among] @ library.embeddings[index]
    top = np.argsort(-similarity, kind="stable")[:k]
    return among[top]


def mood_path(library: Library, start: tuple[float, float], end: tuple[float, float], steps: int = 10,
              among: np.ndarray | None = None) -> np.ndarray:
    """An ordered playlist walking the mood map from `start` to `end` (valence, arousal): for each of
    `steps` evenly spaced points on the segment, the nearest song not yet in the list."""
    if steps < 2:
        raise ValueError(f"steps must be at least 2, not {steps}")
    among = np.arange(len(library.songs)) if among is None else np.asarray(among)
    points = library.songs[["valence", "arousal"]].to_numpy(np.float64)[among]
    taken = np.zeros(len(among), bool)
    chosen = []
    for t in np.linspace(0.0, 1.0, steps):
        if taken.all():
            break
        target = (1 - t) * np.asarray(start) + t * np.asarray(end)
        distance = np.where(taken, np.inf, ((points - target) ** 2).sum(axis=1))
        best = int(np.argmin(distance))
        taken[best] = True
        chosen.append(among[best])
    return np.asarray(chosen, int)


def nearest_song(library: Library, valence: float, arousal: float, among: np.ndarray | None = None) -> int:
    """The song nearest a point of the map."""
    among = np.arange(len(library.songs)) if among is None else np.asarray(among)
    points = library.songs[["valence", "arousal"]].to_numpy(np.float64)[among]
    return int(among[np.argmin(((points - (valence, arousal)) ** 2).sum(axis=1))])


def song_list(library: Library, indices) -> pd.DataFrame:
    return library.songs.iloc[np.asarray(indices, int)][LIST_COLUMNS].reset_index(drop=True)


def m3u_text(library: Library, indices, title: str = "MoodLens playlist") -> str:
    """An extended M3U playlist of the songs: each its duration, a label (mood and path) and its
    location (under the library's folder when known, else its relative path). A line break in a
    name would start a new entry: it is replaced."""
    lines = ["#EXTM3U", f"#PLAYLIST:{_one_line(title)}"]
    for _, song in library.songs.iloc[np.asarray(indices, int)].iterrows():
        duration = -1 if pd.isna(song["duration_s"]) else int(round(song["duration_s"]))
        label = f"{song['quadrant']} {song.get('mood', '')} — {song['path']}"
        location = song["path"] if not library.root or "://" in library.root else os.path.join(library.root, song["path"])
        lines += [f"#EXTINF:{duration},{_one_line(label)}", _one_line(location)]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(str(text).splitlines())


def list_csv(library: Library, indices) -> str:
    """The songs as CSV, each text cell safe in a spreadsheet (core.text.csv_text)."""
    return csv_text(song_list(library, indices))


def playable_file(root: str | None, path: str) -> Path | None:
    """The song file a row names, when the page may read it: a library given to the server (its
    `root` known and local), the file inside that folder once every link is resolved, a format the
    app reads, and there. Anything else (an upload's rows, "../", an absolute path, a link out of
    the folder) -> None."""
    if not root or "://" in root or not path:
        return None
    base = Path(root).resolve()
    candidate = (base / path).resolve()
    if not candidate.is_relative_to(base) or candidate == base:
        return None
    if candidate.suffix.lower().lstrip(".") not in decode.SUPPORTED_FORMATS or not candidate.is_file():
        return None
    return candidate


def library_source(argv: list[str], environ: dict) -> str | None:
    """The library the server was given: `streamlit run streamlit_app.py -- --library PATH`, else
    the MOODLENS_LIBRARY environment variable; None when neither."""
    for i, arg in enumerate(argv):
        if arg == "--library" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--library="):
            return arg.removeprefix("--library=")
    return environ.get("MOODLENS_LIBRARY") or None


def selected_indices(points: list[dict]) -> np.ndarray:
    """The library rows of a chart selection's points (each point's customdata[0], set by
    core.library.plots.library_map), in selection order without repeats."""
    seen = dict.fromkeys(int(p["customdata"][0]) for p in points if p.get("customdata"))
    return np.fromiter(seen, int, len(seen))


def find_songs(library: Library, text: str, among: np.ndarray, limit: int = 200) -> np.ndarray:
    """Up to `limit` of the songs `among` whose path contains `text` (any case)."""
    paths = library.songs["path"].to_numpy()[among]
    if text:
        hits = np.char.find(np.char.lower(paths.astype(str)), text.lower()) >= 0
        among = among[hits]
    return among[:limit]
