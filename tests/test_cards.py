import shutil

import pytest

from core import cards
from core.errors import ModelFileError
from core.variants.zoo import model_path


def test_a_missing_model_file_is_named(tmp_path):
    with pytest.raises(ModelFileError, match="nothing.keras is missing"):
        cards.load_model(tmp_path / "nothing.keras")


def test_a_changed_model_file_fails_its_sha256_check(tmp_path):
    shipped = model_path("song", "default")
    copy = tmp_path / "copy.keras"
    shutil.copy(shipped, copy)
    shutil.copy(cards.card_path(shipped), cards.card_path(copy))
    cards.load_model(copy)  # an exact copy loads
    with open(copy, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ModelFileError, match="does not match its card"):
        cards.load_model(copy)


def test_a_corrupt_card_or_archive_is_named(tmp_path):
    copy = tmp_path / "bad.keras"
    copy.write_bytes(b"not a zip archive")
    cards.card_path(copy).write_text("{")
    with pytest.raises(ModelFileError, match="bad.json is not valid JSON"):
        cards.load_model(copy)
    cards.card_path(copy).write_text('{"task": "face", "name": "x", "model_file": {"sha256": "%s"}}' % cards.sha256_file(copy))
    with pytest.raises(ModelFileError, match="could not be read"):
        cards.load_model(copy)


@pytest.mark.parametrize("path", sorted(cards.MODELS_DIR.glob("*/*.keras")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_shipped_models_match_their_cards(path):
    model, card = cards.load_model(path)
    assert model.count_params() == card["parameters"]
    assert path.stat().st_size < 15 * 1024 * 1024
