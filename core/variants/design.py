"""Design a variant: the choices a person may change, checked before anything trains.

A designed variant is data, as a zoo variant is: the argument set of its family's one builder
(`core.song.model.build_song_crnn`, `core.face.model.build_face_cnn`). This module names every
choice with its default (the zoo default's), its valid range and a label; `validate` turns what a
person picked into the builder's full argument set or raises ValueError naming what is wrong; and
`song_sketch` / `face_sketch` give the layer stack and its parameter count computed here, without
TensorFlow (the page stays TF-free until training is asked for; tests check the counts against
Keras's count_params). Nothing a person types is evaluated: numbers and lists are parsed by
`parse_numbers`, names checked against a pattern.

    python -m core.variants.design cache --data ../shared/data/music --cache /tmp/moodlens_cache
        Computes the songs' musicnn embeddings once (core.song.features.dataset_embeddings, the
        training's own cache); the panel then trains on them (MOODLENS_DESIGN_DATA and
        MOODLENS_DESIGN_CACHE, docs/design_a_variant.md).
    python -m core.variants.design sketch '{"lstm_units": [32, 64], "dropout": 0.4}'
        Prints the layer stack and parameter count of a song design as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

EMBEDDING_DIM = 250       # core.song.model.EMBEDDING_DIM (not imported: that module imports Keras)
WINDOW_PATCHES = 10       # core.song.features.WINDOW_PATCHES: one 30-s window
FACE_SIZE_PX = 48         # core.face.model.FACE_SIZE_PX
N_EXPRESSIONS = 7         # core.face.data.EXPRESSIONS
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")
MAX_PARAMETERS = 5_000_000  # a design above this is refused: its training would not fit the panel's limit
DEFAULT_LIMIT_S = 600       # the panel's time limit a training (MOODLENS_DESIGN_LIMIT_S overrides)
# An H100 trains the face CNN about as fast as this many CPU threads (rough: ~6 TFLOP/s effective
# on the zoo's cards, 1.6e15 FLOP a training, against ~20 GFLOP/s a CPU thread in TensorFlow).
GPU_THREADS_EQUIVALENT = 300


@dataclass(frozen=True)
class Choice:
    """One choice a person may change: the builder's argument `key`, its kind and valid values."""

    key: str
    label: str
    kind: str                      # "int", "float", "bool", "option", "ints", "floats"
    default: object
    low: float | None = None       # for numbers, and each number of a list
    high: float | None = None
    options: tuple = ()
    max_items: int = 0             # lists: at most this many entries
    min_items: int = 0
    help: str = ""


# The zoo default's values (models/song/default.json's config; tests/variants/test_design.py checks
# they equal it and the builder's defaults).
SONG_CHOICES = (
    Choice("conv_filters", "Conv1D filters per block", "ints", (64, 128), 4, 512, max_items=4,
           help="one Conv1D block per number (kernel, batch norm, ReLU, pooling, dropout); none: no conv blocks"),
    Choice("kernel_size", "Conv1D kernel (patches)", "int", 3, 1, 9),
    Choice("batch_norm", "Batch normalization after each convolution", "bool", True),
    Choice("pooling", "Pooling after each conv block", "option", "max", options=("max", "average", "none")),
    Choice("pool_size", "Pool size (patches)", "int", 2, 2, 4),
    Choice("dropout", "Dropout after each conv block", "float", 0.3, 0.0, 0.8),
    Choice("spatial_dropout", "Spatial dropout (whole feature maps)", "bool", False),
    Choice("lstm_units", "LSTM units per layer", "ints", (128, 64), 4, 512, max_items=3, min_items=1,
           help="with a global summary the last entry is replaced by the global pooling (not built)"),
    Choice("lstm_dropout", "LSTM input dropout", "float", 0.3, 0.0, 0.8),
    Choice("bidirectional", "Bidirectional LSTMs", "bool", False),
    Choice("summary", "Summary over time", "option", "global_average",
           options=("global_average", "global_max", "lstm"),
           help="lstm: the last LSTM's last step; global_*: pooling over the previous layer's sequence"),
    Choice("dense_units", "Dense widths", "ints", (128, 64, 32), 4, 1024, max_items=4),
    Choice("dense_dropout", "Dropout after each dense layer", "floats", (0.4, 0.3, 0.2), 0.0, 0.8, max_items=4),
    Choice("l2", "L2 penalty on dense kernels", "float", 1e-3, 0.0, 0.1),
)
FACE_CHOICES = (
    Choice("blocks", "Conv blocks", "int", 4, 1, 5),
    Choice("filters", "Filters of the first block (doubling each block)", "int", 32, 4, 128),
    Choice("convs_per_block", "Convolutions per block", "int", 2, 1, 3),
    Choice("pooling", "Pooling", "option", "max", options=("max", "average", "strided")),
    Choice("dropout", "Dropout after each block", "float", 0.25, 0.0, 0.8),
    Choice("dense_units", "Dense widths", "ints", (256,), 4, 2048, max_items=3),
    Choice("dense_dropout", "Dropout after each dense layer", "float", 0.5, 0.0, 0.8),
)
CHOICES = {"song": SONG_CHOICES, "face": FACE_CHOICES}
FIXED = {"song": {"input_features": "musicnn", "pool_padding": "same", "name": "song_crnn"},
         "face": {"num_classes": N_EXPRESSIONS, "name": "face_cnn"}}
# Why the fixed ones are fixed, shown by the panel.
FIXED_WHY = {"song": "Fixed: the musicnn input, and 'same' pooling padding (a song of one 3-s patch must still "
                     "give one step: 'valid' would leave no step for short songs).",
             "face": "Fixed: the 48x48 grey input and the 7 expressions."}


def defaults(task: str) -> dict:
    """The zoo default's choices, as plain JSON values (lists, not tuples)."""
    return {c.key: list(c.default) if isinstance(c.default, tuple) else c.default for c in CHOICES[task]}


def parse_numbers(text: str, kind: type = int) -> list:
    """'64, 128' -> [64, 128]: comma- or space-separated numbers, nothing else (never evaluated).
    Raises ValueError naming the first thing that is not a number."""
    items = [t for t in re.split(r"[\s,;]+", str(text).strip()) if t]
    pattern = r"[0-9]{1,6}" if kind is int else r"[0-9]{0,6}(\.[0-9]{1,6})?"
    out = []
    for item in items:
        if not re.fullmatch(pattern, item) or item == ".":
            raise ValueError(f"{item[:20]!r} is not a {'whole number' if kind is int else 'number'}")
        out.append(kind(item))
    return out


def _check_number(choice: Choice, value, where: str) -> float:
    integral = choice.kind in ("int", "ints")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integral and not float(value).is_integer()):
        raise ValueError(f"{where} must be a {'whole number' if integral else 'number'}, not {value!r}")
    if not math.isfinite(value) or not choice.low <= value <= choice.high:
        raise ValueError(f"{where} must be between {choice.low:g} and {choice.high:g}, not {value!r}")
    return int(value) if integral else float(value)


def _check_choice(choice: Choice, value):
    if choice.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{choice.label} must be true or false, not {value!r}")
        return value
    if choice.kind == "option":
        if value not in choice.options:
            raise ValueError(f"{choice.label} must be one of {', '.join(choice.options)}, not {value!r}")
        return value
    if choice.kind in ("int", "float"):
        return _check_number(choice, value, choice.label)
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{choice.label} must be a list of numbers, not {value!r}")
    if not choice.min_items <= len(value) <= choice.max_items:
        raise ValueError(f"{choice.label} takes {choice.min_items} to {choice.max_items} entries, not {len(value)}")
    return [_check_number(choice, v, f"each of {choice.label}") for v in value]


def validate(task: str, choices: Mapping, name: str | None = None) -> dict:
    """A person's choices -> the builder's full argument set (the variant's config), the zoo
    default's values for what is not given. Raises ValueError with a message a person can act on
    for an unknown choice, a value out of range, or a combination that would not build or train."""
    if task not in CHOICES:
        raise ValueError(f"task must be song or face, not {task!r}")
    known = {c.key: c for c in CHOICES[task]}
    unknown = sorted(set(choices) - set(known))
    if unknown:
        raise ValueError(f"unknown choice(s) {unknown}; the {task} designs take {sorted(known)}")
    config = {**defaults(task), **FIXED[task]}
    for key, value in choices.items():
        config[key] = _check_choice(known[key], value)
    if name is not None:
        check_name(name)
    (_song_combinations if task == "song" else _face_combinations)(config)
    count = (song_sketch if task == "song" else face_sketch)(config)["parameters"]
    if count > MAX_PARAMETERS:
        raise ValueError(f"this design has {count:,} parameters, over the panel's {MAX_PARAMETERS:,}: make its "
                         "layers narrower")
    return config


def _song_combinations(config: dict) -> None:
    if len(config["dense_dropout"]) != len(config["dense_units"]):
        raise ValueError(f"give one dense dropout rate per dense layer: {len(config['dense_units'])} dense "
                         f"layer(s) but {len(config['dense_dropout'])} rate(s)")
    if config["spatial_dropout"] and config["dropout"] == 0:
        raise ValueError("spatial dropout needs a conv-block dropout rate above 0")
    if config["spatial_dropout"] and not config["conv_filters"]:
        raise ValueError("spatial dropout sits after the conv blocks: add at least one conv block")
    if not config["conv_filters"] and config["pooling"] != "none":
        raise ValueError("pooling sits after the conv blocks: add at least one conv block or choose pooling 'none'")


def _face_combinations(config: dict) -> None:
    if config["pooling"] == "strided" and config["convs_per_block"] < 1:
        raise ValueError("strided pooling needs a convolution in each block")
    side = FACE_SIZE_PX
    for _ in range(config["blocks"]):
        side = math.ceil(side / 2) if config["pooling"] == "strided" else side // 2
    if side < 1:
        raise ValueError(f"{config['blocks']} blocks halve a 48-px face to nothing: use fewer blocks")


def check_name(name: str, taken: tuple[str, ...] = ()) -> str:
    """A designed variant's name: lower-case letters, digits, '_', '-', '.' (a file name, never a
    path), not a zoo variant's."""
    from core.variants.zoo import ZOO

    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"the name {str(name)[:40]!r} must be 1 to 40 lower-case letters, digits, '_', '-' or '.', "
                         "starting with a letter or digit")
    if name in {n for task in ZOO.values() for n in task} or name in taken:
        raise ValueError(f"the name {name!r} is taken: choose another")
    return name


# --- the layer stack, without TensorFlow ------------------------------------------------------

def _row(layer: str, kind: str, shape: tuple, parameters: int, note: str = "") -> dict:
    return {"layer": layer, "type": kind, "output shape": str(shape), "parameters": int(parameters), "note": note}


def song_sketch(config: dict, steps: int = WINDOW_PATCHES) -> dict:
    """The CRNN's layers for one 30-s window of `steps` patches, as build_song_crnn builds them ->
    {"layers": [{"layer", "type", "output shape", "parameters", "note"}], "parameters": total}.
    Parameters count every weight, trainable or not (Keras's count_params)."""
    rows = [_row("musicnn_patches", "Input", (steps, EMBEDDING_DIM), 0),
            _row("standardize", "Normalization", (steps, EMBEDDING_DIM), 2 * EMBEDDING_DIM + 1,
                 "mean and variance adapted to the training songs")]
    channels, length = EMBEDDING_DIM, steps
    for i, width in enumerate(config["conv_filters"], start=1):
        bn = config["batch_norm"]
        rows.append(_row(f"conv{i}", "Conv1D", (length, width),
                         config["kernel_size"] * channels * width + (0 if bn else width)))
        if bn:
            rows.append(_row(f"conv{i}_bn", "BatchNormalization", (length, width), 4 * width))
        rows.append(_row(f"conv{i}_relu", "ReLU", (length, width), 0))
        channels = width
        if config["pooling"] != "none":
            length = math.ceil(length / config["pool_size"])  # padding "same"
            kind = "MaxPooling1D" if config["pooling"] == "max" else "AveragePooling1D"
            rows.append(_row(f"pool{i}", kind, (length, width), 0))
        if config["dropout"] > 0:
            kind = "SpatialDropout1D" if config["spatial_dropout"] else "Dropout"
            rows.append(_row(f"dropout{i}", kind, (length, width), 0, f"rate {config['dropout']:g}"))
    summary = config["summary"]
    recurrent = config["lstm_units"] if summary == "lstm" else config["lstm_units"][:-1]
    for i, units in enumerate(recurrent, start=1):
        last = summary == "lstm" and i == len(recurrent)
        per = 4 * (channels * units + units * units + units)
        width = 2 * units if config["bidirectional"] else units
        shape = (width,) if last else (length, width)
        name, kind = (f"bilstm{i}", "Bidirectional(LSTM)") if config["bidirectional"] else (f"lstm{i}", "LSTM")
        rows.append(_row(name, kind, shape, per * (2 if config["bidirectional"] else 1),
                         "last step" if last else "whole sequence"))
        channels = width
    if summary != "lstm":
        kind = "GlobalAveragePooling1D" if summary == "global_average" else "GlobalMaxPooling1D"
        note = (f"replaces LSTM({config['lstm_units'][-1]}), the last entry" if config["lstm_units"] else "")
        rows.append(_row("global_pool", kind, (channels,), 0, note))
    for i, (units, rate) in enumerate(zip(config["dense_units"], config["dense_dropout"]), start=1):
        rows.append(_row(f"dense{i}", "Dense (ReLU)", (units,), channels * units + units, f"L2 {config['l2']:g}"))
        if rate > 0:
            rows.append(_row(f"dense{i}_dropout", "Dropout", (units,), 0, f"rate {rate:g}"))
        channels = units
    rows.append(_row("valence_arousal", "Dense (linear)", (2,), channels * 2 + 2))
    return {"layers": rows, "parameters": sum(r["parameters"] for r in rows)}


def face_sketch(config: dict) -> dict:
    """The face CNN's layers for one 48x48 grey picture, as build_face_cnn builds them."""
    side, channels = FACE_SIZE_PX, 1
    rows = [_row("face", "Input", (side, side, 1), 0), _row("scale", "Rescaling", (side, side, 1), 0, "1/255")]
    for b in range(1, config["blocks"] + 1):
        width = config["filters"] * 2 ** (b - 1)
        for c in range(1, config["convs_per_block"] + 1):
            if config["pooling"] == "strided" and c == config["convs_per_block"]:
                side = math.ceil(side / 2)
            rows.append(_row(f"block{b}_conv{c}", "Conv2D 3x3", (side, side, width), 9 * channels * width))
            rows.append(_row(f"block{b}_bn{c}", "BatchNormalization", (side, side, width), 4 * width))
            rows.append(_row(f"block{b}_relu{c}", "ReLU", (side, side, width), 0))
            channels = width
        if config["pooling"] != "strided":
            side //= 2
            kind = "MaxPooling2D" if config["pooling"] == "max" else "AveragePooling2D"
            rows.append(_row(f"block{b}_pool", kind, (side, side, width), 0))
        if config["dropout"] > 0:
            rows.append(_row(f"block{b}_dropout", "Dropout", (side, side, width), 0, f"rate {config['dropout']:g}"))
    channels = side * side * channels
    rows.append(_row("flatten", "Flatten", (channels,), 0))
    for i, units in enumerate(config["dense_units"], start=1):
        rows.append(_row(f"dense{i}", "Dense", (units,), channels * units))
        rows.append(_row(f"dense{i}_bn", "BatchNormalization", (units,), 4 * units))
        rows.append(_row(f"dense{i}_relu", "ReLU", (units,), 0))
        if config["dense_dropout"] > 0:
            rows.append(_row(f"dense{i}_dropout", "Dropout", (units,), 0, f"rate {config['dense_dropout']:g}"))
        channels = units
    rows.append(_row("expression", "Dense (softmax)", (N_EXPRESSIONS,), channels * N_EXPRESSIONS + N_EXPRESSIONS))
    return {"layers": rows, "parameters": sum(r["parameters"] for r in rows)}


# --- what a training would cost here ----------------------------------------------------------

def time_limit_s() -> float:
    """The panel's limit for one training (MOODLENS_DESIGN_LIMIT_S, else DEFAULT_LIMIT_S)."""
    return float(os.environ.get("MOODLENS_DESIGN_LIMIT_S", DEFAULT_LIMIT_S))


def _threads(machine: str) -> tuple[int, bool]:
    """(CPU threads, had an accelerator) from a card's machine description (cards.machine_description)."""
    found = re.search(r"(\d+) CPU threads", machine or "")
    return (int(found.group(1)) if found else 1), any(a in (machine or "") for a in ("NVIDIA", "GPU", "TPU"))


def estimate_seconds(task: str, config: dict, zoo_cards: Mapping[str, Mapping], threads_here: int | None = None,
                     worker_threads: int = 1) -> dict:
    """What training this design would cost on this machine, from the zoo cards' training seconds
    and machines, scaled by parameter count -> {"seconds", "based_on", "note"}.

    Each zoo card's seconds are rescaled to this machine (a CPU card by its thread count against the
    `worker_threads` the panel's worker uses; a GPU card as GPU_THREADS_EQUIVALENT threads) and to
    this design's parameters; the median over the cards is the estimate. Rough by design: training
    time follows the multiply-adds, which follow the parameters only loosely."""
    sketch = song_sketch if task == "song" else face_sketch
    own = sketch(config)["parameters"]
    threads_here = min(threads_here or os.cpu_count() or 1, worker_threads)
    estimates, based = [], []
    for name, card in zoo_cards.items():
        training = card.get("training") or {}
        if not training.get("seconds") or not card.get("parameters"):
            continue
        threads, accelerated = _threads(training.get("machine", ""))
        speed = (GPU_THREADS_EQUIVALENT if accelerated else threads) / threads_here
        estimates.append(training["seconds"] * speed * own / card["parameters"])
        based.append(name)
    if not estimates:
        raise ValueError(f"no {task} zoo card records its training seconds: no estimate")
    estimates.sort()
    seconds = estimates[len(estimates) // 2]
    machine = next(iter(zoo_cards.values()))["training"].get("machine", "")
    return {"seconds": float(seconds), "parameters": own, "based_on": based,
            "note": f"the {len(based)} zoo cards' training seconds (trained on {machine}) rescaled to "
                    f"{threads_here} CPU thread(s) here and to {own:,} parameters"}


# --- the command ------------------------------------------------------------------------------

def build_cache(data_dir: Path, cache_dir: Path) -> dict:
    """The songs' musicnn embeddings computed once into `cache_dir` (the training's own cache)."""
    from core.song.data import load_annotations
    from core.song.features import dataset_embeddings

    song_ids, _, _ = load_annotations(data_dir)
    found = dataset_embeddings(data_dir, song_ids, cache_dir)
    return {"songs": int(len(song_ids)), "key": found["key"], "cache": str(cache_dir)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.variants.design", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    cache = commands.add_parser("cache", help="compute the songs' musicnn embeddings once")
    cache.add_argument("--data", type=Path, required=True, help="a folder with annotations.csv and songs/")
    cache.add_argument("--cache", type=Path, required=True, help="where the .npz goes (outside the repository)")
    sketch = commands.add_parser("sketch", help="a design's layer stack and parameter count")
    sketch.add_argument("choices", help="JSON object of choices, e.g. '{\"dropout\": 0.4}'")
    sketch.add_argument("--task", choices=sorted(CHOICES), default="song")
    args = parser.parse_args(argv)
    try:
        if args.command == "cache":
            if not (args.data / "annotations.csv").is_file() or not (args.data / "songs").is_dir():
                raise ValueError(f"{args.data} needs annotations.csv and songs/")
            print(json.dumps(build_cache(args.data, args.cache)))
        else:
            config = validate(args.task, json.loads(args.choices))
            print(json.dumps({"config": config, **(song_sketch if args.task == "song" else face_sketch)(config)},
                             indent=1))
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
