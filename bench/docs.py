"""Rewrite the generated parts of README.md and docs/ from the model cards and the benches' reports.

    python -m bench.docs [--no-bench] [--run BLOCK,...|all]      (make docs)

Every number in the README and docs/ comes from here: the blocks between `<!-- NAME:start -->` and
`<!-- NAME:end -->` are replaced; nothing else is touched. README.md holds one table of the shipped
models; docs/models.md the cards and zoos; docs/benchmarks.md, docs/performance.md and others the
benchmarks, each block rendered from its bench's JSON report in bench/results/ (the command and what
it printed, or, for a report of figures only, its renderer in RENDERERS).
Nothing is measured unless --run names the blocks whose benches should run first (each in a
fresh process, its report replacing the committed one).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from bench.common import RESULTS_DIR, ROOT, read_report, run_bench
from core import cards
from core.face.data import EXPRESSIONS


# Which file holds each generated block.
BLOCK_FILES = {
    "models-summary": "README.md",
    "song-model": "docs/models.md", "face-model": "docs/models.md",
    "song-zoo": "docs/models.md", "face-zoo": "docs/models.md",
    "song-verdicts": "docs/models.md", "face-verdicts": "docs/models.md",
    "song-bench": "docs/benchmarks.md", "face-bench": "docs/benchmarks.md",
    "compare-bench": "docs/benchmarks.md", "detector-bench": "docs/benchmarks.md",
    "load-bench": "docs/performance.md", "load-probe-bench": "docs/performance.md",
    "load-memory-bench": "docs/performance.md", "load-closed-bench": "docs/performance.md",
    "cold-start-bench": "docs/performance.md", "live-bench": "docs/performance.md",
    "litert-song-bench": "docs/litert.md", "load-song-bench": "docs/performance.md", "face-vs-fer-bench": "docs/litert_face.md",
    "library-scan-bench": "docs/scale.md", "suite-time-bench": "docs/testing.md",
    "design-training-bench": "docs/design_a_variant.md",
}

# Each bench block: its report in bench/results/, and the bench with its options (--run).
BENCHES = {
    "song-bench": ("song_latency.json", "song_latency"),
    "face-bench": ("face_latency.json", "face_latency"),
    "detector-bench": ("face_detection.json", "face_detection"),
    "compare-bench": ("compare_latency.json", "compare_latency"),
    "load-bench": ("load.json", "load", "--summary"),
    "load-probe-bench": ("load_probe.json", "load", "--clients", "probe", "--sessions", "1,8", "--rounds", "8",
                         "--summary"),
    "load-memory-bench": ("load_memory.json", "load", "--in-a-row", "200", "--summary"),
    "load-closed-bench": ("load_closed.json", "load", "--in-a-row", "100", "--keep-files", "--wait-after-close",
                          "140", "--summary"),
    "cold-start-bench": ("cold_start.json", "cold_start"),
    "load-song-bench": ("load_song.json", "load", "--sessions", "1,8", "--tasks", "song", "--rounds", "6", "--summary"),
    "live-bench": ("live_fps.json", "live_fps"),
    "litert-song-bench": ("litert_song.json", "litert_song"),
    "face-vs-fer-bench": ("face_vs_fer.json", "face_vs_fer"),
    "library-scan-bench": ("library_scan.json", "library_scan", "--songs", "764"),
    "suite-time-bench": ("suite_time.json", "suite_time"),
    "design-training-bench": ("design_training.json", "design_training", "--data", "../shared/data/music",
                              "--cache", "/tmp/moodlens_cache"),
}


def _replace(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{BLOCK_FILES.get(name, 'README.md')} has no block {name}")
    return pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def models_summary() -> str:
    """One row per shipped model: its held-out figures, from its card."""
    lines = ["| page | model | held-out data | figures |", "|---|---|---|---|"]
    from core.variants.zoo import model_path

    song, face = cards.read_card(cards.DEFAULT_MODELS["song"]), cards.read_card(model_path("face", "default"))
    m = song.get("cross_validation", {}).get("mean") or song["validation"]
    held_out = (f"{song['split']['folds']}-fold cross-validation, {song['data']['n_songs']} songs"
                if "cross_validation" in song else f"{song['split']['n_val']} validation songs")
    members = song.get("members", {}).get("count", 1)
    what = (f"`{cards.DEFAULT_MODELS['song'].relative_to(ROOT)}`" if members == 1 else
            f"`{cards.DEFAULT_MODELS['song'].relative_to(ROOT)}`, the mean of {members} CRNNs that differ only in their seed")
    lines.append(f"| Song mood | {what} ({song['parameters']:,} parameters) | {held_out} | "
                 f"valence r {m['valence']['r']:.2f}, arousal r {m['arousal']['r']:.2f}, valence CCC "
                 f"{m['valence']['ccc']:.2f}, quadrant accuracy {m['quadrant_accuracy']:.0%} |")
    from core.face.ensemble import ENSEMBLE_CARD

    ensemble = json.loads(ENSEMBLE_CARD.read_text())
    e, f = ensemble["validation"], face["validation"]
    members = " + ".join(f"`{m['name']}`" for m in ensemble["members"])
    lines.append(f"| Face expression (what the page runs) | the average of {members}"
                 + (", each with its mirror image" if ensemble["mirror_average"] else "")
                 + f" ({ensemble['parameters']:,} parameters) | FER2013 PublicTest, {e['n']:,} faces (also used "
                 f"to choose the members) | accuracy {e['accuracy']:.1%}, macro-F1 {e['macro_f1']:.3f} |")
    lines.append(f"| Face expression (the zoo's default) | `models/face/default.keras` ({face['parameters']:,} "
                 f"parameters) | FER2013 PublicTest, {f['n']:,} faces | accuracy {f['accuracy']:.1%}, "
                 f"macro-F1 {f['macro_f1']:.3f} |")
    return "\n".join(lines) + "\n\n" + zoo_cost()


def zoo_cost() -> str:
    """How long each zoo took to train, from the cards' own timings and machines."""
    from core.variants.zoo import trained_variants

    parts = []
    for task, what in (("song", "5 cross-validation folds and the shipped model"), ("face", "one model")):
        zoo = trained_variants(task)
        seconds = [card["training"]["seconds"] for card in zoo.values()]
        machines = sorted({card["training"]["machine"] for card in zoo.values()})
        parts.append(f"the {task} zoo's {len(zoo)} variants ({what} each) took {min(seconds) / 60:.1f} to "
                     f"{max(seconds) / 60:.1f} min a variant, {sum(seconds) / 60:.0f} min in all, on "
                     f"{'; '.join(machines)}")
    return ("Training time, from the cards: " + "; ".join(parts) + ". The songs' musicnn embeddings are "
            "computed once before (`--cache DIR` keeps them; docs/song_model.md).")


def song_table(card: dict) -> str:
    """The song model's cross-validated figures and ablation rows (core.song.card), and its budget."""
    from core.song.card import card_table

    t, split = card["training"], card["split"]
    return (card_table(card) + "\n\n"
            f"Mean ± sd over {split['folds']} folds of {card['data']['n_songs']} songs ({split['method']}, seed "
            f"{split['seed']}); shipped: {card['ships']}. {card['parameters']:,} parameters, "
            f"{card['model_file']['size_bytes'] / 1e6:.1f} MB, {t['epochs_run']} epochs a model, "
            f"{t['seconds'] / 60:.0f} min for the folds and the shipped model on {t['machine']}. "
            "Per fold, the log-mel CRNN's budget and the speed: docs/song_model.md.")


def face_table(card: dict) -> str:
    m, t = card["validation"], card["training"]
    single = card.get("validation_single_pass") if t.get("mirror_average") else None
    lines = [f"PublicTest ({m['n']:,} faces): **accuracy {m['accuracy']:.1%}**, macro-F1 {m['macro_f1']:.3f}"
             + (f" (single pass without the mirror: {single['accuracy']:.1%}, {single['macro_f1']:.3f}). "
                if single else ". ") +
             f"{card['parameters']:,} parameters, {card['model_file']['size_bytes'] / 1e6:.1f} MB, "
             f"{t['epochs_run']} epochs in {t['seconds'] / 60:.0f} min on {t['machine']}"
             + (f" ({card['continued_from']['epochs']} epochs, then {t['epochs_run'] - card['continued_from']['epochs']} "
                f"more from those weights with a new cosine schedule)." if "continued_from" in card else "."),
             "", "| " + " | ".join(EXPRESSIONS) + " |", "|" + "---|" * len(EXPRESSIONS),
             "| " + " | ".join(f"{m['per_class_recall'][e]:.1%}" for e in EXPRESSIONS) + " |",
             "", "(recall per expression)"]
    return "\n".join(lines)


def zoo_table(task: str) -> str:
    """The variant zoo, one row a variant, from the cards (core.variants.compare.variant_rows)."""
    from core.metrics import METRICS
    from core.variants.compare import CHOICES, variant_rows
    from core.variants.zoo import trained_variants

    rows = variant_rows(task, trained_variants(task))
    metrics = METRICS[task]
    head = ["variant", "change", *(m.label for m in metrics), "val − train loss (last epoch)", "epochs", "parameters", "MB",
            "latency (ms)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        values = [f"**{r['variant']}**" if r["default"] else r["variant"], r["change"],
                  *(m.text(r[m.label]) for m in metrics),
                  f"{r['gap (val − train loss)']:.3f}", str(r["epochs"]), f"{r['parameters']:,}",
                  f"{r['size (MB)']:.1f}", f"{r['latency (ms)']:.1f}"]
        lines.append("| " + " | ".join(values) + " |")
    machines = sorted({r["latency measured on"] for r in rows})
    lines += ["", f"Choices varied: {', '.join(CHOICES[task])}. Latency: one input, measured on the machine that "
                  f"trained the variant ({'; '.join(machines)})."]
    return "\n".join(lines)


def verdicts(task: str) -> str:
    """The zoo's comparison with the default, as the cards hold it (`python -m core.variants.verdicts
    TASK --markdown` prints the same)."""
    from core.variants.verdicts import verdicts_markdown
    from core.variants.zoo import trained_variants

    return verdicts_markdown(task, trained_variants(task))


def bench_block(report: dict) -> str:
    """A bench's report as its docs block: the command, then what it printed."""
    return f"```\n$ .venv/bin/{report['command']}\n{report['text'].strip()}\n```"


def design_training_table(report: dict) -> str:
    """bench.design_training's report (figures only: it keeps no printed text) as a table, beside the
    zoo default's cross-validated figures and the time estimate the panel shows before training,
    both from the committed cards."""
    from core.variants import design
    from core.variants.zoo import model_path, trained_variants

    t, delay = report["training"], report["epoch_delay_s"]
    alone, busy = report["predictions_alone"], report["predictions_while_training"]
    cv, zoo = t["cross_validation_mean"], cards.read_card(model_path("song", "default"))["cross_validation"]["mean"]
    estimate = design.estimate_seconds("song", design.defaults("song"), trained_variants("song"))["seconds"]

    def figures(m: dict) -> str:
        return (f"valence r {m['valence']['r']:.3f}, arousal r {m['arousal']['r']:.3f}, "
                f"quadrant {m['quadrant_accuracy']:.1%}")

    rows = [
        (f"{t['folds']}-fold training + the model on every song, {t['epochs']} epochs, {t['songs']} songs, "
         "one thread, nice 10",
         f"**{t['seconds_submit_to_card']:.1f} s** submit to card ({t['seconds_in_worker']:.1f} s in the worker); "
         f"goal ≤ {t['goal_s']} s: {'met' if t['within_goal'] else 'NOT met'}"),
        ("its cross-validated figures (the zoo default's design)",
         f"{figures(cv)} (the zoo default's card: {figures(zoo)})"),
        (f"an epoch's end to the server ({delay['n']} epochs)",
         f"median {delay['median']:.3f} s, max {delay['max']:.3f} s ({delay['note']})"),
        (f"Song page model (LiteRT CRNN, one window), alone ({alone['n']:,} calls)",
         f"median {alone['median_ms']:.2f} ms, p95 {alone['p95_ms']:.2f} ms"),
        (f"the same while the training runs ({busy['n']:,} calls)",
         f"median {busy['median_ms']:.2f} ms, p95 {busy['p95_ms']:.2f} ms ({report['p95_ratio']:.1f}x alone: "
         f"{'within' if report['predictions_within_load_goal'] else 'over'} the load goal)"),
        ("the time estimate shown before training (`core.variants.design.estimate_seconds`, the zoo cards "
         "as committed)", f"{estimate / 60:.1f} min, {estimate / t['seconds_submit_to_card']:.1f}x the time measured"),
    ]
    return "\n".join(["| what | measured |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows), "",
                      f"On {report['machine']}; `bench/results/design_training.json`."])


# A bench block's renderer where its report is not `bench_block`'s (a command and its printed text).
RENDERERS = {"design-training-bench": design_training_table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-bench", action="store_true", help="only the blocks from the cards")
    parser.add_argument("--run", default="", metavar="BLOCK,...",
                        help=f"rerun these blocks' benches first, or all ({', '.join(BENCHES)})")
    args = parser.parse_args()
    run = list(BENCHES) if args.run == "all" else [b for b in args.run.split(",") if b]
    unknown = sorted(set(run) - set(BENCHES))
    if unknown:
        parser.error(f"no bench block {', '.join(unknown)}; blocks: {', '.join(BENCHES)}")
    texts = {name: (ROOT / name).read_text() for name in sorted(set(BLOCK_FILES.values()))}

    def put(block: str, body: str) -> None:
        name = BLOCK_FILES[block]
        texts[name] = _replace(texts[name], block, body)

    put("models-summary", models_summary())
    from core.variants.zoo import model_path

    # The face-model block: the zoo's default network's card (the page's ensemble: models-summary).
    for task, render, path in (("song", song_table, cards.DEFAULT_MODELS["song"]),
                               ("face", face_table, model_path("face", "default"))):
        put(f"{task}-model", render(cards.read_card(path)))
        put(f"{task}-zoo", zoo_table(task))
        put(f"{task}-verdicts", verdicts(task))
    if not args.no_bench:
        for block, (result, bench, *options) in BENCHES.items():
            path = RESULTS_DIR / result
            if block in run:
                print(f"running python -m bench.{bench} {' '.join(options)}", file=sys.stderr, flush=True)
                run_bench(bench, *options, json_path=path)
            if not path.exists():
                print(f"warning: no {path.relative_to(ROOT)}: block {block} left as it is", file=sys.stderr)
                continue
            put(block, RENDERERS.get(block, bench_block)(read_report(path)))
    for name, text in texts.items():
        (ROOT / name).write_text(text)


if __name__ == "__main__":
    main()
