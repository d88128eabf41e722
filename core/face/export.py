"""Every face model's `.tflite`, the file the server runs on LiteRT, written beside its `.keras`.

    python -m core.face.export [--models-dir models/face] [--data FILE.npz] [--only NAME,...]

For each `.keras` in the folder (every variant, and any one added later): the model, loaded after
its SHA-256 is checked against its card, is exported with Keras 3's own
`model.export(path, format="litert")` (dynamic batch size), the `.tflite` is run on LiteRT beside
the `.keras` on TensorFlow on real faces (FER2013 PublicTest, as seen and mirrored, when --data is
there; else random pictures), and only when no probability differs by more than TOLERANCE is it
kept and recorded in the card:

    "litert_file": {"name", "sha256", "size_bytes", "made_from_sha256", "max_abs_diff_vs_keras", "checked_on"}

TensorFlow is imported here, where a model is exported; serving (core.face.served) never imports it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from core import cards
from core.errors import ModelFileError

FACE_MODELS = cards.MODELS_DIR / "face"
DEFAULT_DATA = cards.MODELS_DIR.parent.parent / "shared" / "data" / "fer2013" / "fer2013.npz"
TOLERANCE = 1e-4          # largest difference allowed on a probability (issue 24)
CHECK_FACES = 512         # PublicTest faces checked, each also mirrored
MAX_TFLITE_BYTES = 15_000_000


def check_faces(data_path: Path | None, count: int = CHECK_FACES) -> tuple[np.ndarray, str]:
    """Faces to hold the two runtimes against: (2 * count, 48, 48, 1) float32 0..255, the first
    `count` PublicTest faces and their mirror images (random pictures when there is no data file),
    and a description of them."""
    from core.face.served import mirrored

    if data_path is not None and Path(data_path).is_file():
        with np.load(data_path) as npz:
            rows = np.flatnonzero(npz["usage"] == 1)[:count]
            x = npz["pixels"][rows][..., None].astype(np.float32)
        where = f"{len(x)} FER2013 PublicTest faces and their mirror images ({Path(data_path).name})"
    else:
        x = np.random.default_rng(0).uniform(0, 255, (count, 48, 48, 1)).astype(np.float32)
        where = f"{count} random 48x48 pictures and their mirror images"
    return np.concatenate([x, mirrored(x)]), where


def export_one(keras_path: Path, faces: np.ndarray, where: str) -> dict:
    """Export one `.keras` to the `.tflite` beside it, check it against Keras on `faces`, and record
    it in the card -> the card's new `litert_file`. Raises ModelFileError when the two runtimes
    differ by more than TOLERANCE or the file is over MAX_TFLITE_BYTES (nothing is then kept)."""
    from core.litert import LiteRTModel, record_litert_file
    from core.runner import ModelRunner, batched
    from core.tf_runtime import quiet_stderr

    keras_path = Path(keras_path)
    runner = ModelRunner.load(keras_path)  # checks the .keras against its card
    tflite_path = keras_path.with_suffix(".tflite")
    partial = tflite_path.with_name(f".partial.{tflite_path.name}")  # LiteRT export wants .tflite
    try:
        with quiet_stderr(), contextlib.redirect_stdout(sys.stderr):  # "Saved artifact at ..."
            runner.model.export(str(partial), format="litert")
        size = partial.stat().st_size
        if size > MAX_TFLITE_BYTES:
            raise ModelFileError(f"{tflite_path.name} would be {size / 1e6:.1f} MB, over {MAX_TFLITE_BYTES / 1e6:.0f} MB")
        expected = batched(runner, faces)
        actual = batched(LiteRTModel(partial.read_bytes(), name=tflite_path.name), faces)
        difference = float(np.abs(expected - actual).max())
        if not difference <= TOLERANCE:
            raise ModelFileError(f"{tflite_path.name}: LiteRT differs from Keras by {difference:.2e} on {where}, "
                                 f"over {TOLERANCE:.0e}; nothing written")
        os.replace(partial, tflite_path)
    finally:
        partial.unlink(missing_ok=True)
    entry = {"name": tflite_path.name, "sha256": cards.sha256_file(tflite_path),
             "size_bytes": tflite_path.stat().st_size,
             "made_from_sha256": runner.card["model_file"]["sha256"],
             "max_abs_diff_vs_keras": difference, "checked_on": where}
    record_litert_file(keras_path, entry)
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.face.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=FACE_MODELS, help="default: %(default)s")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="fer2013.npz for the check (default: %(default)s; random pictures without it)")
    parser.add_argument("--only", default="", help="comma-separated model names (default: every .keras)")
    args = parser.parse_args(argv)
    only = {n for n in args.only.split(",") if n}
    paths = [p for p in sorted(args.models_dir.glob("*.keras")) if not only or p.stem in only]
    if not paths:
        print(f"error: no .keras file in {args.models_dir}" + (f" named {sorted(only)}" if only else ""),
              file=sys.stderr)
        return 2
    faces, where = check_faces(args.data)
    failed = 0
    for path in paths:
        try:
            entry = export_one(path, faces, where)
            print(json.dumps({"model": path.stem, **entry}), flush=True)
        except (ModelFileError, OSError, ValueError) as e:
            print(f"error: {path.name}: {e}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
