"""What the Face page runs: several face CNNs of the zoo, each on the face and on its mirror image,
their probabilities averaged.

    python -m core.face.ensemble measure --data FILE.npz
        every zoo model alone, with the mirror average, and every ensemble of them (with and
        without mirror) on PublicTest (usage 1): one JSON line each, best accuracy first.
    python -m core.face.ensemble card --data FILE.npz --members default,dropout_0.0 [--no-mirror]
        writes models/face/ensemble.json: the members with their SHA-256, the mirror average, the
        PublicTest metrics of exactly what `FaceEnsemble` computes, and the latency here.

The ensemble's card is read by `core.face.served.FaceEnsemble.load`, which refuses a member whose file is not the
one the card measured. `python -m core.evaluate face --data FILE` (no --model) scores this.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core.face.data import FER_PUBLIC_TEST, load_fer
from core import cards, metrics
from core.face import detect as faces
from core.face.data import EXPRESSIONS
from core.errors import ModelFileError
from core.litert import LiteRTModel
from core.face.served import ENSEMBLE_CARD, FaceEnsemble, mirrored
from core.runner import ModelRunner, batched
from core.variants.zoo import ZOO, model_path

BATCH = 256  # faces per call when scoring a data set


# --- measuring on PublicTest --------------------------------------------------------------------

def public_test(data_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """PublicTest (usage 1) faces (n, 48, 48, 1) float32 and labels (n,)."""
    data = load_fer(data_path)
    rows = data.usage == FER_PUBLIC_TEST
    if not rows.any():
        raise ValueError(f"{data_path} has no PublicTest (usage 1) rows")
    return data.pixels[rows][..., None].astype(np.float32), data.label[rows].astype(int)


def candidates() -> list[str]:
    """The face models an ensemble may be made of: the zoo's variants, then every other single face
    CNN with a card in models/face (e.g. the members `python -m core.face.train` trains side by side
    on a GPU), by name."""
    names = list(ZOO["face"])
    for path in sorted((cards.MODELS_DIR / "face").glob("*.keras")):
        if path.stem in names or not cards.card_path(path).exists():
            continue
        card = cards.read_card(path)
        if card.get("task") == "face" and card.get("kind") in (None, "model") and \
                card.get("builder") == "core.face.model.build_face_cnn" and not card.get("derived_from"):
            names.append(path.stem)
    return names


def zoo_probabilities(x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Each candidate model's probabilities on the faces as seen and mirrored -> {name: (2, n, 7)}."""
    out = {}
    for name in names:
        runner = ModelRunner.load(model_path("face", name))
        out[name] = np.stack([batched(runner, x), batched(runner, mirrored(x))])
    return out


def summary(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    m = metrics.classification_metrics(labels, probabilities, EXPRESSIONS)
    return {k: m[k] for k in ("accuracy", "macro_f1", "per_class_recall")}


def measure_all(labels: np.ndarray, probabilities: dict[str, np.ndarray]) -> list[dict]:
    """Every non-empty set of models, with and without the mirror average -> rows, best first.

    Each row also carries its accuracy on the even and the odd PublicTest rows, so that a choice
    made on one half can be read on the other."""
    rows = []
    halves = {"even": np.arange(len(labels)) % 2 == 0, "odd": np.arange(len(labels)) % 2 == 1}
    names = list(probabilities)
    for k in range(1, len(names) + 1):
        for members in itertools.combinations(names, k):
            for mirror in (False, True):
                p = _set_probabilities(probabilities, list(members), mirror)
                row = {"members": list(members), "mirror_average": mirror, **summary(labels, p)}
                row["accuracy_half"] = {h: float(np.mean(p[r].argmax(1) == labels[r])) for h, r in halves.items()}
                rows.append(row)
    return sorted(rows, key=lambda r: -r["accuracy"])


def selection_check(labels: np.ndarray, probabilities: dict[str, np.ndarray], members: list[str],
                    mirror: bool) -> dict:
    """How far a choice made on PublicTest flatters its PublicTest score: the chosen set's rank among
    every set `measure_all` tries, and, choosing the best set on one half of PublicTest (even or odd
    rows), what that choice scores on the other half."""
    rows = measure_all(labels, probabilities)
    rank = next(i for i, r in enumerate(rows, 1) if sorted(r["members"]) == sorted(members)
                and r["mirror_average"] == mirror)
    halves = {}
    for chosen_on, scored_on in (("even", "odd"), ("odd", "even")):
        best = max(rows, key=lambda r: r["accuracy_half"][chosen_on])
        halves[f"chosen_on_{chosen_on}_rows"] = {
            "members": best["members"], "mirror_average": best["mirror_average"],
            f"accuracy_on_{chosen_on}_rows": best["accuracy_half"][chosen_on],
            f"accuracy_on_{scored_on}_rows": best["accuracy_half"][scored_on]}
    best = rows[0]
    return {"rule": "the set of candidate models (the zoo and the other face CNNs in models/face), with or "
                    "without the mirror average, of best PublicTest accuracy",
            "rank_by_accuracy": rank, "sets_tried": len(rows), **halves,
            "best_set": {"members": best["members"], "mirror_average": best["mirror_average"],
                         "accuracy": best["accuracy"], "macro_f1": best["macro_f1"],
                         "against_the_chosen_set": best_against_chosen(labels, probabilities, best, members, mirror)}}


def _set_probabilities(probabilities: dict[str, np.ndarray], members: list[str], mirror: bool) -> np.ndarray:
    return np.mean([probabilities[n][:2 if mirror else 1].mean(axis=0) for n in members], axis=0)


def best_against_chosen(labels: np.ndarray, probabilities: dict[str, np.ndarray], best: dict, members: list[str],
                        mirror: bool) -> dict:
    """The best set's PublicTest accuracy minus the chosen set's, on the same faces: its paired
    bootstrap interval, the faces only one of them gets right (McNemar's exact test) and the verdict
    (core.stats), so a choice that keeps fewer members says in numbers what it gives up."""
    from core import stats

    right_best = _set_probabilities(probabilities, best["members"], best["mirror_average"]).argmax(1) == labels
    right_chosen = _set_probabilities(probabilities, members, mirror).argmax(1) == labels
    accuracy = lambda y, right: float(np.mean(right))  # noqa: E731 - the metric of already-scored faces
    difference = stats.paired_bootstrap(accuracy, labels, right_best, right_chosen)["difference"]
    test = stats.mcnemar_exact(right_best, right_chosen)
    return {"accuracy_difference": difference, "faces_only_the_best_set_gets_right": test["a_only"],
            "faces_only_the_chosen_set_gets_right": test["b_only"], "mcnemar_p": test["p"],
            "verdict": stats.verdict(difference["value"], test["p"])}


def bootstrap_interval(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """95% percentile intervals of accuracy and macro-F1 over PublicTest faces resampled with
    replacement (core.stats' resamples and seed)."""
    from core import stats

    predicted = probabilities.argmax(axis=1)
    k = len(EXPRESSIONS)
    accuracy, macro_f1 = [], []
    for rows in stats.bootstrap_indices(len(labels)):
        y, p = labels[rows], predicted[rows]
        confusion = np.bincount(y * k + p, minlength=k * k).reshape(k, k)
        tp, support, called = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
        f1 = np.divide(2 * tp, support + called, out=np.zeros(k), where=(support + called) > 0)
        accuracy.append(tp.sum() / len(y))
        macro_f1.append(f1.mean())
    tail = (1 - stats.CONFIDENCE) / 2 * 100
    interval = lambda v: [float(q) for q in np.percentile(v, [tail, 100 - tail])]
    return {"accuracy": interval(accuracy), "macro_f1": interval(macro_f1), "confidence": stats.CONFIDENCE,
            "resamples": stats.RESAMPLES, "method": "percentile bootstrap over PublicTest faces"}


# --- latency ------------------------------------------------------------------------------------

def one_face_frame(face: np.ndarray, side_px: int = 100) -> np.ndarray:
    """A grey 640x480 BGR frame with one 48x48 grey face pasted, upscaled, near its top left."""
    import cv2

    canvas = np.full((480, 640, 3), 128, np.uint8)
    canvas[20:20 + side_px, 20:20 + side_px] = cv2.cvtColor(
        cv2.resize(face, (side_px, side_px), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
    return canvas


def median_ms(fn, repeats: int) -> float:
    """Median wall time of `fn()` over `repeats` calls, in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def frame_latency_ms(scorer, frame: np.ndarray, repeats: int = 50) -> dict:
    """Median times on one frame: face detection, and crop + scoring of the faces found (after a
    warm-up call), and the frames per second of the two together."""
    found = faces.detect_faces(frame)
    scorer(faces.crop_faces(frame, found))
    detect = median_ms(lambda: faces.detect_faces(frame), repeats)
    score = median_ms(lambda: scorer(faces.crop_faces(frame, found)), repeats)
    return {"faces_found": len(found), "detection_ms": round(detect, 2), "crop_and_score_ms": round(score, 2),
            "frames_per_s": round(1000 / (detect + score), 1), "repeats": repeats}


def one_detectable_face(pixels: np.ndarray) -> np.ndarray:
    """The first of these 48x48 faces that the detector finds once in `one_face_frame`."""
    for face in pixels:
        if len(faces.detect_faces(one_face_frame(face))) == 1:
            return face
    raise ValueError("the detector finds none of these faces")


# --- the card -----------------------------------------------------------------------------------

def write_card(data_path: Path, members: list[str], mirror: bool, out: Path = ENSEMBLE_CARD,
               repeats: int = 50, choice: str | None = None) -> dict:
    """Measure the ensemble on PublicTest through `FaceEnsemble` itself, time it on a frame with one
    face, and write its card (JSON) to `out`."""
    known = candidates()
    unknown = [m for m in members if m not in known]
    if unknown:
        raise ValueError(f"no face model(s) {unknown}; the candidates are {known}")
    member_cards = {m: cards.read_card(model_path("face", m)) for m in members}
    ensemble = FaceEnsemble({m: ModelRunner.load(model_path("face", m)) for m in members}, mirror)
    x, labels = public_test(data_path)
    probabilities = batched(ensemble, x)
    validation = metrics.classification_metrics(labels, probabilities, EXPRESSIONS)
    validation["interval_95"] = bootstrap_interval(labels, probabilities)
    selection = selection_check(labels, zoo_probabilities(x, known), members, mirror)
    if choice:  # why these members, where they are not the rule's best set
        selection["choice"] = choice
    data = load_fer(data_path)
    frame = one_face_frame(one_detectable_face(data.pixels[data.usage == FER_PUBLIC_TEST][:200]))
    # Timed as the page serves it: the same members on LiteRT (their `.tflite` files, checked against
    # these `.keras` files by core.face.export and the tests), not through TensorFlow.
    served = FaceEnsemble({m: LiteRTModel.load(model_path("face", m)) for m in members}, mirror)
    latency = {**frame_latency_ms(served, frame, repeats), "runtime": "litert",
               "machine": cards.machine_description(), "load_average_1min": round(os.getloadavg()[0], 2),
               "frame": "640x480 grey, one PublicTest face upscaled to 100 px"}
    card = {
        "task": "face", "name": "ensemble", "kind": "ensemble",
        "members": [{"name": m, "file": model_path("face", m).name,
                     "sha256": member_cards[m]["model_file"]["sha256"],
                     "size_bytes": member_cards[m]["model_file"]["size_bytes"],
                     "parameters": member_cards[m]["parameters"],
                     "public_test_accuracy_alone": member_cards[m]["validation"]["accuracy"]} for m in members],
        "mirror_average": mirror,
        "combination": "mean of the members' probabilities, each member's the mean over the face and "
                       "its mirror image" if mirror else "mean of the members' probabilities",
        "parameters": int(sum(c["parameters"] for c in member_cards.values())),
        "size_bytes": int(sum(c["model_file"]["size_bytes"] for c in member_cards.values())),
        "data": {"file": str(data_path), "content_sha256": data.fingerprint()},
        "split": {"validation": "usage 1 (PublicTest)", "n_val": int(len(labels)),
                  "n_train": member_cards[members[0]]["split"]["n_train"],
                  "train": member_cards[members[0]]["split"]["train"]},
        "validation": validation,
        "selection": selection,
        "latency": latency,
        "command": "python -m core.face.ensemble card --data " + str(data_path) + " --members "
                   + ",".join(members) + ("" if mirror else " --no-mirror")
                   + (f" --choice {json.dumps(choice)}" if choice else ""),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    Path(out).write_text(json.dumps(card, indent=1) + "\n")
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.face.ensemble", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["measure", "card"])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--members", default=None,
                        help="comma-separated model names (default: every candidate, `candidates()`)")
    parser.add_argument("--no-mirror", action="store_true", help="card: no mirror average")
    parser.add_argument("--out", type=Path, default=ENSEMBLE_CARD, help="card: where to write it")
    parser.add_argument("--repeats", type=int, default=50, help="card: timing repeats")
    parser.add_argument("--choice", default=None, help="card: why these members (kept in the card's selection)")
    args = parser.parse_args(argv)
    try:
        members = [m for m in args.members.split(",") if m] if args.members else candidates()
        if args.action == "measure":
            x, labels = public_test(args.data)
            for row in measure_all(labels, zoo_probabilities(x, members)):
                print(json.dumps(row), flush=True)
        else:
            card = write_card(args.data, members, not args.no_mirror, args.out, args.repeats, args.choice)
            print(json.dumps({k: card[k] for k in ("members", "mirror_average", "latency")}
                             | {"accuracy": card["validation"]["accuracy"],
                                "macro_f1": card["validation"]["macro_f1"]}))
    except (ModelFileError, OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
