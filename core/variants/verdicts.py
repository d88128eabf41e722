"""Every variant against its task's default: intervals, tests and a verdict per metric, written
into each variant's card (the "comparison" entry) for the Compare page to read.

    python -m core.variants.verdicts face --data ../shared/data/fer2013/fer2013.npz
        Runs every face variant on FER2013 PublicTest (usage 1, the cards' validation split):
        paired bootstrap intervals of accuracy and macro-F1 and of their differences from the
        default (the same resampled faces for every model), McNemar's exact test (accuracy) and a
        paired permutation test (macro-F1), Holm-adjusted over the variants.
    python -m core.variants.verdicts song
        From the cards alone: each fold's metrics of every variant (the same 5 folds as the
        default), the paired mean difference over the folds with its t-interval and test,
        Holm-adjusted over the variants; and, where the cards hold the songs' out-of-fold
        predictions, a paired bootstrap over songs as a second view.

Model files are not touched: only the cards' "comparison" entry is (re)written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from core.face.data import EXPRESSIONS, FER_PUBLIC_TEST, load_fer
from core import cards, metrics, stats
from core.errors import ModelFileError
from core.metrics import Metric, compared_metrics
from core.variants.zoo import DEFAULT, model_path, trained_variants

COMPARISON = "comparison"  # the card's entry


FACE_METRICS, SONG_METRICS = compared_metrics("face"), compared_metrics("song")


def face_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(labels == predicted))


def face_macro_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Macro-F1 over the 7 expressions from predicted labels (core.metrics.classification_metrics's)."""
    k = len(EXPRESSIONS)
    confusion = np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
    tp = np.diag(confusion).astype(float)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)  # predicted + true = 2tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(k), where=denominator > 0)
    return float(f1.mean())


FACE_METRIC_FUNCTIONS = {"accuracy": face_accuracy, "macro_f1": face_macro_f1}


def _seeds_note(zoo: dict[str, dict], task: str) -> dict:
    seeds = sorted({card["training"]["seed"] for card in zoo.values()})
    what = ("which PublicTest faces were drawn" if task == "face" else
            "which songs fell in which fold (each fold's model trained on the other songs)")
    return {"training_runs_per_variant": 1, "seeds": seeds,
            "note": f"Seeds are missing: each variant was trained once (seed {', '.join(map(str, seeds))}), so "
                    f"the intervals cover {what}, not the randomness of training (initial weights, batch "
                    "order, augmentation). Training 3 or more seeds per variant needs a GPU, which was not "
                    "lent to the session that computed this comparison."}


def _metric_entry(spec: Metric, own: dict, difference: dict | None, test: str, p: float | None,
                  p_holm: float | None, variant: str, alpha: float) -> dict:
    entry = {"label": spec.label, "higher_is_better": spec.higher_is_better,
             "value": own["value"], "low": own["low"], "high": own["high"]}
    if difference is None:
        return {**entry, "difference": None, "test": None, "p": None, "p_holm": None, "verdict": None,
                "sentence": None}
    verdict = stats.verdict(difference["value"], p_holm, spec.higher_is_better, alpha)
    return {**entry, "difference": difference, "test": test, "p": p, "p_holm": p_holm, "verdict": verdict,
            "sentence": stats.sentence(variant, spec.label, difference["value"], difference["low"],
                                       difference["high"], verdict, p_holm, spec.decimals, spec.scale, spec.unit)}


# --- faces: predictions on PublicTest ---------------------------------------------------------

def face_predictions(names: list[str], data_path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(labels, {variant: predicted label}) on FER2013 PublicTest, each variant's model run as the
    app runs it (core.runner.ModelRunner, in batches)."""
    from core.runner import ModelRunner, batched

    data = load_fer(data_path)
    rows = data.usage == FER_PUBLIC_TEST
    x = data.pixels[rows][..., None]
    predicted = {name: batched(ModelRunner.load(model_path("face", name)), x).argmax(axis=1) for name in names}
    return data.label[rows].astype(int), predicted


def face_comparison(labels: np.ndarray, predicted: dict[str, np.ndarray], zoo: dict[str, dict] | None = None,
                    resamples: int = stats.RESAMPLES, seed: int = stats.SEED, alpha: float = stats.ALPHA,
                    data_note: str = "FER2013 PublicTest (usage 1)") -> dict[str, dict]:
    """{variant: comparison entry} from every variant's predicted labels on the same faces.

    predicted: {variant: (n,) int}, the default among them. Every model is resampled on the same
    faces (one seed), so each variant's interval and its difference's are paired.
    """
    if DEFAULT not in predicted:
        raise ValueError(f"the default's predictions are needed, got {list(predicted)}")
    labels = np.asarray(labels, int)
    base = np.asarray(predicted[DEFAULT], int)
    others = [name for name in predicted if name != DEFAULT]
    per_metric = {}
    for spec in FACE_METRICS:
        metric = FACE_METRIC_FUNCTIONS[spec.key]
        boot = {name: stats.paired_bootstrap(metric, labels, np.asarray(predicted[name], int), base, resamples, seed)
                for name in predicted}
        if spec.key == "accuracy":
            test = "McNemar's exact test"
            p = [stats.mcnemar_exact(predicted[name] == labels, base == labels)["p"] for name in others]
        else:
            test = f"paired permutation test ({resamples} permutations)"
            p = [stats.paired_permutation_test(metric, labels, predicted[name], base, resamples, seed)
                 for name in others]
        per_metric[spec.key] = (spec, boot, test, dict(zip(others, p)), dict(zip(others, stats.holm(p) if p else [])))
    method = (f"Paired bootstrap over the {len(labels)} faces of {data_note} ({resamples} resamples, seed {seed}, "
              "percentile intervals; every model resampled on the same faces); accuracy tested with McNemar's "
              "exact test and macro-F1 with a paired permutation test against the default; p-values "
              f"Holm-adjusted over the {len(others)} variants, per metric; verdict at alpha {alpha}.")
    result = {}
    for name in predicted:
        entries = {}
        for key, (spec, boot, test, p, p_holm) in per_metric.items():
            own = boot[name]["a"]
            difference = None if name == DEFAULT else boot[name]["difference"]
            entries[key] = _metric_entry(spec, own, difference, test, p.get(name), p_holm.get(name), name, alpha)
        result[name] = {"against": DEFAULT, "data": f"{len(labels)} faces of {data_note}", "n": int(len(labels)),
                        "method": method,
                        "confidence": stats.CONFIDENCE, "alpha": alpha, "resamples": resamples, "seed": seed,
                        "command": "python -m core.variants.verdicts face --data ../shared/data/fer2013/fer2013.npz",
                        "metrics": entries}
        if zoo is not None:
            result[name]["seeds"] = _seeds_note(zoo, "face")
    return result


# --- songs: the folds in the cards ------------------------------------------------------------

def fold_values(card: dict, spec: Metric) -> np.ndarray:
    """(folds,) one metric of each cross-validation fold, from a song card."""
    try:
        per_fold = card["cross_validation"]["per_fold"]
    except KeyError:
        raise ValueError(f"the song card {card.get('name')!r} has no cross_validation.per_fold: retrain it "
                         "with `python -m core.train song --zoo` (5-fold cross-validation)") from None
    return np.array([spec.of(fold) for fold in per_fold])


def _song_metric(spec: Metric):
    """metric(targets (n, 2), predictions (n, 2)) of one song spec, for a bootstrap over songs."""
    if spec.path == ("quadrant_accuracy",):
        def quadrant_accuracy(true, pred):
            return float(np.mean(metrics.quadrant(true[:, 0], true[:, 1]) == metrics.quadrant(pred[:, 0], pred[:, 1])))
        return quadrant_accuracy
    column = {"valence": 0, "arousal": 1}[spec.path[0]]

    def metric(true, pred):
        return metrics.regression_metrics(true[:, column], pred[:, column])[spec.path[1]]
    return metric


def song_comparison(zoo: dict[str, dict], alpha: float = stats.ALPHA, resamples: int = stats.RESAMPLES,
                    seed: int = stats.SEED) -> dict[str, dict]:
    """{variant: comparison entry} from the song cards: over their cross-validation folds
    (song_fold_comparison) when the default's card has them, else, for cards of one validation
    split that hold their validation predictions, a paired bootstrap over those songs
    (song_split_comparison)."""
    if DEFAULT not in zoo:
        raise ValueError(f"the default's card is needed, got {list(zoo)}")
    if "cross_validation" not in zoo[DEFAULT] and all(
            "validation_predictions" in card and "validation_targets" in card for card in zoo.values()):
        return song_split_comparison(zoo, alpha, resamples, seed)
    return song_fold_comparison(zoo, alpha, resamples, seed)


def song_fold_comparison(zoo: dict[str, dict], alpha: float = stats.ALPHA, resamples: int = stats.RESAMPLES,
                         seed: int = stats.SEED) -> dict[str, dict]:
    """{variant: comparison entry} from the song cards' per-fold metrics (same folds as the default).

    The verdict rests on the paired t-test over the folds: each fold's models of the two variants
    saw the same training songs and were scored on the same held-out songs, and the fold-to-fold
    spread includes retraining on different songs. Where both cards hold out-of-fold predictions of
    the same songs, a paired bootstrap over songs is added ("over_songs"): it holds the trained
    models fixed, so it is narrower, and is shown for information only.
    """
    default = zoo[DEFAULT]
    folds = default.get("split", {}).get("fold_song_ids")
    for name, card in zoo.items():
        if card.get("split", {}).get("fold_song_ids") != folds:
            raise ValueError(f"the song variant {name!r} was not cross-validated on the default's folds "
                             "(split.fold_song_ids differ): retrain the zoo")
    others = [name for name in zoo if name != DEFAULT]
    n_folds = len(fold_values(default, SONG_METRICS[0]))
    per_metric = {}
    for spec in SONG_METRICS:
        base = fold_values(default, spec)
        tests = {name: stats.paired_t_interval(fold_values(zoo[name], spec), base) for name in others}
        p_holm = dict(zip(others, stats.holm([tests[n]["p"] for n in others]))) if others else {}
        per_metric[spec.key] = (spec, base, tests, p_holm)
    method = (f"Paired over the {n_folds} cross-validation folds (the same folds, stratified by quadrant, for "
              f"every variant): the mean of the {n_folds} per-fold differences from the default with its "
              f"t-interval ({n_folds - 1} degrees of freedom) and the paired t-test; p-values Holm-adjusted over "
              f"the {len(others)} variants, per metric; verdict at alpha {alpha}. Each variant's own interval: "
              "the t-interval of its per-fold mean. The folds' training sets overlap, so the fold-to-fold "
              "spread still understates the variation between retrainings.")
    result = {}
    for name, card in zoo.items():
        entries = {}
        for key, (spec, base, tests, p_holm) in per_metric.items():
            own = stats.mean_interval(fold_values(card, spec))
            own = {"value": own["mean"], "low": own["low"], "high": own["high"]}
            difference = test = p = None
            if name != DEFAULT:
                t = tests[name]
                difference = {"value": t["difference"], "low": t["low"], "high": t["high"]}
                test, p = f"paired t-test over {n_folds} folds", t["p"]
            entries[key] = _metric_entry(spec, own, difference, test, p, p_holm.get(name), name, alpha)
            entries[key]["per_fold"] = fold_values(card, spec).tolist()
            if name != DEFAULT:
                over_songs = _bootstrap_over_songs(card, default, spec, resamples, seed)
                if over_songs is not None:
                    entries[key]["over_songs"] = over_songs
        result[name] = {"against": DEFAULT, "data": card["split"].get("method") or f"{n_folds}-fold cross-validation",
                        "n": n_folds, "method": method, "confidence": stats.CONFIDENCE, "alpha": alpha,
                        "command": "python -m core.variants.verdicts song", "metrics": entries,
                        "seeds": _seeds_note(zoo, "song")}
    return result


def _bootstrap_over_songs(card: dict, default: dict, spec: Metric, resamples: int, seed: int) -> dict | None:
    keys = ("validation_predictions", "validation_targets", "validation_song_ids")
    if not all(k in card and k in default for k in keys) or card["validation_song_ids"] != default["validation_song_ids"]:
        return None
    boot = stats.paired_bootstrap(_song_metric(spec), np.asarray(default["validation_targets"]),
                                  np.asarray(card["validation_predictions"]),
                                  np.asarray(default["validation_predictions"]), resamples, seed)
    return {**boot["difference"], "resamples": resamples, "seed": seed,
            "note": "paired bootstrap over the songs' pooled out-of-fold predictions (models held fixed): "
                    "for information, not the verdict"}


def song_split_comparison(zoo: dict[str, dict], alpha: float = stats.ALPHA, resamples: int = stats.RESAMPLES,
                          seed: int = stats.SEED) -> dict[str, dict]:
    """{variant: comparison entry} for song cards of one validation split (no folds): a paired
    bootstrap over the validation songs of every card's stored predictions, a paired permutation
    test against the default, Holm over the variants. Every card must hold the same songs."""
    default = zoo[DEFAULT]
    targets = np.asarray(default["validation_targets"], dtype=np.float64)
    songs = default.get("split", {}).get("val_song_ids")
    for name, card in zoo.items():
        if card.get("split", {}).get("val_song_ids") != songs or not np.array_equal(
                np.asarray(card["validation_targets"], dtype=np.float64), targets):
            raise ValueError(f"the song variant {name!r} was not validated on the default's songs: retrain the zoo")
    predicted = {name: np.asarray(card["validation_predictions"], dtype=np.float64) for name, card in zoo.items()}
    others = [name for name in zoo if name != DEFAULT]
    per_metric = {}
    for spec in SONG_METRICS:
        metric = _song_metric(spec)
        boot = {name: stats.paired_bootstrap(metric, targets, predicted[name], predicted[DEFAULT], resamples, seed)
                for name in zoo}
        p = {name: stats.paired_permutation_test(metric, targets, predicted[name], predicted[DEFAULT], resamples, seed)
             for name in others}
        p_holm = dict(zip(others, stats.holm([p[n] for n in others]))) if others else {}
        per_metric[spec.key] = (spec, boot, p, p_holm)
    method = (f"One validation split, no cross-validation folds in these cards: a paired bootstrap over the "
              f"{len(targets)} validation songs ({resamples} resamples, seed {seed}, percentile intervals; every "
              "model resampled on the same songs) and a paired permutation test against the default; p-values "
              f"Holm-adjusted over the {len(others)} variants, per metric; verdict at alpha {alpha}. The models "
              "are held fixed, so the intervals leave out the variation between retrainings.")
    result = {}
    for name in zoo:
        entries = {}
        for key, (spec, boot, p, p_holm) in per_metric.items():
            difference = None if name == DEFAULT else boot[name]["difference"]
            test = None if name == DEFAULT else f"paired permutation test ({resamples} permutations)"
            entries[key] = _metric_entry(spec, boot[name]["a"], difference, test, p.get(name), p_holm.get(name),
                                         name, alpha)
        result[name] = {"against": DEFAULT, "data": f"one validation split of {len(targets)} songs", "n": len(targets),
                        "method": method, "confidence": stats.CONFIDENCE, "alpha": alpha, "resamples": resamples,
                        "seed": seed, "command": "python -m core.variants.verdicts song", "metrics": entries,
                        "seeds": _seeds_note(zoo, "song")}
    return result


# --- the cards ----------------------------------------------------------------------------------

def write_comparisons(task: str, comparisons: dict[str, dict]) -> list[Path]:
    """Store each comparison as its card's "comparison" entry; the model file and its SHA-256 in the
    card stay as they are (checked before writing)."""
    default_sha = cards.read_card(model_path(task, DEFAULT)).get("model_file", {}).get("sha256")
    written = []
    for name, comparison in comparisons.items():
        path = model_path(task, name)
        card = cards.read_card(path)
        if cards.sha256_file(path) != card.get("model_file", {}).get("sha256"):
            raise ModelFileError(f"{path} does not match its card: not writing a comparison into it")
        # which models were compared: a retrained variant or default makes the comparison stale
        card[COMPARISON] = {**comparison, "model_sha256": card["model_file"]["sha256"], "default_sha256": default_sha}
        written.append(cards.write_card(path, card))
    return written


def stale_comparisons(zoo: dict[str, dict]) -> list[str]:
    """Variants whose card has no comparison, or one computed for another model file or another
    default (retrained since): their entry no longer describes them."""
    default_sha = zoo.get(DEFAULT, {}).get("model_file", {}).get("sha256")
    stale = []
    for name, card in zoo.items():
        comparison = card.get(COMPARISON)
        if (comparison is None or comparison.get("model_sha256") != card.get("model_file", {}).get("sha256")
                or comparison.get("default_sha256") != default_sha):
            stale.append(name)
    return stale


def forest_rows(zoo: dict[str, dict], metric_key: str) -> list[dict]:
    """One row per variant other than the default, from the cards' comparison entries:
    {"variant", "difference", "low", "high", "verdict", "sentence", "p_holm"}. A card without a
    comparison is left out."""
    rows = []
    for name, card in zoo.items():
        entry = card.get(COMPARISON, {}).get("metrics", {}).get(metric_key)
        if name == DEFAULT or not entry or entry.get("difference") is None:
            continue
        d = entry["difference"]
        rows.append({"variant": name, "difference": d["value"], "low": d["low"], "high": d["high"],
                     "verdict": entry["verdict"], "sentence": entry["sentence"], "p_holm": entry["p_holm"]})
    return rows


def interval_text(card: dict, spec: Metric) -> str | None:
    """A card's own value of a metric with its interval, e.g. '67.1% (65.6 to 68.6)' or
    '0.62 (0.58 to 0.66)'; None when the card has no comparison entry."""
    entry = card.get(COMPARISON, {}).get("metrics", {}).get(spec.key)
    if not entry:
        return None
    if spec.scale == 100:
        return f"{entry['value']:.1%} ({entry['low'] * 100:.1f} to {entry['high'] * 100:.1f})"
    return f"{entry['value']:.3f} ({entry['low']:.3f} to {entry['high']:.3f})"


def rows_with_intervals(task: str, rows: list[dict], zoo: dict[str, dict]) -> list[dict]:
    """The Compare table's rows (core.variants.compare.variant_rows) with each metric that the cards give an
    interval for shown as 'value (low to high)' text, under '<column> (95% interval)'."""
    specs = {spec.label: spec for spec in compared_metrics(task)}
    out = []
    for row in rows:
        shown = {}
        for column, value in row.items():  # in the row's order
            text = interval_text(zoo[row["variant"]], specs[column]) if column in specs else None
            shown[column if text is None else f"{column} (95% interval)"] = value if text is None else text
        out.append(shown)
    return out


def verdicts_markdown(task: str, zoo: dict[str, dict]) -> str:
    """The comparison entries of a zoo's cards as a Markdown table: one row a variant, one column a
    metric ("difference (95% interval): verdict"), and the method and seeds note under it."""
    specs = compared_metrics(task)
    head = ["variant", *(spec.label + (spec.unit and f" ({spec.unit.strip()})") for spec in specs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, card in zoo.items():
        entries = card.get(COMPARISON, {}).get("metrics", {})
        if name == DEFAULT or not entries:
            continue
        cells = []
        for spec in specs:
            e = entries[spec.key]
            d = e["difference"]
            cells.append(f"{stats.signed_text(d['value'], spec.decimals, spec.scale)} "
                         f"({stats.signed_text(d['low'], spec.decimals, spec.scale)} to "
                         f"{stats.signed_text(d['high'], spec.decimals, spec.scale)}): "
                         + (f"**{e['verdict']}**" if e["verdict"] != stats.NO_DIFFERENCE else e["verdict"]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    comparison = zoo.get(DEFAULT, {}).get(COMPARISON)
    if comparison:
        seeds = comparison.get("seeds", {}).get("note", "")
        lines += ["", f"Each variant minus the default. {comparison['method']} {seeds} "
                      f"Computed by `{comparison['command']}`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.variants.verdicts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["song", "face"])
    parser.add_argument("--data", type=Path, default=None, help="face: fer2013.npz")
    parser.add_argument("--resamples", type=int, default=stats.RESAMPLES)
    parser.add_argument("--seed", type=int, default=stats.SEED)
    parser.add_argument("--markdown", action="store_true",
                        help="print the verdicts already in the cards as a Markdown table (computes nothing)")
    args = parser.parse_args(argv)
    zoo = trained_variants(args.task)
    if args.markdown:
        print(verdicts_markdown(args.task, zoo))
        return 0
    try:
        if DEFAULT not in zoo:
            raise ValueError(f"no trained default in models/{args.task}/")
        if args.task == "face":
            if args.data is None:
                raise ValueError("face needs --data FILE.npz (FER2013)")
            labels, predicted = face_predictions(list(zoo), args.data)
            comparisons = face_comparison(labels, predicted, zoo, args.resamples, args.seed)
            for name, comparison in comparisons.items():  # the models here against their cards
                comparison["card_check"] = {
                    "accuracy_in_card": zoo[name]["validation"]["accuracy"],
                    "accuracy_here": face_accuracy(labels, predicted[name]),
                    "machine_here": cards.machine_description(),
                    "note": "the card's accuracy was measured where the model was trained; the "
                            "comparison uses the predictions made here"}
        else:
            comparisons = song_comparison(zoo, resamples=args.resamples, seed=args.seed)
        write_comparisons(args.task, comparisons)
    except (ModelFileError, OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({name: {key: {k: entry[k] for k in ("value", "low", "high", "verdict", "sentence")}
                             for key, entry in c["metrics"].items()} for name, c in comparisons.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
