"""Write docs/song_model.md: the song model's cross-validation, ablation and zoo from the cards, and
fresh measurements of its speed, of sparser patches, of mp3 against Opus and of 8 people at once.

    python -m bench.song_model_report [--cache DIR] [--no-bench] [--repeats 5]

Every number in docs/song_model.md comes from here: the tables are read from models/song/*.json
(written by `python -m core.train song`), the rest is measured when this runs. --cache is the
folder `core.train --cache` used (the songs' musicnn embeddings); without it they are computed
again from ../shared/data/music/songs (musicnn on every song: slow on a CPU). The load section
runs `python -m bench.load` and renders its JSON reports.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from bench.common import MUSIC_DIR as MUSIC
from bench.common import ROOT, demo_clip, run_bench, three_minute_mp3
from core import cards, metrics
from core.metrics import METRICS
from core.splits import stratified_folds
from core.variants.zoo import ZOO, model_path

DOC = ROOT / "docs" / "song_model.md"
COLUMNS = METRICS["song"]
# Issue 13's targets for the cross-validated means, by metric key.
TARGETS = {"valence_r": 0.66, "arousal_r": 0.72, "valence_ccc": 0.6, "quadrant_accuracy": 0.72}


def _mean_sd(mean: dict, sd: dict) -> str:
    # 3 decimals for every figure, shares too, as these tables have always shown them.
    return " | ".join(f"{m.of(mean):.3f} ± {m.of(sd):.3f}" for m in COLUMNS)


def _header(first: str) -> str:
    return (f"| {first} | " + " | ".join(m.label for m in COLUMNS) + " |\n|---|" + "--:|" * len(COLUMNS) + "\n")


def folds_table(card: dict) -> str:
    cv = card["cross_validation"]
    rows = [f"| fold {k} ({f['n']} songs) | " + " | ".join(f"{m.of(f):.3f}" for m in COLUMNS) + " |"
            for k, f in enumerate(cv["per_fold"])]
    rows.append("| **mean ± sd** | " + _mean_sd(cv["mean"], cv["sd"]) + " |")
    return _header("fold") + "\n".join(rows)


def targets_lines(card: dict) -> str:
    mean = card["cross_validation"]["mean"]
    ridge = next((r for r in card.get("ablation", []) if r["name"] == "ridge on musicnn embeddings"), None)
    goals = [(m, TARGETS[m.key]) for m in COLUMNS if m.key in TARGETS]
    lines = [f"- {m.label} ≥ {goal}: {m.of(mean):.3f} — {'met' if m.of(mean) >= goal else 'NOT met'}"
             for m, goal in goals]
    if ridge:
        better = [m.label for m in COLUMNS if m.of(mean) > m.of(ridge["mean"])]
        lines.append(f"- beats the ridge on musicnn embeddings on the same folds: on {len(better)} of "
                     f"{len(COLUMNS)} figures ({', '.join(better) or 'none'})")
    return "\n".join(lines)


def ablation_table(card: dict) -> str:
    rows = [f"| {r['name']} | {r['features']} | " + _mean_sd(r["mean"], r["sd"]) + " |" for r in card["ablation"]]
    return ("| model | input | " + " | ".join(m.label for m in COLUMNS) + " |\n|---|---|" + "--:|" * len(COLUMNS)
            + "\n" + "\n".join(rows))


def zoo_table() -> str:
    rows = []
    for name, choice in ZOO["song"].items():
        change = ", ".join(f"{k}: {v}" for k, v in choice.items())
        path = model_path("song", name)
        if not cards.card_path(path).exists():
            rows.append(f"| {name} | {change or '(the default)'} | not trained |" + " |" * (len(COLUMNS) - 1))
            continue
        card = cards.read_card(path)
        if "cross_validation" not in card:
            rows.append(f"| {name} | {change} | card without cross-validation (old model) |" + " |" * (len(COLUMNS) - 1))
            continue
        cv = card["cross_validation"]
        rows.append(f"| {name} | {change or '(the default)'} | " + _mean_sd(cv["mean"], cv["sd"]) + " |")
    return ("| variant | change | " + " | ".join(m.label for m in COLUMNS) + " |\n|---|---|" + "--:|" * len(COLUMNS)
            + "\n" + "\n".join(rows))


def latency(repeats: int) -> str:
    from core.song import features as song_features
    from core.runner import ModelRunner
    from core.song.predict import predict_song

    runner = ModelRunner.load(cards.DEFAULT_MODELS["song"])
    song, source = three_minute_mp3()
    clip = demo_clip(song[:len(song) // 6])
    predict_song(runner, clip)  # loads and traces musicnn and the CRNN
    wall = {"clip": [], "song": []}
    for _ in range(repeats):
        for name, data in (("clip", clip), ("song", song)):
            start = time.perf_counter()
            predict_song(runner, data)
            wall[name].append(time.perf_counter() - start)
    _, _, patches = song_features.song_patches(song)
    return (f"Bytes → finished result in this process (`core.song.predict.predict_song`: decoding, musicnn's "
            f"log-mel, musicnn on every patch, the CRNN), median of {repeats} runs, load average "
            f"{os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs:\n\n"
            f"| input | patches | median | goal |\n|---|--:|--:|--:|\n"
            f"| 30-s demo clip (mp3) | 10 | {statistics.median(wall['clip']):.2f} s | ≤ 1.5 s |\n"
            f"| 3-minute song (44.1 kHz stereo mp3, {source}) | {len(patches)} | "
            f"{statistics.median(wall['song']):.2f} s | ≤ 3 s |\n\n"
            f"A song longer than {song_features.MAX_PATCHES} patches ({song_features.MAX_PATCHES * 2.992 / 60:.1f} "
            f"min) gets {song_features.MAX_PATCHES} patches spread over it, so its cost stays that of a "
            f"{song_features.MAX_PATCHES}-patch song. `python -m bench.song_latency` splits the 3-minute time into "
            "its stages.")


def sparser_patches(cache: Path | None) -> str:
    """What spreading fewer patches over a song costs: the fold models on their held-out songs
    with every patch, every other patch, and every third (as a long song's budget spreads them)."""
    from core.song.crossval import fold_summary
    from core.song.train import song_training_data

    card = cards.read_card(model_path("song", "default"))  # the single network: its fold models
    data = song_training_data(MUSIC, cache)
    folds = stratified_folds(data["quadrant"], card["split"]["folds"], card["split"]["seed"])
    x, n = data["embeddings"][0], data["n_patches"][0]
    results = {}
    for step in (1, 2, 3):
        pred = np.zeros((len(x), 2))
        for k, name in enumerate(card["fold_models"]):
            model, _ = cards.load_model(model_path("song", "default").parent / "folds" / "default" / name)
            test = np.flatnonzero(folds == k)
            for i in test:
                pred[i] = model.predict_on_batch(x[i:i + 1, :max(int(n[i]), 1):step].astype(np.float32))[0]
        per_fold = [metrics.song_metrics(data["targets"][folds == k], pred[folds == k])
                    for k in range(card["split"]["folds"])]
        results[step] = fold_summary(per_fold)
    rows = [f"| every {'' if s == 1 else ('other ' if s == 2 else 'third ')}patch ({'10' if s == 1 else ('5' if s == 2 else '4')} "
            f"of a 30-s clip's 10) | " + _mean_sd(r["mean"], r["sd"]) + " |" for s, r in results.items()]
    return ("The single network's 5 fold models on their held-out songs (the same folds), each song's patches thinned "
            "as a long song's budget thins them:\n\n" + _header("patches used") + "\n".join(rows))


def codec_check() -> str:
    """The 20 demo clips: the original mp3 against its Opus twin in songs/ (what the model trained on)."""
    import csv

    from core.runner import ModelRunner
    from core.song.predict import predict_song

    runner = ModelRunner.load(cards.DEFAULT_MODELS["song"])
    with open(MUSIC / "clips" / "clips.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    dv, da, same_quadrant, truth_mp3, truth_opus = [], [], 0, [], []
    for row in rows:
        mp3 = predict_song(runner, (MUSIC / "clips" / row["file"]).read_bytes())
        opus = predict_song(runner, (MUSIC / "songs" / f"{row['song_id']}.opus").read_bytes())
        dv.append(abs(mp3["valence"] - opus["valence"]))
        da.append(abs(mp3["arousal"] - opus["arousal"]))
        same_quadrant += mp3["quadrant"] == opus["quadrant"]
        truth_mp3.append(mp3["quadrant"] == row["quadrant"])
        truth_opus.append(opus["quadrant"] == row["quadrant"])
    return (f"The {len(rows)} demo clips, each scored from its original mp3 and from its Opus twin in "
            f"`songs/` (the audio the model was trained on; these songs are in its training set, so "
            f"only the difference between the two codecs is meaningful here):\n\n"
            f"| figure | value |\n|---|--:|\n"
            f"| mean \\|valence(mp3) − valence(Opus)\\| | {np.mean(dv):.4f} |\n"
            f"| largest \\|valence difference\\| | {np.max(dv):.4f} |\n"
            f"| mean \\|arousal(mp3) − arousal(Opus)\\| | {np.mean(da):.4f} |\n"
            f"| largest \\|arousal difference\\| | {np.max(da):.4f} |\n"
            f"| same quadrant from both | {same_quadrant} of {len(rows)} |\n"
            f"| right quadrant: mp3 / Opus | {sum(truth_mp3)} / {sum(truth_opus)} of {len(rows)} |")


def musicnn_batching(songs: int = 8, repeats: int = 10) -> tuple[str, float]:
    """musicnn's CPU time on `songs` demo clips' patches, one call per song against one call for
    all of them: whether a song would cost less CPU when many are analysed together. -> (the
    paragraph, the batched call's CPU time over the separate calls')."""
    from core.song import musicnn
    from core.song import features as song_features

    clips = sorted((MUSIC / "clips").glob("*.mp3"))[:songs]
    if not clips:
        return "(no demo clips in ../shared/data/music/clips: not measured)", float("nan")
    patches = [song_features.song_patches(clip.read_bytes())[2] for clip in clips]
    together = np.concatenate(patches)
    model = musicnn.default_musicnn()
    ways = {"one call per song": lambda: [model.embeddings(p) for p in patches],
            f"one call for all {len(together)} patches": lambda: model.embeddings(together)}
    cpu_ms = {}
    for name, run in ways.items():
        run()  # traced for this batch size
        start = time.process_time()
        for _ in range(repeats):
            run()
        cpu_ms[name] = 1000 * (time.process_time() - start) / repeats / len(together)
    separate, batched = cpu_ms.values()
    return (f"musicnn's CPU time a patch on {len(clips)} demo clips' {len(together)} patches, mean of "
            f"{repeats} runs in this process: "
            + "; ".join(f"{name}: {ms:.2f} ms" for name, ms in cpu_ms.items())
            + f" (batched / separate = {batched / separate:.2f}).", batched / separate)


def load_bench(runs: int = 3) -> str:
    """bench.load with songs only at N = 1 and 8, `runs` times (its ratio moves from run to run on
    a shared machine), each run's report as it printed it."""
    options = ["--sessions", "1,8", "--tasks", "song", "--rounds", "6", "--summary"]
    reports = [run_bench("load", *options) for _ in range(runs)]
    batching, batched_share = musicnn_batching()
    return (f"N people upload a song at the same moment (the server with its worker processes; the bench "
            f"waits for the server to be idle before its first round). The server runs musicnn on LiteRT, "
            f"its live filters only (`core.song.musicnn.LiteRTMusicnn`, docs/litert.md), "
            f"and each worker computes on one thread (`core.workers.ONE_THREAD`). The goal: p95 at N = 8 "
            f"under 4 times p95 at N = 1. Where one person's song keeps the machine busy for about as long "
            f"as they wait (CPU time a song, the last column, against the N = 1 median), 8 songs on 2 CPUs "
            f"cannot all be done before 4 times that wait (the CPU floor line), whatever the scheduling: "
            f"the ratio can come near 4, not under it, unless a song costs less CPU time when many are "
            f"analysed together. musicnn, most of a song's CPU time, does not: {batching} "
            f"{'So batching songs would save nothing. ' if batched_share > 0.95 else ''}"
            f"The verdict line also says how busy the machine's CPUs were from the uploads to the last "
            f"result: what a better scheduling could still use is the idle rest. "
            f"The same command {runs} times in a row:\n\n"
            + "\n\n".join(f"```\n$ .venv/bin/{r['command']}\n{r['text'].strip()}\n```" for r in reports))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--no-bench", action="store_true", help="only the tables from the cards")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    card = cards.read_card(cards.DEFAULT_MODELS["song"])
    from core.song.musicnn import MODEL_PATH

    card_musicnn = cards.read_card(MODEL_PATH)
    split = card["split"]
    members = card.get("members", {}).get("count", 1)
    parts = [
        "# The song model\n",
        "<!-- Generated by `.venv/bin/python -m bench.song_model_report --cache DIR`: do not edit by hand. -->\n",
        f"The song page's model (`{cards.DEFAULT_MODELS['song'].relative_to(ROOT)}`) is the mean of "
        f"{members} CRNNs in the seed's form (Conv1D → {card['config']['pooling']} pooling → dropout → LSTM "
        f"→ Dense) that differ only in their seed, over the sequence of a song's 3-s "
        f"patches, each described by the pretrained musicnn (MSD) network: its 200-d penultimate layer "
        f"and its 50 tag probabilities (`core/song/musicnn.py`, `core/song/features.py`). "
        f"Shipped: {card['ships']}. The zoo's `default` (`models/song/default.keras`) is one such CRNN: "
        f"the variants compare single networks, one choice each.\n",
        f"Trained and scored with `python -m core.train song --data ../shared/data/music --out "
        f"{cards.DEFAULT_MODELS['song'].relative_to(ROOT).with_suffix('')} --members {members} --ablation "
        f"--cache DIR` ({card['training']['seconds'] / 60:.0f} min on "
        f"{card['training']['machine']}); the single network with `--out models/song/default` and no "
        f"`--members`, the zoo with `python -m core.train song --zoo --only NAMES --data "
        f"../shared/data/music --cache DIR`.\n",
        f"musicnn itself: `python -m core.song.musicnn convert --checkpoint DIR` turns the `MSD_musicnn/` "
        f"checkpoint of the musicnn {card_musicnn['source']['version']} wheel ({card_musicnn['source']['licence']} "
        f"licence) into `models/musicnn/msd_musicnn.keras` ({card_musicnn['parameters']:,} parameters; the card "
        f"holds the SHA-256 of each checkpoint file read); `tests/song/test_musicnn.py` checks that it reproduces "
        f"musicnn's own taggram and penultimate layer within 1e-4 on a synthetic clip "
        f"(`tests/fixtures/musicnn_reference.py` says how the reference was made).\n",
        f"Training settings (from the card): {card['training']['epochs']} epochs, learning rate "
        f"{card['training']['learning_rate']}, batch {card['training']['batch_size']}, "
        f"{card['training']['augmentation']}. They are the best of six settings tried on these same folds "
        f"(`core/song/train.py`, SONG_TRAINING), so the figures below lean slightly optimistic; the settings' "
        f"differences were within the folds' spread.\n",
        f"## {split['folds']}-fold cross-validation ({card['data']['n_songs']} songs)\n",
        f"{split['method']}, seed {split['seed']}; the folds' song ids are in the card (`split.fold_song_ids`), "
        f"the same for every model and row below. Each fold's model trains for "
        f"{card['training']['epochs']} epochs (no early stopping, no selection on the held-out fold).\n",
        folds_table(card) + "\n",
        *([f"One of its CRNNs alone, every seed on every fold ({members} x {split['folds']}): "
           + _mean_sd(card["cross_validation_single_members"]["mean"], card["cross_validation_single_members"]["sd"])
           .replace(" | ", "; ") + " (the columns above, mean ± sd over the seed-fold pairs).\n"]
          if "cross_validation_single_members" in card else []),
        "Targets of issue 13 (mean over the folds):\n",
        targets_lines(card) + "\n",
    ]
    if "ablation" in card:
        logmel = next((r for r in card["ablation"] if r["name"] == "CRNN on log-mel"), None)
        parts += ["## Ablation (the same folds, mean ± sd over folds)\n", ablation_table(card) + "\n"]
        if logmel:
            parts.append(f"The log-mel CRNN row is the earlier model's builder and augmentation on a smaller "
                         f"budget than it shipped with: {logmel['model']}. It approximates that model; "
                         f"the earlier model itself was scored on one validation split, not on these folds.\n")
    parts += ["## The zoo (each variant's own 5-fold cross-validation, the same folds)\n", zoo_table() + "\n"]
    if not args.no_bench:
        parts += ["## Speed\n", latency(args.repeats) + "\n",
                  "## Fewer patches (what sampling a long song costs)\n", sparser_patches(args.cache) + "\n",
                  "## mp3 against Opus\n", codec_check() + "\n",
                  "## Many people at once\n", load_bench() + "\n"]
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text("\n".join(parts))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
