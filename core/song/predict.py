"""A song's mood from its bytes: musicnn embeddings of 30-s windows through the song CRNN, the
path through the windows, the fold models' spread and what musicnn hears."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.metrics import QUADRANT_NAMES, quadrant
from core.runner import Scorer
from core.song import features as song_features


def song_mood(name: str, values: np.ndarray, starts_s: np.ndarray) -> dict:
    """A song's mood from its windows' (valence, arousal), shape (k, 2): their mean, its quadrant,
    and the path through the windows."""
    valence, arousal = (float(v) for v in values.mean(axis=0))
    q = int(quadrant(valence, arousal))
    return {
        "file": name, "valence": valence, "arousal": arousal, "quadrant": f"Q{q}", "mood": QUADRANT_NAMES[q],
        "windows": [{"start_s": round(float(s), 2), "valence": float(v), "arousal": float(a)}
                    for s, (v, a) in zip(starts_s, values)],
    }


def fold_spread(fold_windows: list[np.ndarray]) -> dict:
    """The fold models' predictions of one song, each (windows, 2) -> {"models", "points" (each
    model's song mean), "std" (their sd, valence and arousal)}: how much the song's mood depends on
    which songs the model was trained on."""
    means = np.array([w.mean(axis=0) for w in fold_windows])
    return {"models": int(len(means)), "points": means.round(4).tolist(), "std": means.std(axis=0).tolist()}


def predict_song(runner: Scorer, data: bytes, name: str = "",
                 features: Callable[[bytes], tuple] = song_features.song_features,
                 fold_runners: list | None = None) -> dict:
    """Bytes of a song -> its mood: mean over 30-s windows of musicnn patch embeddings, the path
    through the windows, and the song's top musicnn tags ("what the model hears"); with
    `fold_runners` (the model's cross-validation fold models), their spread as "folds".

    features: `song_features.song_features`, or what computes the same elsewhere (the app: in a
    worker process, `core.workers`)."""
    duration_s, starts_s, x = features(data)
    result = {**song_mood(name, runner(x), starts_s), "duration_s": round(duration_s, 2),
              "tags": song_features.song_tags(x)}
    if fold_runners:
        result["folds"] = fold_spread([fold(x) for fold in fold_runners])
    return result


def song_rows(results: list[dict]) -> list[dict]:
    """One table row per song result: its mood, the fold models' sd (None without them) and the
    top musicnn tags as text."""
    return [{**{k: r[k] for k in ("file", "valence", "arousal", "quadrant", "mood", "duration_s")},
             "valence sd": r["folds"]["std"][0] if "folds" in r else None,
             "arousal sd": r["folds"]["std"][1] if "folds" in r else None,
             "what the model hears": song_features.tags_text(r["tags"])} for r in results]
