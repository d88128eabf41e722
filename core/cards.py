"""Model cards: the JSON file that training writes beside each `.keras` file.

The card is the single source of truth for a model (configuration, split, curves, metrics), and
it holds the model file's SHA-256, which `load_model` checks before Keras reads the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path

from core.errors import ModelFileError

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
# "The model" of each task: what its page, `core.predict`, `core.evaluate` and the README mean by it.
# Songs: the seed ensemble of the zoo's default CRNN (one .keras file). Faces: the ensemble its card
# names (members of the face zoo, each with its mirror image; core.face.ensemble). The zoo's
# "default" variant is a single network of each (core.variants.zoo.model_path(task, "default")).
DEFAULT_MODELS = {"song": MODELS_DIR / "song" / "ensemble.keras",
                  "face": MODELS_DIR / "face" / "ensemble.json"}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


class CardError(ValueError):
    """A card that does not follow the schema (`Card`): a field missing, unknown or of the wrong type."""


@dataclasses.dataclass
class Card(Mapping):
    """The one schema of a model card, for every task and every writer.

    Typed fields are checked when a card is made from a dict (`Card.from_dict`: on every read and
    every write), so a writer cannot misspell a field or put a number where a dict belongs. Read a
    field as an attribute (`card.validation`) or as a key (`card["validation"]`); absent optional
    fields are None and are left out of the JSON."""

    task: typing.Literal["song", "face", "musicnn"]
    name: str
    created: str | None = None
    kind: typing.Literal["model", "ensemble"] | None = None       # None: one model
    builder: str | None = None                                    # "core.<task>.model.build_..."
    config: dict | None = None                                    # the builder's arguments: the variant
    parameters: int | None = None
    model_file: dict | None = None                                # {"name", "sha256", "size_bytes"}
    litert_file: dict | None = None                               # the .tflite that serves it: {"name", "sha256", "size_bytes"}
    size_bytes: int | None = None                                 # an ensemble's members together
    members: dict | list | None = None                            # a seed ensemble's (dict) or an ensemble's files (list)
    mirror_average: bool | None = None
    combination: str | None = None
    command: str | None = None
    selection: dict | None = None
    input: dict | None = None
    outputs: dict | None = None
    tags: list | None = None
    source: dict | None = None                                    # where converted weights came from
    training: dict | None = None                                  # recipe, seed, seconds, machine
    data: dict | None = None                                      # the data's file and content SHA-256
    split: dict | None = None
    ships: str | None = None
    trained_on: str | None = None
    fold: int | None = None
    fold_models: list | None = None
    target_scaling: dict | None = None
    curves: dict | None = None
    fold_curves: list | None = None
    final_curves: dict | None = None
    cross_validation: dict | None = None
    cross_validation_single_members: dict | None = None
    validation: dict | None = None                                # core.metrics.song_metrics / classification_metrics
    validation_single_pass: dict | None = None
    validation_predictions: list | None = None
    validation_targets: list | None = None
    validation_song_ids: list | None = None
    baselines: dict | None = None
    ablation: list | None = None
    latency: dict | None = None
    comparison: dict | None = None                                # core.variants.verdicts' intervals and verdicts
    continued_from: dict | None = None
    derived_from: dict | None = None

    @classmethod
    def from_dict(cls, values: Mapping, where: str = "card") -> "Card":
        """A card from parsed JSON, every field's type checked; CardError names what is wrong."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise CardError(f"{where}: unknown field(s) {unknown}; the card schema is core.cards.Card")
        for name in ("task", "name"):
            if name not in values:
                raise CardError(f"{where}: the field {name!r} is missing")
        hints = typing.get_type_hints(cls)
        for name, value in values.items():
            if value is not None and not _has_type(value, hints[name]):
                raise CardError(f"{where}: {name} is {type(value).__name__} {str(value)[:40]!r}, "
                                f"not {hints[name]}")
        return cls(**values)

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def __getitem__(self, key: str):
        value = getattr(self, key, None) if key in _FIELD_NAMES else None
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value) -> None:
        if key not in _FIELD_NAMES:
            raise CardError(f"unknown card field {key!r}; the card schema is core.cards.Card")
        setattr(self, key, value)

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(Card))


def _has_type(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, arg) for arg in typing.get_args(hint) if arg is not type(None))
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def write_card(model_path: Path, card: Mapping) -> Path:
    """Check `card` against the schema and write it beside the model as JSON."""
    path = card_path(model_path)
    checked = card if isinstance(card, Card) else Card.from_dict(card, str(path))
    Card.from_dict(checked.to_dict(), str(path))  # fields set after it was made are checked too
    path.write_text(json.dumps(checked.to_dict(), indent=1) + "\n")
    return path


def read_card(model_path: Path) -> Card:
    """The card beside a model, checked against the schema; ModelFileError if it is missing or bad."""
    path = card_path(model_path)
    try:
        return Card.from_dict(json.loads(path.read_text()), str(path))
    except FileNotFoundError:
        raise ModelFileError(f"The model card {path} is missing: retrain with `python -m core.train`.")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"The model card {path} is not valid JSON ({e}).")
    except CardError as e:
        raise ModelFileError(f"The model card does not follow the schema: {e}")


def machine_description() -> str:
    """Where a model was trained or timed: CPU, accelerator if one was used, Keras backend."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    accelerators = []
    if backend == "jax":
        import jax

        accelerators = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    return f"{platform.machine()} {platform.processor() or platform.platform()}, " \
           f"{os.cpu_count()} CPU threads" + "".join(f", {a}" for a in accelerators) + f" (Keras on {backend})"


def load_model(model_path: Path):
    """Load a `.keras` model after checking its SHA-256 against its card (Keras safe_mode on).

    Returns (model, card). Raises ModelFileError naming the file when it is missing, altered or
    unreadable.
    """
    from core.tf_runtime import import_keras

    keras = import_keras()
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelFileError(f"The model file {model_path} is missing: train it with "
                             "`python -m core.train` or restore it from git.")
    card = read_card(model_path)
    expected = card.get("model_file", {}).get("sha256")
    actual = sha256_file(model_path)
    if expected != actual:
        raise ModelFileError(f"The model file {model_path} does not match its card (SHA-256 "
                             f"{actual[:12]}… instead of {str(expected)[:12]}…): it is corrupt or "
                             "was replaced; restore it from git or retrain.")
    try:
        model = keras.models.load_model(model_path, safe_mode=True, compile=False)
    except Exception as e:  # Keras raises many types for a bad archive
        raise ModelFileError(f"The model file {model_path} could not be read ({type(e).__name__}).")
    return model, card
