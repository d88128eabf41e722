"""The zoo (core/variants/zoo.py): each trained variant's card and file, its fold models, and the
one choice each variant changes."""

import pytest

from core import cards
from core.face.model import build_face_cnn
from core.song.model import build_song_crnn
from core.training import resolved_config
from core.variants.zoo import DEFAULT, ZOO, model_path, trained_variants


BUILDERS = {"song": build_song_crnn, "face": build_face_cnn}
CARD_KEYS = {"task", "config", "training", "data", "split", "curves", "validation", "latency",
             "model_file", "parameters"}


@pytest.mark.slow  # loads every zoo model in Keras (over 3 s)
@pytest.mark.parametrize("task", ["song", "face"])
def test_the_zoo_cards_are_complete_and_match_their_models(task):
    zoo = trained_variants(task)
    assert DEFAULT in zoo and len(zoo) >= 2, f"models/{task} holds fewer than two trained variants"
    default = zoo[DEFAULT]
    base = resolved_config(BUILDERS[task], ZOO[task][DEFAULT])
    for name, card in zoo.items():
        assert CARD_KEYS <= set(card), (name, CARD_KEYS - set(card))
        # a variant is its configuration: the default's with the zoo's one change
        assert card["config"] == resolved_config(BUILDERS[task], ZOO[task][name]), name
        assert len([k for k in base if base[k] != card["config"][k]]) == (0 if name == DEFAULT else 1), name
        # same split, seed, data and budget as the default
        assert card["split"] == default["split"] and card["data"] == default["data"], name
        for key in ("epochs", "batch_size", "learning_rate", "seed"):
            assert card["training"][key] == default["training"][key], (name, key)
        assert len(card["curves"]["loss"]) == len(card["curves"]["val_loss"]) == card["training"]["epochs_run"]
        assert card["latency"]["measured_on"] == "the machine that trained it" and card["latency"]["median_ms"] > 0
        assert card["model_file"]["size_bytes"] < 15e6
        model, _ = cards.load_model(model_path(task, name))  # checks the SHA-256 too
        assert model.count_params() == card["parameters"], name


def test_a_variants_fold_models_are_found_in_fold_order(monkeypatch, tmp_path):
    from core.variants.zoo import fold_model_paths

    folder = tmp_path / "song" / "folds" / "default"
    folder.mkdir(parents=True)
    for k in (10, 2, 0, 1):
        (folder / f"fold_{k}.keras").write_bytes(b"")
        (folder / f"fold_{k}.json").write_text("{}")
    monkeypatch.setattr(cards, "MODELS_DIR", tmp_path)
    assert [p.name for p in fold_model_paths("song", "default")] == [f"fold_{k}.keras" for k in (0, 1, 2, 10)]
    assert fold_model_paths("song", "pooling_average") == []


def test_every_zoo_variant_builds_and_differs_from_the_default_in_one_choice():
    from core.face.model import build_face_cnn
    from core.song.model import build_song_crnn
    from core.training import resolved_config
    from core.variants.zoo import DEFAULT, ZOO

    for task, builder in (("song", build_song_crnn), ("face", build_face_cnn)):
        base = resolved_config(builder, ZOO[task][DEFAULT])
        for name, change in ZOO[task].items():
            config = resolved_config(builder, change)
            assert len([k for k in config if config[k] != base[k]]) == (0 if name == DEFAULT else 1), name
            assert builder(**change).count_params() > 0
