"""Model cards: the JSON file that training writes beside each `.keras` file.

The card is the single source of truth for a model (configuration, split, curves, metrics), and
it holds the model file's SHA-256, which `load_model` checks before Keras reads the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

from core.errors import ModelFileError

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
# The model each task's page runs by default. Songs: the seed ensemble of the default CRNN (five
# networks of the zoo's default recipe, averaged in one file: core.train.train_song(members=5)); the
# zoo's "default" variant is the single network (core.variants.model_path). Faces: the single default
# network (the Face page runs core.face_ensemble's ensemble of zoo members).
DEFAULT_MODELS = {"song": MODELS_DIR / "song" / "ensemble.keras",
                  "face": MODELS_DIR / "face" / "default.keras"}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def write_card(model_path: Path, card: dict) -> Path:
    path = card_path(model_path)
    path.write_text(json.dumps(card, indent=1) + "\n")
    return path


def read_card(model_path: Path) -> dict:
    path = card_path(model_path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFileError(f"The model card {path} is missing: retrain with `python -m core.train`.")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"The model card {path} is not valid JSON ({e}).")


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
