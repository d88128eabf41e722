"""Where designed variants live, and how they join the zoo's comparison.

Designed variants are kept per server, outside models/ (never mixed into the shipped zoo):
`$MOODLENS_VARIANTS_DIR/<task>/<name>.keras|.json` (default `~/.moodlens/variants`), written by
core.variants.design_worker through core.training.save_model (the typed card, core.cards.Card). They
survive a restart: the folder is read again on every page run.

Their verdicts are computed the way `python -m core.variants.verdicts song` computes the zoo's
(core.variants.verdicts.song_comparison over the cards' per-fold metrics), over the zoo and the
designed variants together, so the Holm correction counts every variant shown; the shipped cards
are never rewritten (the merged entries live in memory, on copies of the cards).
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

from core import cards
from core.errors import ModelFileError
from core.variants import verdicts
from core.variants.zoo import DEFAULT

COMPARISON = verdicts.COMPARISON


def variants_dir(task: str) -> Path:
    """This server's folder of designed variants of `task` (MOODLENS_VARIANTS_DIR, else ~/.moodlens/variants)."""
    root = os.environ.get("MOODLENS_VARIANTS_DIR") or Path.home() / ".moodlens" / "variants"
    return Path(root) / task


def model_path(task: str, name: str) -> Path:
    return variants_dir(task) / f"{name}.keras"  # not with_suffix: a name may hold a dot


def designed_cards(task: str) -> dict[str, cards.Card]:
    """{name: card} of every designed variant of `task` with its model and a readable card, by name.
    A card that does not read is left out (a half-written one from a training that was killed)."""
    found = {}
    folder = variants_dir(task)
    for path in sorted(folder.glob("*.keras")) if folder.is_dir() else []:
        try:
            found[path.name.removesuffix(".keras")] = cards.read_card(path)
        except ModelFileError:
            continue
    return found


def files_of(task: str, name: str) -> list[Path]:
    """A designed variant's files: its .keras, card and .tflite where there."""
    base = variants_dir(task) / name
    return [p for p in (Path(f"{base}.keras"), Path(f"{base}.json"), Path(f"{base}.tflite")) if p.exists()]


def delete(task: str, name: str) -> list[Path]:
    """Remove a designed variant's files -> the paths removed. Only names in the folder are touched."""
    if name not in designed_cards(task) and not files_of(task, name):
        raise ValueError(f"no designed {task} variant {name!r}")
    removed = files_of(task, name)
    for path in removed:
        path.unlink()
    return removed


def zip_bytes(task: str, name: str) -> bytes:
    """The variant's card and weights as one .zip (in memory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files_of(task, name):
            archive.write(path, f"{name}/{path.name}")
    return buffer.getvalue()


def comparable(zoo: Mapping[str, Mapping], designed: Mapping[str, Mapping]) -> tuple[dict, dict]:
    """(designed variants cross-validated on the default's folds, the others with the reason)."""
    folds = zoo[DEFAULT].get("split", {}).get("fold_song_ids")
    kept, left = {}, {}
    for name, card in designed.items():
        if card.get("split", {}).get("fold_song_ids") != folds:
            left[name] = "cross-validated on other songs or folds than the zoo's default (another data set?)"
        else:
            kept[name] = card
    return kept, left


def with_designed(task: str, zoo: Mapping[str, Mapping], designed: Mapping[str, Mapping]) -> dict[str, cards.Card]:
    """The zoo's cards and the designed variants' together, each with a comparison entry computed
    over all of them (song: verdicts.song_comparison, paired over the same 5 folds, Holm over every
    variant). Designed variants not on the default's folds are left out (see `comparable`).

    The fold-level entries are recomputed (fast: a t-test a metric and variant); the paired bootstrap
    over songs ("over_songs", for information) does not depend on the other variants, so it is kept
    from each card's own comparison entry (the zoo's cards', and the one the worker wrote into each
    designed card against the default)."""
    if task != "song" or not designed or DEFAULT not in zoo:
        return dict(zoo)
    designed, _ = comparable(zoo, designed)
    merged = {**zoo, **designed}
    light = {name: cards.Card.from_dict({k: v for k, v in card.to_dict().items() if k != "validation_predictions"})
             for name, card in merged.items()}
    comparisons = verdicts.song_comparison(light)
    default_sha = zoo[DEFAULT].get("model_file", {}).get("sha256")
    out = {}
    for name, card in merged.items():
        entry = comparisons[name]
        own = (card.get(COMPARISON) or {}).get("metrics", {})
        for key, metric in entry["metrics"].items():
            if own.get(key, {}).get("over_songs") is not None:
                metric["over_songs"] = own[key]["over_songs"]
        if name in designed:
            entry["command"] = ("the Compare page's designed variants (core.variants.design_store.with_designed): "
                                "the zoo's verdicts recomputed with them")
        entry = {**entry, "model_sha256": card.get("model_file", {}).get("sha256"), "default_sha256": default_sha}
        out[name] = cards.Card.from_dict({**card.to_dict(), COMPARISON: entry})
    return out
