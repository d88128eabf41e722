"""A library's Parquet dataset: one file per committed batch, written whole or not at all.

    library.parquet/                    the dataset (`--out`): a folder, read as one table
      part-<time>-<n>.parquet           one per batch of songs (SONG_SCHEMA)
      _failures/part-<time>-<n>.parquet the files that could not be scored (FAILURE_SCHEMA)
      _library.json                     the scanned folder (root) and the model

Why a file per batch rather than appending to one file: a Parquet file's footer is written last,
so a file cut short by a kill cannot be read at all. Each batch is written to a hidden temporary
name, flushed to disk (fsync) and then renamed: a reader, or the next run, sees a batch whole or
not at all, so a kill loses at most the batch in flight. Names starting with "_" or "." are left out
by pyarrow's dataset reader, so `pandas.read_parquet("library.parquet")` reads the songs only.

The output may be a local path or any pyarrow filesystem URI (s3://…, gs://…, hdfs://…): on an
object store a file appears whole when its upload completes, which gives the same guarantee.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from core.song.musicnn import EMBEDDING_DIM

FAILURES = "_failures"
META = "_library.json"

SONG_SCHEMA = pa.schema([
    ("path", pa.string()),             # relative to the scanned folder (META's root), "/"-separated
    ("folder", pa.string()),           # the path's folder ("" at the root)
    ("size", pa.int64()),              # bytes
    ("mtime_ns", pa.int64()),          # modification time when scored: a rerun trusts the hash while size and time hold
    ("sha256", pa.string()),           # of the file's content
    ("duration_s", pa.float32()),
    ("valence", pa.float32()),
    ("arousal", pa.float32()),
    ("valence_sd", pa.float32()),      # sd of the fold models' song means (the Song page's spread); null without folds
    ("arousal_sd", pa.float32()),
    ("quadrant", pa.string()),         # "Q1".."Q4"
    ("mood", pa.string()),
    ("tags", pa.list_(pa.string())),   # musicnn's top tags, highest first
    ("tag_probabilities", pa.list_(pa.float32())),
    # Mean over the song's distinct 3-s patches of musicnn's 250-d patch embedding (200 penultimate
    # units, then the 50 tag probabilities): what "songs like this" compares.
    ("embedding", pa.list_(pa.float32(), EMBEDDING_DIM)),
    ("model_sha256", pa.string()),     # the song model file's SHA-256
    ("scored_at", pa.timestamp("ms", tz="UTC")),
])

FAILURE_SCHEMA = pa.schema([
    ("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()), ("sha256", pa.string()),
    ("reason", pa.string()), ("model_sha256", pa.string()), ("scored_at", pa.timestamp("ms", tz="UTC")),
])


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A local path or a pyarrow filesystem URI -> (filesystem, path on it)."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


class LibraryStore:
    """The dataset at `uri`: what has been scored, and new batches committed to it."""

    def __init__(self, uri: str):
        self.uri = uri
        self.fs, self.path = filesystem(uri)
        self._local = isinstance(self.fs, pafs.LocalFileSystem)
        self._batch = 0
        self._run = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]

    def create(self, root: str, model_sha256: str) -> None:
        """The dataset's folders and META; ValueError if it holds the songs of another folder
        (its paths are relative to the folder scanned)."""
        earlier = self.meta().get("root")
        if earlier not in (None, root):
            raise ValueError(f"{self.uri} holds the songs of {earlier}, not {root}: give another --out")
        self.fs.create_dir(f"{self.path}/{FAILURES}", recursive=True)
        meta = {"root": root, "model_sha256": model_sha256}
        with self.fs.open_output_stream(f"{self.path}/{META}") as f:
            f.write(json.dumps(meta, indent=1).encode())

    def meta(self) -> dict:
        return read_meta(self.uri)

    def scored(self, model_sha256: str) -> dict[str, tuple[int, int, str]]:
        """{path: (size, mtime_ns, sha256)} of every song and failure this model has already
        scored: a rerun skips those files while they are unchanged."""
        known = {}
        for folder, schema in ((self.path, SONG_SCHEMA), (f"{self.path}/{FAILURES}", FAILURE_SCHEMA)):
            table = _read(self.fs, folder, schema, ["path", "size", "mtime_ns", "sha256", "model_sha256"])
            if table is None:
                continue
            for path, size, mtime, sha, model in zip(*(table[c].to_pylist() for c in table.column_names)):
                if model == model_sha256:
                    known[path] = (size, mtime, sha)
        return known

    def commit(self, songs: list[dict], failures: list[dict]) -> None:
        """One batch, each table written whole (temporary name, fsync, rename) or not at all."""
        self._batch += 1
        name = f"part-{self._run}-{self._batch:05d}.parquet"
        if failures:
            self._write(pa.Table.from_pylist(failures, FAILURE_SCHEMA), f"{self.path}/{FAILURES}/{name}")
        if songs:
            self._write(pa.Table.from_pylist(songs, SONG_SCHEMA), f"{self.path}/{name}")

    def _write(self, table: pa.Table, path: str) -> None:
        if not self._local:  # an object store's upload appears whole when it completes
            with self.fs.open_output_stream(path) as f:
                pq.write_table(table, f)
            return
        folder, name = os.path.split(path)
        temporary = os.path.join(folder, f".{name}.tmp")
        with open(temporary, "wb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
        directory = os.open(folder, os.O_RDONLY)  # the rename itself survives a power cut
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _read(fs: pafs.FileSystem, folder: str, schema: pa.Schema, columns: list[str] | None = None) -> pa.Table | None:
    info = fs.get_file_info(folder)
    if info.type != pafs.FileType.Directory:
        return None
    dataset = ds.dataset(folder, schema=schema, format="parquet", filesystem=fs)
    return dataset.to_table(columns=columns)


def read_meta(uri: str) -> dict:
    fs, path = filesystem(uri)
    try:
        with fs.open_input_stream(f"{path}/{META}") as f:
            return json.loads(f.read())
    except (FileNotFoundError, OSError):
        return {}


def read_songs(source: str | bytes, columns: list[str] | None = None) -> pa.Table:
    """Every song of a library (see read_table), the latest row of each path only (a changed file
    is scored again; its old row stays on disk)."""
    if columns is None:
        return latest_per_path(read_table(source))
    keys = read_table(source, ["path", "scored_at"])
    return read_table(source, columns).take(latest_rows(keys))


def read_failures(uri: str) -> pa.Table:
    fs, path = filesystem(uri)
    return _read(fs, f"{path}/{FAILURES}", FAILURE_SCHEMA) or FAILURE_SCHEMA.empty_table()


def latest_per_path(table: pa.Table) -> pa.Table:
    """The latest row (scored_at) of each path."""
    return table.take(latest_rows(table))


def latest_rows(table: pa.Table) -> pa.Array:
    """Indices of the latest row of each path, in the table's order (all rows when paths are unique)."""
    if "scored_at" not in table.column_names or "path" not in table.column_names or table.num_rows == 0:
        return pa.array(np.arange(table.num_rows), pa.int64())
    order = pa.table({"path": table["path"], "t": table["scored_at"], "i": pa.array(np.arange(table.num_rows), pa.int64())}
                     ).sort_by([("path", "ascending"), ("t", "descending")])
    paths = order["path"].to_numpy(zero_copy_only=False)
    keep = np.concatenate([[True], paths[1:] != paths[:-1]])
    return pa.array(np.sort(order["i"].to_numpy()[keep]), pa.int64())


def read_table(source: str | bytes, columns: list[str] | None = None) -> pa.Table:
    """Song rows as stored (every version of a path): from a dataset folder, a .parquet file
    (local path or pyarrow URI), or the bytes of one .parquet file."""
    import io

    if isinstance(source, bytes):
        return pq.read_table(io.BytesIO(source), columns=columns)
    fs, path = filesystem(source)
    if fs.get_file_info(path).type == pafs.FileType.File:
        return pq.read_table(path, filesystem=fs, columns=columns)
    return _read(fs, path, SONG_SCHEMA, columns) or SONG_SCHEMA.empty_table().select(columns or SONG_SCHEMA.names)


def compact(uri: str, out: str) -> int:
    """The dataset's latest songs as one Parquet file (for the page's upload, or to hand on) -> rows."""
    table = read_songs(uri)
    fs, path = filesystem(out)
    with fs.open_output_stream(path) as f:
        pq.write_table(table, f, metadata_collector=None)
    meta = read_meta(uri)
    if meta:
        with fs.open_output_stream(path + ".json") as f:
            f.write(json.dumps(meta, indent=1).encode())
    return table.num_rows
