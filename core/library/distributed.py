"""The scan's per-song function on a Ray cluster (an optional extra: requirements-scale.txt).

Ray Data reads the list of pending files, and `map_batches` hands them to actors of `RayScorer`:
each loads the Song page's models once and scores its songs with `core.library.scan.score_file`,
the local path's own function (core.library.score). The rows stream back to the driver, which commits them in batches
to the dataset as the local path does (same schema, same resume). The songs must be readable by
every worker at the same path (a shared folder) or URI (any pyarrow filesystem: s3://…, gs://…).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.library.score import SongFile


class RayScorer:
    """One Ray actor: the models loaded once, then a batch of files -> their pickled results
    (a song's row, a failure, or "same"), one per file."""

    def __init__(self, root: str):
        import tensorflow as tf

        # Each actor holds one CPU: TensorFlow's own thread pools would make every actor use them all.
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from core.library.score import SongScorer
        from core.library.store import filesystem

        self.fs, self.base = filesystem(root)
        self.scorer = SongScorer.load()

    def __call__(self, batch: dict) -> dict:
        from core.library.score import score_file

        results = []
        for path, size, mtime_ns, known in zip(batch["path"], batch["size"], batch["mtime_ns"], batch["known_sha256"]):
            file = SongFile(str(path), int(size), int(mtime_ns))
            results.append(pickle.dumps(score_file(self.fs, self.base, file, self.scorer, known or None)))
        return {"result": np.array(results, dtype=object)}


def ray_results(address: str, root: str, files: list[SongFile], known: dict, batch_size: int,
                actors: int | None = None) -> Iterator[list[tuple[str, dict | None]]]:
    """`files` scored on the Ray cluster at `address` ("auto", "ray://host:10001", or "local" for a
    cluster started here) -> lists of results of up to `batch_size` songs, as they arrive. One actor
    per CPU of the cluster unless `actors` says."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("Ray is not installed: pip install -r requirements-scale.txt (or scan without --ray)") from None
    if not ray.is_initialized():
        # The workers import core from this checkout's path: the same path on every node (docs/scale.md).
        root_dir = str(Path(__file__).resolve().parent.parent.parent)
        python_path = os.pathsep.join(p for p in (root_dir, os.environ.get("PYTHONPATH", "")) if p)
        ray.init(address=None if address == "local" else address, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": python_path, "TF_CPP_MIN_LOG_LEVEL": "2"}})
    actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
    items = [{"path": f.path, "size": f.size, "mtime_ns": f.mtime_ns,
              "known_sha256": known.get(f.path, (None, None, ""))[2] or ""} for f in files]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), actors * 4)))
    scored = dataset.map_batches(RayScorer, fn_constructor_kwargs={"root": root}, batch_size=1,
                                 concurrency=actors, num_cpus=1, batch_format="numpy")
    batch = []
    for row in scored.iter_rows():
        batch.append(pickle.loads(row["result"]))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
