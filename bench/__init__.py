"""MoodLens's benchmarks (measured goals) and, in `bench.experiments`, one-off experiments.

Run each from the repository root as a module: `python -m bench.song_latency --help`. Every one
writes its report as JSON (`--json PATH`, by default `bench/results/NAME.json`); `python -m
bench.docs` writes the generated blocks of README.md and docs/ from those reports and the cards.
Shared paths, frames, timers and the report writer: `bench.common`. The server never imports
this package.
"""

import os

# Before any bench imports TensorFlow: its C++ start-up lines would fill every report.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
