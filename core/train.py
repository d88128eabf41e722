"""Train a model and write its `.keras` file and card.

    python -m core.train song --data ../shared/data/music --out models/song/ensemble --members 5 \
        --ablation [--cache /work/cache/moodlens]          (what the Song page runs)
    python -m core.train song --data ../shared/data/music --out models/song/default --ablation \
        [--cache /work/cache/moodlens]                     (one network: the zoo's default)
    python -m core.train face --data ../shared/data/fer2013/fer2013.npz --out models/face/default

    python -m core.train song --zoo --data ../shared/data/music [--only NAME,NAME] [--out models/song]

`--config '{"pooling": "average"}'` overrides builder arguments: a variant is its configuration.
`--zoo` trains every variant of core.variants.ZOO (one choice changed from the default each) with
the same split, seed and budget, into `--out` (default models/<task>/<variant>).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core import cards, datasets, metrics

# Song: 40 epochs at 5e-4 was the best of six settings tried on the same 5 folds (25 and 60 epochs
# at 1e-3, dropout 0.5, narrower layers, L2 1e-2): chosen on the folds it is scored on, so its
# cross-validated figures lean slightly optimistic. The differences were within the folds' spread.
SONG_TRAINING = {"epochs": 40, "batch_size": 32, "learning_rate": 5e-4, "folds": 5, "min_crop_patches": 4,
                 "logmel_epochs": 40}
FACE_TRAINING = {"epochs": 80, "batch_size": 128, "learning_rate": 1e-3, "label_smoothing": 0.1,
                 "mixed_bfloat16": True,
                 # Averaging each face with its mirror image changed the default's PublicTest accuracy
                 # little and not consistently across its checkpoints (2026-11-22), at twice the
                 # cost, so the default ships the single pass.
                 "mirror_average": False}


def _keras():
    from core.tf_runtime import import_keras

    return import_keras()


def _history(history) -> dict[str, list[float]]:
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def _latency_ms(model, sample: np.ndarray, repeats: int = 30) -> dict:
    """Median time of one `predict_on_batch` on one input, after a warm-up call."""
    model.predict_on_batch(sample)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(sample)
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": float(np.median(times)), "repeats": repeats,
            "machine": cards.machine_description(), "measured_on": "the machine that trained it"}


def resolved_config(builder, config: dict) -> dict:
    """The builder's defaults with `config` on top: the full argument set a card records."""
    import inspect

    unknown = set(config) - set(inspect.signature(builder).parameters)
    if unknown:
        raise ValueError(f"{builder.__name__} has no argument(s) {sorted(unknown)}")
    defaults = {k: p.default for k, p in inspect.signature(builder).parameters.items()}
    return json.loads(json.dumps({**defaults, **config}))  # tuples -> lists, as JSON keeps them


def _save(model, out: Path, card: dict) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    model_path = out.parent / f"{out.name}.keras"  # not with_suffix: "dropout_0.5" has a dot
    model.save(model_path)
    card["model_file"] = {"name": model_path.name, "sha256": cards.sha256_file(model_path),
                          "size_bytes": model_path.stat().st_size}
    card["parameters"] = int(model.count_params())
    card["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cards.write_card(model_path, card)
    return model_path


def _batches(keras, n: int, batch_size: int, seed: int, shuffle: bool, make_batch):
    """A keras.utils.PyDataset over `n` examples: `make_batch(indices, rng)` builds each batch from
    sorted indices; with `shuffle`, a new order every epoch. Plain NumPy, so training runs on any
    Keras backend (TensorFlow here, JAX on a GPU machine)."""

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(n) if shuffle else np.arange(n)

        def __len__(self):
            return int(np.ceil(n / batch_size))

        def on_epoch_end(self):
            if shuffle:
                self.order = self.rng.permutation(n)

        def __getitem__(self, i):
            return make_batch(np.sort(self.order[i * batch_size:(i + 1) * batch_size]), self.rng)

    return Batches()


# --- song -------------------------------------------------------------------------------------
# The song model is trained and scored by 5-fold cross-validation over the data set's songs (folds
# stratified by quadrant, one seed): the same folds for every variant and every ablation row. The
# shipped model is then trained on all the songs with the same recipe and number of epochs; the
# fold models are kept beside it (models/song/folds/<variant>/) for the spread of a prediction.

def song_training_data(data_dir: Path, cache_dir: Path | None) -> dict:
    """The songs' annotations and musicnn patch embeddings computed from their audio
    (core.song_features.dataset_embeddings: the app's grid and a shifted one)."""
    from core import song_features

    song_id, targets, quadrant = datasets.load_annotations(data_dir)
    found = song_features.dataset_embeddings(data_dir, song_id, cache_dir)
    return {"song_id": song_id, "targets": targets, "quadrant": quadrant, **found}


def _embedding_stats(embeddings: np.ndarray, n_patches: np.ndarray) -> np.ndarray:
    """Per song: mean and sd of the 200-d penultimate layer over its patches, and its 50 tags' mean
    -> (n, 450); the issue's ridge features."""
    from core.musicnn import PENULTIMATE_UNITS

    rows = []
    for e, n in zip(embeddings, n_patches):
        e = e[:max(int(n), 1)]
        rows.append(np.concatenate([e[:, :PENULTIMATE_UNITS].mean(0), e[:, :PENULTIMATE_UNITS].std(0),
                                    e[:, PENULTIMATE_UNITS:].mean(0)]))
    return np.stack(rows)


def _logmel_stats(features: np.ndarray, n_valid: np.ndarray) -> np.ndarray:
    """Per song: per-band mean and sd of the log-mel over its valid frames -> (n, 256)."""
    return np.stack([np.concatenate([f[:max(int(n), 1)].mean(0), f[:max(int(n), 1)].std(0)])
                     for f, n in zip(features.astype(np.float32), n_valid)])


def _ridge_predictions(stats: np.ndarray, targets: np.ndarray, train: np.ndarray, test: np.ndarray,
                       kind: str = "ridge") -> np.ndarray:
    """Standardised features, then RidgeCV (alphas 1e-2..1e4) or an RBF SVR, one per target."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    pred = np.zeros((len(test), 2))
    for j in range(2):
        regressor = RidgeCV(alphas=np.logspace(-2, 4, 13)) if kind == "ridge" else SVR(C=1.0, epsilon=0.05)
        model = make_pipeline(StandardScaler(), regressor).fit(stats[train], targets[train, j])
        pred[:, j] = model.predict(stats[test])
    return pred


def fold_summary(per_fold: list[dict]) -> dict:
    """Per-fold song_metrics -> {"mean": ..., "sd": ...} of every number, in the same nesting
    (sd with ddof=1, across folds)."""
    def walk(items):
        first = items[0]
        if isinstance(first, dict):
            keys = [k for k in first if k != "n"]
            out = {k: walk([i[k] for i in items]) for k in keys}
            return {"mean": {k: v["mean"] for k, v in out.items()}, "sd": {k: v["sd"] for k, v in out.items()}}
        values = np.asarray(items, float)
        return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0}

    summary = walk(per_fold)
    summary["mean"]["n"] = summary["sd"]["n"] = int(sum(f["n"] for f in per_fold))
    return summary


def _cross_validated(predict_fold, targets: np.ndarray, folds: np.ndarray) -> dict:
    """Score `predict_fold(train, test) -> (len(test), 2)` on every fold -> per-fold metrics, their
    mean and sd, and the out-of-fold predictions of every song."""
    oof = np.zeros((len(targets), 2))
    per_fold = []
    for k in range(int(folds.max()) + 1):
        train, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        oof[test] = predict_fold(train, test)
        per_fold.append(metrics.song_metrics(targets[test], oof[test]))
    return {"per_fold": per_fold, **fold_summary(per_fold), "predictions": oof}


def _sequence_batches(keras, embeddings, n_patches, z, training, seed):
    """Batches of random crops of songs' patch sequences: per batch one length (min_crop_patches up
    to WINDOW_PATCHES), per song a random grid (the app's or the shifted one) and a random start; a
    song shorter than the crop repeats its patches (musicnn's own repeat-padding)."""
    from core.song_features import WINDOW_PATCHES

    low = int(training["min_crop_patches"])

    def make_batch(idx, rng):
        length = int(rng.integers(low, WINDOW_PATCHES + 1))
        batch = np.empty((len(idx), length, embeddings.shape[-1]), np.float32)
        for k, j in enumerate(idx):
            grid = int(rng.integers(0, embeddings.shape[0]))
            n = max(int(n_patches[grid, j]), 1)
            start = int(rng.integers(0, max(n - length, 0) + 1))
            steps = (start + np.arange(length)) % n if n < length else start + np.arange(length)
            batch[k] = embeddings[grid, j, np.sort(steps) if n >= length else steps]
        return batch, z[idx]

    return _batches(keras, embeddings.shape[1], training["batch_size"], seed, True, make_batch)


def predict_sequences(model, embeddings: np.ndarray, n_patches: np.ndarray) -> np.ndarray:
    """Each song's whole sequence on the app's grid, as the app gives a clip of up to 30 s (one
    window): (n, WINDOW_PATCHES, 250) and (n,) patches -> (n, 2), songs batched by length."""
    pred = np.zeros((len(embeddings), 2))
    for n in np.unique(n_patches):
        rows = np.flatnonzero(n_patches == n)
        pred[rows] = model.predict_on_batch(embeddings[rows, :max(int(n), 1)].astype(np.float32))
    return pred


def fit_song_crnn(config: dict, training: dict, data: dict, train: np.ndarray, seed: int,
                  test: np.ndarray | None = None):
    """Train the song CRNN on the songs `train` -> (model that outputs raw (valence, arousal),
    curves). With `test`, the curves include its loss after each epoch (watched, never used to stop
    or select: every run trains for training["epochs"] epochs)."""
    keras = _keras()
    from core.song_model import build_song_crnn, fold_target_scaling

    keras.utils.set_random_seed(seed)
    targets = data["targets"]
    mean, std = targets[train].mean(0), targets[train].std(0)
    z = ((targets - mean) / std).astype(np.float32)
    model = build_song_crnn(**config)
    if config.get("input_features", "musicnn") != "musicnn":
        raise ValueError("fit_song_crnn trains on musicnn embeddings; the log-mel CRNN is train_logmel_crnn")
    grid0, n0 = data["embeddings"][0], data["n_patches"][0]
    patches = np.concatenate([e[:n] for e, n in zip(grid0[train], n0[train])])
    model.get_layer("standardize").adapt(patches[:, None, :])  # (patches, 1 step, 250), as the input
    model.compile(keras.optimizers.Adam(training["learning_rate"]), loss="mse")
    validation = None
    if test is not None:
        validation = _TestLoss(keras, grid0[test], n0[test], z[test])
    # A loop of train_on_batch rather than fit: each batch has its own crop length, and fit's
    # TensorFlow input pipeline fixes every batch's shape to the first one's.
    batches = _sequence_batches(keras, data["embeddings"][:, train], data["n_patches"][:, train], z[train],
                                training, seed)
    curves = {"loss": []}
    for _ in range(training["epochs"]):
        losses = [float(np.asarray(model.train_on_batch(*batches[i]))) for i in range(len(batches))]
        curves["loss"].append(float(np.mean(losses)))
        batches.on_epoch_end()
        if validation:
            validation.on_epoch_end(model)
    if validation:
        curves["val_loss"] = validation.losses
    fold_target_scaling(model, mean, std)
    return model, curves, {"mean": mean.tolist(), "std": std.tolist()}


class _TestLoss:
    """The MSE on standardised targets of held-out songs after each epoch, their whole sequences
    scored as the app scores them."""

    def __init__(self, keras, embeddings, n_patches, z):
        self.embeddings, self.n_patches, self.z = embeddings, n_patches, z
        self.losses: list[float] = []

    def on_epoch_end(self, model) -> None:
        pred = predict_sequences(model, self.embeddings, self.n_patches)
        self.losses.append(float(np.mean((pred - self.z) ** 2)))


def train_logmel_crnn(music: datasets.MusicData, train: np.ndarray, test: np.ndarray, training: dict,
                      seed: int) -> np.ndarray:
    """The earlier model for the ablation: the log-mel CRNN (input_features="logmel") trained on a
    fold's songs with the earlier recipe (random 430-frame crops, one frequency mask), early stopping
    on a stratified 10% of them; predicts the held-out songs' whole 30-s log-mel -> (len(test), 2)."""
    keras = _keras()
    from core.song_model import build_song_crnn, fold_target_scaling

    keras.utils.set_random_seed(seed)
    inner_train, inner_val = datasets.stratified_split(music.quadrant[train], 0.1, seed)
    inner_train, inner_val = train[inner_train], train[inner_val]
    mean, std = music.targets[inner_train].mean(0), music.targets[inner_train].std(0)
    z = (music.targets - mean) / std
    model = build_song_crnn(input_features="logmel", pool_padding="valid")
    model.compile(keras.optimizers.Adam(2e-3), loss="mse")
    model.fit(_song_crops(keras, music.logmel[inner_train], z[inner_train], music.n_valid_frames[inner_train],
                          430, 16, seed),
              validation_data=(music.logmel[inner_val].astype(np.float32), z[inner_val]),
              epochs=training["logmel_epochs"], verbose=0,
              callbacks=[keras.callbacks.EarlyStopping(patience=8, restore_best_weights=True),
                         keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=4, min_lr=1e-5)])
    fold_target_scaling(model, mean, std)
    x = music.logmel[test].astype(np.float32)
    return np.concatenate([model.predict_on_batch(x[i:i + 64]) for i in range(0, len(x), 64)])


def _song_crops(keras, x, z, n_valid, crop_frames, batch_size, seed):
    """Batches of random log-mel time crops, each with one random frequency mask (SpecAugment-style)."""
    from core.song_model import N_MELS

    def make_batch(idx, rng):
        batch = np.empty((len(idx), crop_frames, N_MELS), np.float32)
        for k, j in enumerate(idx):
            start = rng.integers(0, max(1, min(int(n_valid[j]), x.shape[1]) - crop_frames + 1))
            batch[k] = x[j, start:start + crop_frames]
            band, width = rng.integers(0, N_MELS), rng.integers(0, 13)
            batch[k, :, band:band + width] = -80.0
        return batch, z[idx]

    return _batches(keras, len(x), batch_size, seed, True, make_batch)


def song_ablation(data_dir: Path, data: dict, folds: np.ndarray, training: dict, seed: int,
                  crnn: dict) -> list[dict]:
    """The ablation rows, every one on the same folds: ridge and SVR on log-mel stats, ridge on the
    musicnn embedding stats, the log-mel CRNN, and `crnn` (the new CRNN's own cross-validation)."""
    targets = data["targets"]
    rows = []

    def row(name, features, model, result):
        rows.append({"name": name, "features": features, "model": model, "per_fold": result["per_fold"],
                     "mean": result["mean"], "sd": result["sd"]})

    music = None
    if (Path(data_dir) / datasets.MUSIC_FEATURES).exists():
        music = datasets.load_music(data_dir)
        if not np.array_equal(music.song_id, data["song_id"]):
            raise ValueError("features_logmel.npz and annotations.csv list different songs")
        stats = _logmel_stats(music.logmel, music.n_valid_frames)
        for kind in ("ridge", "svr"):
            row(f"{kind} on log-mel stats", "per-band mean and sd of the stored log-mel (256)",
                "RidgeCV" if kind == "ridge" else "RBF SVR (C 1, epsilon 0.05)",
                _cross_validated(lambda tr, te: _ridge_predictions(stats, targets, tr, te, kind), targets, folds))
    embedding_stats = _embedding_stats(data["embeddings"][0], data["n_patches"][0])
    row("ridge on musicnn embeddings", "mean and sd of the 200-d penultimate layer over the patches, "
        "mean of the 50 tags (450)", "RidgeCV",
        _cross_validated(lambda tr, te: _ridge_predictions(embedding_stats, targets, tr, te), targets, folds))
    if music is not None and training.get("logmel_epochs"):
        row("CRNN on log-mel", "the stored 30-s log-mel (646 x 128 dB)",
            f"core.song_model.build_song_crnn(input_features='logmel'), at most {training['logmel_epochs']} "
            "epochs, early stopping on 10% of each fold's training songs",
            _cross_validated(lambda tr, te: train_logmel_crnn(music, tr, te, training, seed), targets, folds))
    row("CRNN on musicnn embeddings (this model's recipe)", "sequence of per-patch embeddings (200-d "
        "penultimate + 50 tags)", "core.song_model.build_song_crnn (this card's config)", crnn)
    return rows


def member_seed(seed: int, member: int) -> int:
    """The seed of an ensemble's member: member 0 has the single network's seed."""
    return seed + 1000 * member


def average_of(models: list, name: str):
    """One Keras model whose output is the mean of the given models' outputs (each a copy without
    its optimizer, renamed member_<i>): what a seed ensemble ships as, one file and one call."""
    keras = _keras()
    members = [_without_optimizer(model, name=f"member_{i}") for i, model in enumerate(models)]
    inputs = keras.Input(models[0].input_shape[1:], name="patches")
    mean = keras.layers.Average(name="mean_of_members")([m(inputs) for m in members])
    return keras.Model(inputs, mean, name=name)


def train_song(data_dir: Path, out: Path, config: dict, training: dict, seed: int,
               cache_dir: Path | None = None, ablation: bool = False, save_folds: bool = True,
               members: int = 1) -> Path:
    """Cross-validate the song CRNN on 5 folds, train the shipped model on every song, write both
    (the fold models under <out's folder>/folds/<name>/) and the card.

    members > 1: a seed ensemble. Each fold's prediction, and the shipped model's, is the mean of
    `members` CRNNs of the same recipe that differ only in their seed (`member_seed`); the shipped
    model is one file (`average_of`), and no fold models are written (the spread of a prediction
    comes from the single network's)."""
    from core.song_model import build_song_crnn

    if members < 1:
        raise ValueError(f"members must be 1 or more, not {members}")
    started = time.time()
    data = song_training_data(data_dir, cache_dir)
    targets = data["targets"]
    folds = datasets.stratified_folds(data["quadrant"], training["folds"], seed)
    config = resolved_config(build_song_crnn, config)
    save_folds = save_folds and members == 1

    fold_curves, fold_paths = [], []
    oof = np.zeros((len(targets), 2))
    per_fold, single_per_fold = [], []
    for k in range(training["folds"]):
        train, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        predictions, member_curves = [], []
        for m in range(members):
            model, curves, scaling = fit_song_crnn(config, training, data, train, member_seed(seed + k, m), test)
            predictions.append(predict_sequences(model, data["embeddings"][0, test], data["n_patches"][0, test]))
            single_per_fold.append(metrics.song_metrics(targets[test], predictions[-1]))
            member_curves.append(curves)
        oof[test] = np.mean(predictions, axis=0)
        per_fold.append(metrics.song_metrics(targets[test], oof[test]))
        fold_curves.append({key: np.mean([c[key] for c in member_curves], axis=0).tolist() for key in curves})
        if save_folds:
            fold_out = out.parent / "folds" / out.name / f"fold_{k}"
            fold_paths.append(_save(_without_optimizer(model), fold_out, {
                "task": "song", "name": f"{out.name} fold {k}", "builder": "core.song_model.build_song_crnn",
                "config": config, "fold": k, "trained_on": f"the songs outside fold {k}",
                "validation": per_fold[-1], "target_scaling": scaling}))
        print(f"{out.name} fold {k}: valence r {per_fold[-1]['valence']['r']:.3f}, arousal r "
              f"{per_fold[-1]['arousal']['r']:.3f}, quadrant {per_fold[-1]['quadrant_accuracy']:.3f}", flush=True)
    crnn = {"per_fold": per_fold, **fold_summary(per_fold), "predictions": oof}
    final = [fit_song_crnn(config, training, data, np.arange(len(targets)), member_seed(seed, m))
             for m in range(members)]
    model, final_curves, scaling = final[0]
    if members > 1:
        model = average_of([f[0] for f in final], name=f"{config['name']}_ensemble")
        final_curves = {key: np.mean([f[1][key] for f in final], axis=0).tolist() for key in final_curves}
    seconds = time.time() - started

    mean_curves = {key: np.mean([c[key] for c in fold_curves], axis=0).tolist() for key in ("loss", "val_loss")}
    validation = {**crnn["mean"], "note": f"mean over the {training['folds']} cross-validation folds"}
    first_window = data["embeddings"][0, :1, :max(int(data["n_patches"][0, 0]), 1)].astype(np.float32)
    card = {
        "task": "song", "name": out.name, "builder": "core.song_model.build_song_crnn", "config": config,
        "input": {"features": "musicnn MSD embeddings of 3-s patches (core.song_features)",
                  "musicnn_model": cards.read_card(_musicnn_path())["model_file"],
                  "window_patches": _window_patches(), "max_patches": _max_patches()},
        "training": {**training, "seed": seed, "epochs_run": training["epochs"],
                     "loss": "mse on standardised targets (+ L2)",
                     "augmentation": f"random crops of {training['min_crop_patches']} to {_window_patches()} "
                                     "consecutive patches, from the app's patch grid or one shifted by half a "
                                     "patch; short songs repeat their patches",
                     "selection": "none: a fixed number of epochs for every fold and for the shipped model",
                     "seconds": round(seconds, 1), "machine": cards.machine_description()},
        "data": {"dir": str(data_dir), "n_songs": int(len(targets)), "audio": "songs/<song_id>.* (decoded as the app decodes)",
                 "content_sha256": datasets.fingerprint(song_id=data["song_id"], targets=targets),
                 "embeddings_key": data["key"]},
        "split": {"method": f"{training['folds']}-fold cross-validation, folds stratified by quadrant",
                  "seed": seed, "folds": training["folds"], "n_train": int(len(targets)), "n_val": 0,
                  "fold_song_ids": [data["song_id"][folds == k].tolist() for k in range(training["folds"])]},
        "ships": (f"one model trained on all {len(targets)} songs with the folds' recipe and epochs; the "
                  f"{training['folds']} fold models (folds/{out.name}/) give the spread of a prediction"
                  if members == 1 else
                  f"the mean of {members} CRNNs of this recipe, seeds {[member_seed(seed, m) for m in range(members)]}, "
                  f"each trained on all {len(targets)} songs, in one file; each fold's figures are the same "
                  f"mean of {members} CRNNs trained on the other folds' songs. The spread of a prediction "
                  f"comes from the single network's {training['folds']} fold models (folds/default/)"),
        "members": {"count": members, "seeds": [member_seed(seed, m) for m in range(members)],
                    "combination": "mean of the members' (valence, arousal)"},
        "fold_models": [p.name for p in fold_paths],
        "target_scaling": {**scaling, "note": "folded into the output layer: the model outputs raw values"},
        "curves": mean_curves,
        "fold_curves": fold_curves,
        "final_curves": final_curves,
        "cross_validation": {"per_fold": per_fold, "mean": crnn["mean"], "sd": crnn["sd"]},
        **({"cross_validation_single_members": {"per_member_and_fold": single_per_fold,
                                                **fold_summary(single_per_fold),
                                                "note": f"each of the {members} members alone, on each fold"}}
           if members > 1 else {}),
        "validation": validation,
        "validation_predictions": oof.round(4).tolist(),
        "validation_targets": targets.round(4).tolist(),
        "validation_song_ids": data["song_id"].tolist(),
        "baselines": {},
        "latency": _latency_ms(model, first_window),
    }
    if ablation:
        card["ablation"] = song_ablation(data_dir, data, folds, training, seed, crnn)
        card["baselines"] = {r["name"]: {"features": r["features"], "validation": r["mean"]}
                             for r in card["ablation"] if "CRNN on musicnn" not in r["name"]}
    return _save(_without_optimizer(model), out, card)


def _without_optimizer(model, name: str | None = None):
    """A copy of a trained model without its optimizer's state (Adam's two moments per weight
    would triple the file), the same weights, Normalization statistics included; renamed if asked."""
    keras = _keras()
    config = {**model.get_config(), **({"name": name} if name else {})}
    copy = keras.Model.from_config(config)  # clone_model would copy the compile state too
    copy.set_weights(model.get_weights())
    return copy


def _musicnn_path() -> Path:
    from core.musicnn import MODEL_PATH

    return MODEL_PATH


def _window_patches() -> int:
    from core.song_features import WINDOW_PATCHES

    return WINDOW_PATCHES


def _max_patches() -> int:
    from core.song_features import MAX_PATCHES

    return MAX_PATCHES


# --- face -------------------------------------------------------------------------------------

def augment_faces(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random horizontal flip, rotation (+-14 deg), zoom (+-10%) and shift (+-10%) of each face.

    pixels: (n, 48, 48) uint8 -> (n, 48, 48) float32, 0..255; edges repeat the border pixels.
    Done in NumPy/OpenCV on the CPU, beside the accelerator's training step.
    """
    import cv2

    n, height, width = pixels.shape
    out = np.empty(pixels.shape, np.float32)
    angles, zooms = rng.uniform(-14, 14, n), rng.uniform(0.9, 1.1, n)
    shifts, flips = rng.uniform(-0.1, 0.1, (n, 2)) * (width, height), rng.random(n) < 0.5
    for i in range(n):
        face = pixels[i, :, ::-1] if flips[i] else pixels[i]
        matrix = cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), angles[i], zooms[i])
        matrix[:, 2] += shifts[i]
        out[i] = cv2.warpAffine(np.ascontiguousarray(face), matrix, (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
    return out


def _face_batches(keras, pixels, labels, batch_size, seed, augment: bool):
    """Batches of (48, 48, 1) float32 faces (0..255) and one-hot labels; shuffled and augmented
    (`augment_faces`) for training."""
    onehot = np.eye(7, dtype=np.float32)

    def make_batch(idx, rng):
        faces = augment_faces(pixels[idx], rng) if augment else pixels[idx].astype(np.float32)
        return faces[..., None], onehot[labels[idx]]

    return _batches(keras, len(pixels), batch_size, seed, augment, make_batch)


def train_face(data_path: Path, out: Path, config: dict, training: dict, seed: int,
               limit: int | None = None, continue_from: Path | None = None) -> Path:
    """Train the face CNN; with `continue_from`, start from that trained model's weights and
    configuration (a warm restart: a new cosine schedule over `training["epochs"]` more epochs)."""
    keras = _keras()
    from core.face_model import build_face_cnn, with_mirror_average

    keras.utils.set_random_seed(seed)
    data = datasets.load_fer(data_path)
    train = np.flatnonzero(data.usage == datasets.FER_TRAINING)
    val = np.flatnonzero(data.usage == datasets.FER_PUBLIC_TEST)
    if limit:  # for quick checks only; the card records it
        train, val = train[:limit], val[:limit]
    steps = int(np.ceil(len(train) / training["batch_size"])) * training["epochs"]
    warmup = max(1, steps // training["epochs"])
    schedule = keras.optimizers.schedules.CosineDecay(
        training["learning_rate"] / 10, decay_steps=max(1, steps - warmup),
        warmup_target=training["learning_rate"], warmup_steps=warmup)
    source = None
    if continue_from:
        source_model, source = cards.load_model(continue_from)
        if any(layer.name == "mirror" for layer in source_model.layers):
            source_model = source_model.get_layer("face_cnn")
        config = source["config"]
    config = resolved_config(build_face_cnn, config)
    if training.get("mixed_bfloat16"):
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build_face_cnn(**config)
    if source:
        model.set_weights(source_model.get_weights())
    model.compile(keras.optimizers.Adam(schedule),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=training["label_smoothing"]),
                  metrics=["accuracy"])
    started = time.time()
    history = model.fit(
        _face_batches(keras, data.pixels[train], data.label[train], training["batch_size"], seed, True),
        validation_data=_face_batches(keras, data.pixels[val], data.label[val], 256, seed, False),
        epochs=training["epochs"], verbose=2)
    seconds = time.time() - started
    if training.get("mixed_bfloat16"):
        # Ship a float32 model: the same weights, fast on any CPU, no mixed-precision policy inside.
        keras.mixed_precision.set_global_policy("float32")
        trained, model = model, build_face_cnn(**config)
        model.set_weights([w.numpy() if hasattr(w, "numpy") else w for w in trained.get_weights()])
    single_pass = _face_validation(model, data.pixels[val], data.label[val])
    if training.get("mirror_average"):
        model = with_mirror_average(model)
    card = {
        "task": "face", "name": out.name, "builder": "core.face_model.build_face_cnn",
        "config": config,
        "training": {**training, "seed": seed, "epochs_run": training["epochs"],
                     "schedule": "cosine decay with one warm-up epoch",
                     "augmentation": "horizontal flip, rotation +-14 deg, shift +-10%, zoom +-10% (OpenCV, border repeated)",
                     "weights": "final epoch (no selection on PublicTest)",
                     "seconds": round(seconds, 1), "machine": cards.machine_description(),
                     "limit": limit},
        "data": {"file": str(data_path),
                 "content_sha256": data.fingerprint()},
        "split": {"train": "usage 0 (Training)", "validation": "usage 1 (PublicTest)",
                  "n_train": int(len(train)), "n_val": int(len(val))},
        "curves": _history(history),
    }
    if source:
        card["continued_from"] = {"file": Path(continue_from).name, "sha256": source["model_file"]["sha256"],
                                  "epochs": source["training"]["epochs_run"],
                                  "validation_accuracy": source["validation"]["accuracy"],
                                  "training": source["training"]}
        card["training"]["epochs_run"] += source["training"]["epochs_run"]
        card["training"]["seconds"] = round(card["training"]["seconds"] + source["training"]["seconds"], 1)
        card["curves"] = {k: source["curves"].get(k, []) + v for k, v in card["curves"].items()}
    return _save(model, out, _face_results(model, data.pixels[val], data.label[val], card, single_pass))


def _face_validation(model, pixels: np.ndarray, labels: np.ndarray) -> dict:
    from core.datasets import EXPRESSIONS

    x = pixels[..., None].astype(np.float32)
    probabilities = np.concatenate([model.predict_on_batch(x[i:i + 512]) for i in range(0, len(x), 512)])
    return metrics.classification_metrics(labels, probabilities, EXPRESSIONS)


def _face_results(model, pixels, labels, card: dict, single_pass: dict) -> dict:
    """The card's validation, single-pass validation and latency entries for the shipped model."""
    card["validation"] = _face_validation(model, pixels, labels)
    card["validation_single_pass"] = {"accuracy": single_pass["accuracy"], "macro_f1": single_pass["macro_f1"],
                                      "note": "the CNN alone, without the mirror average"}
    card["latency"] = _latency_ms(model, pixels[:1, ..., None].astype(np.float32))
    return card


def add_mirror_average(data_path: Path, source: Path, out: Path) -> Path:
    """Wrap a trained face CNN in the mirror average and re-score it on PublicTest; the card
    keeps the source's configuration, training and curves, and records where it came from."""
    _keras()
    from core.face_model import with_mirror_average

    model, card = cards.load_model(source)
    if any(layer.name == "mirror" for layer in model.layers):
        raise ValueError(f"{source} already averages over mirror images")
    data = datasets.load_fer(data_path)
    val = np.flatnonzero(data.usage == datasets.FER_PUBLIC_TEST)
    if card["training"].get("limit"):
        val = val[:card["training"]["limit"]]
    single_pass = _face_validation(model, data.pixels[val], data.label[val])
    card = {**card, "name": out.name,
            "training": {**card["training"], "mirror_average": True},
            "derived_from": {"file": source.name, "sha256": card["model_file"]["sha256"],
                             "step": "wrapped in core.face_model.with_mirror_average, weights unchanged"}}
    wrapped = with_mirror_average(model)
    return _save(wrapped, out, _face_results(wrapped, data.pixels[val], data.label[val], card, single_pass))


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
        path = add_mirror_average(args.data, args.mirror_average_of, args.out)
        print(json.dumps({"model": str(path), "validation": cards.read_card(path)["validation"]}, indent=1))
        return 0
    if args.zoo:
        from core.variants import ZOO

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
            path = train_song(args.data, out, run_config, {**SONG_TRAINING, **overrides}, args.seed,
                              args.cache, args.ablation, members=args.members)
        else:
            path = train_face(args.data, out, run_config, {**FACE_TRAINING, **overrides}, args.seed,
                              args.limit, args.continue_from)
        card = cards.read_card(path)
        print(json.dumps({"model": str(path), "validation": card["validation"]}, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
