"""Train a model and write its `.keras` file and card.

    python -m core.train song --data ../shared/data/music --out models/song/ensemble --members 5 \
        --ablation [--cache /work/cache/moodlens]          (what the Song page runs)
    python -m core.train song --data ../shared/data/music --out models/song/default --ablation \
        [--cache /work/cache/moodlens]                     (one network: the zoo's default)
    python -m core.train face --data ../shared/data/fer2013/fer2013.npz --out models/face/default

    python -m core.train song --zoo --data ../shared/data/music [--only NAME,NAME] [--out models/song]

`--config '{"pooling": "average"}'` overrides builder arguments: a variant is its configuration.
`--zoo` trains every variant of core.variants.zoo.ZOO (one choice changed from the default each) with
the same split, seed and budget, into `--out` (default models/<task>/<variant>).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import cards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["song", "face"])
    parser.add_argument("--data", required=True, type=Path,
                        help="song: folder with annotations.csv and songs/ (features_logmel.npz for the "
                             "ablation's log-mel rows); face: fer2013.npz")
    parser.add_argument("--out", type=Path, help="models/<task>/<name> (no suffix); with --zoo a folder")
    parser.add_argument("--zoo", action="store_true", help="train every variant of the task's zoo")
    parser.add_argument("--only", default="", help="with --zoo: comma-separated variant names")
    parser.add_argument("--continue-from", type=Path, default=None, metavar="MODEL",
                        help="face: start from this trained model's weights and configuration")
    parser.add_argument("--mirror-average-of", type=Path, default=None, metavar="MODEL",
                        help="face: wrap this trained model in the mirror average, re-score, save to --out")
    parser.add_argument("--config", default="{}", help="JSON object of builder arguments")
    parser.add_argument("--training", default="{}", help="JSON object overriding training settings")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help="song: keep the songs' musicnn embeddings here (outside the repository); "
                             "computed from the audio when absent")
    parser.add_argument("--ablation", action="store_true",
                        help="song: add the ablation rows (ridge and SVR on log-mel stats, ridge on "
                             "embeddings, the log-mel CRNN) on the same folds to the card")
    parser.add_argument("--members", type=int, default=1,
                        help="song: a seed ensemble of this many CRNNs (core.train.train_song), in one file")
    parser.add_argument("--limit", type=int, default=None, help="face: use only the first N rows")
    args = parser.parse_args(argv)
    try:
        config = json.loads(args.config)
        overrides = json.loads(args.training)
    except json.JSONDecodeError as e:
        print(f"error: --config/--training must be JSON objects ({e})", file=sys.stderr)
        return 2
    if args.mirror_average_of:
        if args.task != "face" or args.out is None:
            print("error: --mirror-average-of is for the face task and needs --out", file=sys.stderr)
            return 2
        from core.face.train import add_mirror_average

        path = add_mirror_average(args.data, args.mirror_average_of, args.out)
        print(json.dumps({"model": str(path), "validation": cards.read_card(path)["validation"]}, indent=1))
        return 0
    if args.zoo:
        from core.variants.zoo import ZOO

        folder = args.out or cards.MODELS_DIR / args.task
        names = [n for n in args.only.split(",") if n] or list(ZOO[args.task])
        unknown = set(names) - set(ZOO[args.task])
        if unknown:
            print(f"error: no variant(s) {sorted(unknown)}; the zoo has {list(ZOO[args.task])}", file=sys.stderr)
            return 2
        runs = [(folder / name, {**ZOO[args.task][name], **config}) for name in names]
    elif args.out is None:
        print("error: --out is required (or --zoo)", file=sys.stderr)
        return 2
    else:
        runs = [(args.out.with_suffix("") if args.out.suffix == ".keras" else args.out, config)]
    for out, run_config in runs:
        if args.task == "song":
            from core.song.train import SONG_TRAINING, train_song

            path = train_song(args.data, out, run_config, {**SONG_TRAINING, **overrides}, args.seed,
                              args.cache, args.ablation, members=args.members)
        else:
            from core.face.train import train_face

            path = train_face(args.data, out, run_config, overrides, args.seed,
                              args.limit, args.continue_from)
        card = cards.read_card(path)
        print(json.dumps({"model": str(path), "validation": card["validation"]}, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
