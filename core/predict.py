"""Run the models on a person's songs and pictures.

    python -m core.predict song FILE...     one JSON line per song
    python -m core.predict face IMAGE...    one JSON line per picture

The library functions take bytes, so nothing a person uploads is written to disk.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import cards
from core.errors import InputError, ModelFileError
from core.tf_runtime import quiet_stderr


def load_task_model(task: str, path: Path | None = None, runtime: str = "litert"):
    """The model a command runs for `task`: `path` (a `.keras` file, or a face ensemble's `.json`
    card), by default the task's model (core.cards.DEFAULT_MODELS: what its page runs).

    runtime: "litert" (what the pages serve: the `.tflite` each card names, no TensorFlow) or
    "keras" (the `.keras` files in TensorFlow)."""
    path = Path(path or cards.DEFAULT_MODELS[task])
    if runtime not in ("litert", "keras"):
        raise ValueError(f"runtime must be 'litert' or 'keras', not {runtime!r}")
    if path.suffix == ".json":
        from core.face.served import FaceEnsemble

        return FaceEnsemble.load(path, runtime)
    if runtime == "keras":
        from core.runner import ModelRunner

        return ModelRunner.load(path)
    from core.litert import LiteRTModel

    return LiteRTModel.load(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["song", "face"])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--model", type=Path, default=None,
                        help="a .keras file or a face ensemble's .json card (default: what the task's page runs, "
                             "core.cards.DEFAULT_MODELS), served by LiteRT from the .tflite its card names")
    parser.add_argument("--whole-image", action="store_true",
                        help="face: score each picture as one face, without detection")
    args = parser.parse_args(argv)
    try:
        runner = load_task_model(args.task, args.model)
    except ModelFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = 0
    for path in args.files:
        try:
            data = path.read_bytes()
            # Decoders warn on stderr (mpg123 on a bad frame, libpng on a cut file, PIL on a big
            # picture); the CLI's stderr carries only its own one line per bad file.
            with quiet_stderr():
                if args.task == "song":
                    from core.song.predict import predict_song

                    result = predict_song(runner, data, str(path))
                else:
                    from core.face.predict import predict_faces

                    result = predict_faces(runner, data, str(path), args.whole_image)
            print(json.dumps(result), flush=True)
        except (InputError, OSError) as e:
            failed += 1
            message = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            print(f"error: {path}: {message}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
