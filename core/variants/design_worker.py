"""Train one designed song variant, in a process of its own, reporting each epoch as it ends.

    python -m core.variants.design_worker JOB.json

JOB.json (written by core.variants.design_queue): {"task": "song", "name", "config" (the builder's
arguments, checked by core.variants.design.validate), "training" (the zoo default's recipe, from its
card), "data_dir", "cache_dir", "out_dir", "max_epochs" (null: the recipe's), "memory_mb",
"limit_s"}.

The same recipe as the zoo (core.song.train.train_song): 5-fold cross-validation on the folds of
core.splits.stratified_folds with the zoo's seed, then one model on every song; the musicnn
embeddings come from the cache (core.song.features.dataset_embeddings), never computed here. The
card has the zoo card's fields (core.cards.write_card via core.training.save_model), plus a
comparison entry against the zoo's default (its bootstrap over songs is what the page reuses).

Progress goes to stdout, one JSON object a line: {"event": "started"}, {"event": "epoch", "fold": k
(or "final"), "epoch", "loss", "val_loss"}, {"event": "fold", "fold", "metrics"}, {"event": "done",
"path"} or {"event": "error", "message"}. Everything else a library prints goes to stderr.
The process lowers its priority (os.nice), runs TensorFlow on one thread, and limits its address
space (RLIMIT_AS) and CPU time (RLIMIT_CPU) once its data is loaded.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

NICE = 10            # below the server's analyses: they come first on a busy CPU
THREADS = 1          # one CPU thread for TensorFlow: the other cores stay with the pages


class _Events:
    def __init__(self, stream):
        self.stream = stream

    def __call__(self, event: str, **fields) -> None:
        self.stream.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
        self.stream.flush()


def _limit_resources(memory_mb: int, limit_s: float) -> None:
    """Address space may grow by memory_mb from here; CPU time is capped a little past the limit
    (the queue kills the process at the wall-clock limit; this is the backstop)."""
    from core.workers import limit_memory

    limit_memory(memory_mb)
    cpu = int(limit_s * THREADS) + 30
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))


def fit_fold(config: dict, training: dict, data: dict, train: np.ndarray, seed: int, test: np.ndarray | None,
             on_epoch) -> tuple:
    """core.song.train.fit_song_crnn, with `on_epoch(epoch, loss, val_loss)` after each epoch."""
    from core.song import train as song_train

    return song_train.fit_song_crnn(config, training, data, train, seed, test, on_epoch=on_epoch)


def train_design(job: dict, emit) -> Path:
    """Cross-validate the design on the zoo's folds, train it on every song, write it with its card."""
    from core import cards, metrics
    from core.song.crossval import fold_summary
    from core.song.train import max_patches, musicnn_path, predict_sequences, song_training_data, window_patches
    from core.splits import fingerprint, stratified_folds
    from core.training import keras_module, latency_ms, save_model, without_optimizer
    from core.variants import verdicts
    from core.variants.zoo import DEFAULT, model_path as zoo_model_path

    started = time.time()
    cache_dir = Path(job["cache_dir"])
    if not any(cache_dir.glob("song_embeddings_*.npz")):
        raise ValueError(f"no cached embeddings in {cache_dir}: build them with `python -m core.variants.design "
                         f"cache --data {job['data_dir']} --cache {cache_dir}`")
    keras = keras_module()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    data = song_training_data(Path(job["data_dir"]), cache_dir)
    _limit_resources(int(job["memory_mb"]), float(job["limit_s"]))
    training = dict(job["training"])
    if job.get("max_epochs"):
        training["epochs"] = min(int(training["epochs"]), int(job["max_epochs"]))
    config, seed, n_folds, name = job["config"], int(training["seed"]), int(training["folds"]), job["name"]
    targets = data["targets"]
    folds = stratified_folds(data["quadrant"], n_folds, seed)
    emit("started", folds=n_folds, epochs=training["epochs"], songs=int(len(targets)))

    fold_curves, per_fold = [], []
    oof = np.zeros((len(targets), 2))
    for k in range(n_folds):
        train, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)

        def report(epoch, loss, val, k=k):
            emit("epoch", fold=k, epoch=epoch, loss=loss, val_loss=val)

        # seed + k: the zoo's seed of fold k (train_song's member_seed(seed + k, 0))
        model, curves, _ = fit_fold(config, training, data, train, seed + k, test, report)
        oof[test] = predict_sequences(model, data["embeddings"][0, test], data["n_patches"][0, test])
        per_fold.append(metrics.song_metrics(targets[test], oof[test]))
        fold_curves.append(curves)
        emit("fold", fold=k, metrics={"valence_r": per_fold[-1]["valence"]["r"],
                                      "arousal_r": per_fold[-1]["arousal"]["r"],
                                      "quadrant_accuracy": per_fold[-1]["quadrant_accuracy"]})
    summary = fold_summary(per_fold)
    model, final_curves, scaling = fit_fold(config, training, data, np.arange(len(targets)), seed, None,
                                            lambda epoch, loss, val: emit("epoch", fold="final", epoch=epoch,
                                                                          loss=loss, val_loss=None))
    seconds = time.time() - started
    first_window = data["embeddings"][0, :1, :max(int(data["n_patches"][0, 0]), 1)].astype(np.float32)
    default_card = cards.read_card(zoo_model_path("song", DEFAULT))
    card = {
        "task": "song", "name": name, "builder": "core.song.model.build_song_crnn", "config": config,
        "input": {"features": "musicnn MSD embeddings of 3-s patches (core.song.features)",
                  "musicnn_model": cards.read_card(musicnn_path())["model_file"],
                  "window_patches": window_patches(), "max_patches": max_patches()},
        "training": {**training, "seed": seed, "epochs_run": training["epochs"],
                     "loss": "mse on standardised targets (+ L2)",
                     "augmentation": default_card["training"].get("augmentation", ""),
                     "selection": "none: a fixed number of epochs for every fold and for the shipped model",
                     "seconds": round(seconds, 1), "machine": cards.machine_description(),
                     "threads": THREADS, "designed": "in the Compare page's panel (core.variants.design_worker)"},
        "data": {"dir": str(job["data_dir"]), "n_songs": int(len(targets)),
                 "audio": "songs/<song_id>.* (decoded as the app decodes)",
                 "content_sha256": fingerprint(song_id=data["song_id"], targets=targets),
                 "embeddings_key": data["key"]},
        "split": {"method": f"{n_folds}-fold cross-validation, folds stratified by quadrant", "seed": seed,
                  "folds": n_folds, "n_train": int(len(targets)), "n_val": 0,
                  "fold_song_ids": [data["song_id"][folds == k].tolist() for k in range(n_folds)]},
        "ships": f"one model trained on all {len(targets)} songs with the folds' recipe and epochs",
        "fold_models": [],
        "target_scaling": {**scaling, "note": "folded into the output layer: the model outputs raw values"},
        "curves": {key: np.mean([c[key] for c in fold_curves], axis=0).tolist() for key in ("loss", "val_loss")},
        "fold_curves": fold_curves,
        "final_curves": final_curves,
        "cross_validation": {"per_fold": per_fold, "mean": summary["mean"], "sd": summary["sd"]},
        "validation": {**summary["mean"], "note": f"mean over the {n_folds} cross-validation folds"},
        "validation_predictions": oof.round(4).tolist(),
        "validation_targets": targets.round(4).tolist(),
        "validation_song_ids": data["song_id"].tolist(),
        "baselines": {},
        "latency": latency_ms(model, first_window),
    }
    # Against the zoo's default alone: its bootstrap over songs is kept by the page, which
    # recomputes the fold verdicts over the zoo and every designed variant (design_store.with_designed).
    if card["split"]["fold_song_ids"] == default_card.get("split", {}).get("fold_song_ids"):
        card["comparison"] = verdicts.song_comparison({DEFAULT: default_card, name: cards.Card.from_dict(card)})[name]
    out = Path(job["out_dir"]) / name
    path = save_model(without_optimizer(model), out, card)
    if job.get("export_litert", True):
        try:
            from core.song.export import export_song_crnn

            export_song_crnn(path)
        except Exception as e:  # noqa: BLE001 - the .keras serves the Compare page; LiteRT is optional
            print(f"moodlens: no .tflite for {name}: {e}", file=sys.stderr)
    del keras
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    events = _Events(os.fdopen(os.dup(sys.stdout.fileno()), "w"))
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a library's print goes to stderr, not into the events
    os.nice(NICE)
    try:
        job = json.loads(Path(argv[0]).read_text())
        if job.get("task") != "song":
            raise ValueError("the panel trains song designs only; train a face design with `python -m core.train face`")
        path = train_design(job, events)
    except MemoryError:
        events("error", message=f"the training went over its memory limit ({job['memory_mb']} MB)")
        return 3
    except Exception as e:  # noqa: BLE001 - every failure reaches the page as one message
        events("error", message=f"{type(e).__name__}: {e}")
        return 2
    events("done", path=str(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
