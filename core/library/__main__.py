"""Score a folder of songs into a Parquet dataset, resumably.

    python -m core.library scan DIR --out library.parquet [--ray auto|ADDRESS] [--quiet]
    python -m core.library compact library.parquet --out one_file.parquet

`scan` walks DIR (recursively; the formats the app reads), scores every song with the Song page's
model and commits rows in batches (core.library.store): a kill loses at most the batch in flight,
and a rerun scores only files new or changed since. Files that cannot be read are listed in the
dataset's `_failures/` table, and the run goes on. A progress bar goes to stderr, a JSON summary
to stdout. `compact` writes the latest row of every song as one file (for the Library page's upload).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from core.errors import ModelFileError
from core.library import scan as library_scan
from core.library import store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.library", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    scan = commands.add_parser("scan", help="score a folder's songs into a Parquet dataset")
    scan.add_argument("root", help="the music folder (a local path, or a pyarrow filesystem URI)")
    scan.add_argument("--out", required=True, help="the dataset folder (local path or pyarrow URI), e.g. library.parquet")
    scan.add_argument("--batch", type=int, default=library_scan.BATCH_SONGS, help="songs a committed batch (default %(default)s)")
    scan.add_argument("--jobs", type=int, default=None, help="songs scored at once on the local path (default: CPUs + 1)")
    scan.add_argument("--limit", type=int, default=None, help="score at most this many new files this run")
    scan.add_argument("--ray", metavar="ADDRESS", default=None,
                      help="run on a Ray cluster: 'auto' (this machine's cluster) or an address (needs requirements-scale.txt)")
    scan.add_argument("--quiet", action="store_true", help="no progress bar")
    compact = commands.add_parser("compact", help="the latest row of every song as one Parquet file")
    compact.add_argument("dataset")
    compact.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    if args.command == "compact":
        print(json.dumps({"rows": store.compact(args.dataset, args.out), "out": args.out}))
        return 0
    if args.batch < 1:
        parser.error(f"--batch must be at least 1, not {args.batch}")
    from core.tf_runtime import quiet_stderr

    # Decoders and TensorFlow log on file descriptor 2; the progress bar keeps a copy of it.
    bar = os.fdopen(os.dup(2), "w")
    try:
        with quiet_stderr():
            summary = library_scan.scan(args.root, args.out, batch_size=args.batch, jobs=args.jobs,
                                        ray_address=args.ray, progress=not args.quiet, limit=args.limit,
                                        progress_file=bar)
    except (ModelFileError, ValueError, FileNotFoundError, ConnectionError, RuntimeError) as e:
        print(f"error: {e}", file=bar, flush=True)
        return 2
    finally:
        bar.close()
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
