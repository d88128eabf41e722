"""Scan a folder of songs: walk it, score each song with the app's song model, commit the rows in
batches to a Parquet dataset (core.library.store), skip what this model has already scored.

One per-song function (`core.library.score.score_file`) serves both paths: the local one (threads
over the app's decoding worker processes, `core.song.workers`) and Ray's (core.library.distributed).
Each file is read, scored and dropped: memory follows the songs in flight, never the library's size.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import PurePosixPath

import pyarrow.fs as pafs

from core import cards
from core.library.score import SongFile, SongScorer, score_file
from core.library.store import LibraryStore, filesystem
from core.song import decode

BATCH_SONGS = 32


def walk(root: str) -> list[SongFile]:
    """Every file under `root` (a local folder or a pyarrow filesystem URI), recursively, whose
    extension is one the app reads (core.song.decode.SUPPORTED_FORMATS), in path order."""
    fs, base = filesystem(root)
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    found = []
    for info in infos:
        if info.type != pafs.FileType.File or info.extension.lower() not in decode.SUPPORTED_FORMATS:
            continue
        relative = PurePosixPath(info.path).relative_to(PurePosixPath(base)).as_posix()
        mtime_ns = info.mtime_ns if info.mtime_ns is not None else 0
        found.append(SongFile(relative, int(info.size or 0), int(mtime_ns)))
    return sorted(found, key=lambda f: f.path)


def root_uri(root: str) -> str:
    """`root` as the dataset records it: an absolute local path, or the URI as given."""
    return root if "://" in root else filesystem(root)[1]


def local_results(root: str, files: list[SongFile], known: dict, scorer: SongScorer, jobs: int,
                  batch_size: int) -> Iterator[list[tuple[str, dict | None]]]:
    """Each batch of `files` scored on `jobs` threads here (musicnn and the models in TensorFlow,
    which release the GIL; the decoding in the scorer's worker processes) -> one list per batch.
    At most one batch is in flight, so a kill loses at most that batch."""
    fs, base = filesystem(root)
    with ThreadPoolExecutor(jobs, thread_name_prefix="library-scan") as pool:
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            futures = [pool.submit(score_file, fs, base, f, scorer, known.get(f.path, (None,) * 3)[2])
                       for f in chunk]
            yield [future.result() for future in as_completed(futures)]


def pending_files(files: Iterable[SongFile], known: dict[str, tuple[int, int, str]]) -> list[SongFile]:
    """The files this model has not scored: new paths, or a size or time other than when scored."""
    return [f for f in files if known.get(f.path, (None, None))[:2] != (f.size, f.mtime_ns)]


def scan(root: str, out: str, scorer: SongScorer | None = None, *, batch_size: int = BATCH_SONGS,
         jobs: int | None = None, ray_address: str | None = None, progress: bool = True,
         limit: int | None = None, progress_file=None) -> dict:
    """Score every song under `root` not yet scored by this model into the dataset at `out` ->
    a summary (files found, skipped, scored, failed, seconds, songs a second).

    scorer: by default the Song page's models, with decoding in one worker process per CPU.
    ray_address: run the per-song function on a Ray cluster ("auto", "ray://host:10001", …).
    limit: score at most this many of the pending files (the others wait for the next run)."""
    started = time.monotonic()
    cpus = os.cpu_count() or 1
    store = LibraryStore(out)
    # What is already scored is known before any model loads: a rerun with nothing new takes the
    # time of a walk and a read of the dataset's path columns.
    files = walk(root)
    model_sha256 = scorer.model_sha256 if scorer else cards.sha256_file(cards.DEFAULT_MODELS["song"])
    store.create(root_uri(root), model_sha256)
    known = store.scored(model_sha256)
    todo = pending_files(files, known)[:limit]
    workers = None
    loaded_s = time.monotonic() - started
    try:
        if not todo:
            counts = {"scored": 0, "failed": 0, "unchanged": 0, "batches": 0, "steady_songs_per_s": None}
        elif ray_address is not None:
            from core.library.distributed import ray_results

            batches = ray_results(ray_address, root_uri(root), todo, known, batch_size)
            counts = _commit_all(store, batches, len(todo), progress, progress_file)
        else:
            if scorer is None:
                from core.song.workers import SongFeatureWorkers

                workers = SongFeatureWorkers(cpus)
                scorer = SongScorer.load(workers.song_features)
                loaded_s = time.monotonic() - started
            batches = local_results(root, todo, known, scorer, jobs or cpus + 1, batch_size)
            counts = _commit_all(store, batches, len(todo), progress, progress_file)
    finally:
        if workers is not None:
            workers.close()
    seconds = time.monotonic() - started
    scoring_s = seconds - loaded_s
    return {"root": root_uri(root), "out": out, "model_sha256": model_sha256, "files": len(files),
            "already_scored": len(files) - len(todo), "pending": len(todo), **counts,
            "seconds": round(seconds, 2), "start_s": round(loaded_s, 2), "scoring_s": round(scoring_s, 2),
            "songs_per_s": round((counts["scored"] + counts["failed"]) / scoring_s, 3) if scoring_s > 0 and todo else None,
            "path": "ray" if ray_address is not None else "local"}


def _commit_all(store: LibraryStore, batches: Iterable[list], total: int, progress: bool, file=None) -> dict:
    from tqdm import tqdm

    counts = {"scored": 0, "failed": 0, "unchanged": 0, "batches": 0}
    first_at, first_songs = None, 0
    with tqdm(total=total, unit="song", disable=not progress, file=file, dynamic_ncols=True, smoothing=0.1) as bar:
        for batch in batches:
            songs = [row for kind, row in batch if kind == "song"]
            failures = [row for kind, row in batch if kind == "failure"]
            store.commit(songs, failures)
            counts["scored"] += len(songs)
            counts["failed"] += len(failures)
            counts["unchanged"] += len(batch) - len(songs) - len(failures)
            counts["batches"] += 1
            bar.update(len(batch))
            bar.set_postfix(failures=counts["failed"], refresh=False)
            if first_at is None:
                first_at, first_songs = time.monotonic(), len(batch)
    done = counts["scored"] + counts["failed"] + counts["unchanged"]
    # The rate once running: from the first committed batch on (a cluster's start and the models'
    # loading are not in it).
    running_s = time.monotonic() - first_at if first_at is not None else 0.0
    counts["steady_songs_per_s"] = round((done - first_songs) / running_s, 3) if running_s > 0 and done > first_songs else None
    return counts
