"""The song card's ablation: simpler models on the same folds as the CRNN (ridge and SVR on the
data set's log-mel statistics, ridge on the musicnn embedding statistics, the earlier log-mel CRNN),
so the card shows what the CRNN over musicnn adds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.song.data import MUSIC_FEATURES, MusicData, load_music
from core.song.crossval import cross_validated
from core.splits import stratified_split
from core.training import batches, keras_module


def _embedding_stats(embeddings: np.ndarray, n_patches: np.ndarray) -> np.ndarray:
    """Per song: mean and sd of the 200-d penultimate layer over its patches, and its 50 tags' mean
    -> (n, 450); the issue's ridge features."""
    from core.song.musicnn import PENULTIMATE_UNITS

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


def train_logmel_crnn(music: MusicData, train: np.ndarray, test: np.ndarray, training: dict,
                      seed: int) -> np.ndarray:
    """The earlier model for the ablation: the log-mel CRNN (input_features="logmel") trained on a
    fold's songs with the earlier recipe (random 430-frame crops, one frequency mask), early stopping
    on a stratified 10% of them; predicts the held-out songs' whole 30-s log-mel -> (len(test), 2)."""
    keras = keras_module()
    from core.song.model import build_song_crnn, fold_target_scaling

    keras.utils.set_random_seed(seed)
    inner_train, inner_val = stratified_split(music.quadrant[train], 0.1, seed)
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
    from core.song.model import N_MELS

    def make_batch(idx, rng):
        batch = np.empty((len(idx), crop_frames, N_MELS), np.float32)
        for k, j in enumerate(idx):
            start = rng.integers(0, max(1, min(int(n_valid[j]), x.shape[1]) - crop_frames + 1))
            batch[k] = x[j, start:start + crop_frames]
            band, width = rng.integers(0, N_MELS), rng.integers(0, 13)
            batch[k, :, band:band + width] = -80.0
        return batch, z[idx]

    return batches(keras, len(x), batch_size, seed, True, make_batch)


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
    if (Path(data_dir) / MUSIC_FEATURES).exists():
        music = load_music(data_dir)
        if not np.array_equal(music.song_id, data["song_id"]):
            raise ValueError("features_logmel.npz and annotations.csv list different songs")
        stats = _logmel_stats(music.logmel, music.n_valid_frames)
        for kind in ("ridge", "svr"):
            row(f"{kind} on log-mel stats", "per-band mean and sd of the stored log-mel (256)",
                "RidgeCV" if kind == "ridge" else "RBF SVR (C 1, epsilon 0.05)",
                cross_validated(lambda tr, te: _ridge_predictions(stats, targets, tr, te, kind), targets, folds))
    embedding_stats = _embedding_stats(data["embeddings"][0], data["n_patches"][0])
    row("ridge on musicnn embeddings", "mean and sd of the 200-d penultimate layer over the patches, "
        "mean of the 50 tags (450)", "RidgeCV",
        cross_validated(lambda tr, te: _ridge_predictions(embedding_stats, targets, tr, te), targets, folds))
    if music is not None and training.get("logmel_epochs"):
        row("CRNN on log-mel", "the stored 30-s log-mel (646 x 128 dB)",
            f"core.song.model.build_song_crnn(input_features='logmel'), at most {training['logmel_epochs']} "
            "epochs, early stopping on 10% of each fold's training songs",
            cross_validated(lambda tr, te: train_logmel_crnn(music, tr, te, training, seed), targets, folds))
    row("CRNN on musicnn embeddings (this model's recipe)", "sequence of per-patch embeddings (200-d "
        "penultimate + 50 tags)", "core.song.model.build_song_crnn (this card's config)", crnn)
    return rows
