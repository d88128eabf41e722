"""The variant zoo: each variant is its task's default configuration with one choice changed.

A variant is data (builder arguments), never a copied model definition; its trained model and
card live in models/<task>/<name>.keras|.json. `python -m core.train <task> --zoo` trains them all
with the default's command, split, seed and budget.
"""

from __future__ import annotations

from pathlib import Path

from core import cards

DEFAULT = "default"

# The choices the seeds discuss (../shared/seeds/): one change from the default per variant.
ZOO: dict[str, dict[str, dict]] = {
    "song": {
        DEFAULT: {},
        "pooling_average": {"pooling": "average"},
        "pooling_none": {"pooling": "none"},
        "pool_size_3": {"pool_size": 3},
        "pool_size_4": {"pool_size": 4},
        "dropout_0.0": {"dropout": 0.0},
        "dropout_0.1": {"dropout": 0.1},
        "dropout_0.5": {"dropout": 0.5},
        "spatial_dropout": {"spatial_dropout": True},
        "last_lstm": {"summary": "lstm"},  # a second LSTM's last step instead of global pooling
    },
    "face": {
        DEFAULT: {},
        "pooling_average": {"pooling": "average"},
        "pooling_strided": {"pooling": "strided"},
        "dropout_0.0": {"dropout": 0.0},
        "dropout_0.5": {"dropout": 0.5},
    },
}


def model_path(task: str, name: str) -> Path:
    return cards.MODELS_DIR / task / f"{name}.keras"


def fold_model_paths(task: str, name: str) -> list[Path]:
    """A variant's cross-validation fold models, saved by core.train beside it
    (models/<task>/folds/<name>/fold_<k>.keras), in fold order; [] when it has none."""
    folder = cards.MODELS_DIR / task / "folds" / name
    return sorted(folder.glob("fold_*.keras"), key=lambda p: int(p.stem.removeprefix("fold_")))


def trained_variants(task: str) -> dict[str, dict]:
    """Cards of the zoo's variants that have been trained, default first, by variant name."""
    found = {}
    for name in ZOO[task]:
        path = model_path(task, name)
        if path.exists() and cards.card_path(path).exists():
            found[name] = cards.read_card(path)
    return found


def what_the_page_runs(task: str) -> str:
    """Which models the task's page runs, read from its card (core.cards.DEFAULT_MODELS)."""
    card = cards.read_card(cards.DEFAULT_MODELS[task])
    if task == "song":
        return (f"the Song page runs the mean of {card['members']['count']} networks of the default's recipe "
                f"(seeds {card['members']['seeds']}, models/song/ensemble.keras), and the default's fold "
                "models for the spread")
    members = ", ".join(m["name"] for m in card["members"])
    mirror = ", each with its mirror image" if card.get("mirror_average") else ""
    return f"the Face page runs the ensemble of {members}{mirror} (models/face/ensemble.json)"
