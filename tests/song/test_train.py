"""Training the song model (core/song/train.py, core/song/ablation.py): a tiny training's model
and card, its ablation rows and a seed ensemble."""

import json

import pytest

from core import cards
from core.train import main as train_main
from tests.conftest import TINY_SONG_TRAINING

SONG_CARD_KEYS = {"task", "config", "training", "data", "split", "curves", "validation", "baselines",
                  "latency", "model_file", "parameters", "target_scaling"}


@pytest.mark.slow  # trains
def test_a_tiny_song_training_writes_a_model_and_a_complete_card(tiny_song_model):
    card = cards.read_card(tiny_song_model)
    assert SONG_CARD_KEYS <= set(card)
    assert card["config"]["pooling"] == "max" and card["config"]["conv_filters"] == [8]
    assert card["config"]["input_features"] == "musicnn"
    assert len(card["curves"]["loss"]) == len(card["curves"]["val_loss"]) == card["training"]["epochs_run"]
    folds = card["split"]["fold_song_ids"]
    assert len(folds) == card["split"]["folds"] == TINY_SONG_TRAINING["folds"] and sorted(sum(folds, [])) == card["validation_song_ids"]
    assert len(sum(folds, [])) == card["split"]["n_train"] == 24  # the shipped model saw every song
    assert len(card["cross_validation"]["per_fold"]) == TINY_SONG_TRAINING["folds"]
    assert set(card["cross_validation"]["sd"]["valence"]) == {"r", "r2", "ccc", "rmse"}
    assert set(card["validation"]["valence"]) == {"r", "r2", "ccc", "rmse"}
    assert card["validation"]["valence"]["r"] == pytest.approx(
        sum(f["valence"]["r"] for f in card["cross_validation"]["per_fold"]) / TINY_SONG_TRAINING["folds"], rel=1e-6)
    assert len(card["validation_predictions"]) == len(card["validation_targets"]) == 24
    assert card["model_file"]["sha256"] == cards.sha256_file(tiny_song_model)
    model, _ = cards.load_model(tiny_song_model)
    assert model.count_params() == card["parameters"]
    for name in card["fold_models"]:
        fold_model, fold_card = cards.load_model(tiny_song_model.parent / "folds" / tiny_song_model.stem / name)
        assert fold_card["config"] == card["config"]


@pytest.mark.slow  # trains (one run proves both: the seed ensemble and its ablation rows)
def test_a_seed_ensemble_ships_the_mean_of_its_members_and_its_ablation_shares_its_folds(
        tiny_music_dir, song_embedding_cache, tmp_path):
    import numpy as np

    from tests.conftest import TINY_SONG_CONFIG

    assert train_main(["song", "--data", str(tiny_music_dir), "--ablation",
                       "--cache", str(song_embedding_cache), "--out", str(tmp_path / "ensemble"), "--members", "2",
                       "--config", json.dumps(TINY_SONG_CONFIG),
                       "--training", json.dumps({**TINY_SONG_TRAINING, "epochs": 1})]) == 0
    path = tmp_path / "ensemble.keras"
    card = cards.read_card(path)
    names = [row["name"] for row in card["ablation"]]
    assert names == ["ridge on log-mel stats", "svr on log-mel stats", "ridge on musicnn embeddings",
                     "CRNN on log-mel", "CRNN on musicnn embeddings (this model's recipe)"]
    sizes = [f["n"] for f in card["cross_validation"]["per_fold"]]
    assert all([f["n"] for f in row["per_fold"]] == sizes for row in card["ablation"])
    assert card["ablation"][-1]["mean"] == card["cross_validation"]["mean"]
    assert card["members"]["count"] == 2 and card["members"]["seeds"] == [7, 1007]
    assert card["fold_models"] == [] and not (tmp_path / "folds").exists()  # the spread is the single network's
    assert len(card["cross_validation_single_members"]["per_member_and_fold"]) == 2 * TINY_SONG_TRAINING["folds"]
    model, _ = cards.load_model(path)
    members = [layer for layer in model.layers if layer.name.startswith("member_")]
    assert len(members) == 2
    x = np.random.default_rng(0).normal(size=(3, 5, 250)).astype(np.float32)
    each = [np.asarray(m(x, training=False)) for m in members]
    assert not np.allclose(each[0], each[1], atol=1e-3)  # two seeds: two different networks
    np.testing.assert_allclose(np.asarray(model(x, training=False)), np.mean(each, axis=0), rtol=0, atol=1e-6)
    assert model.count_params() == card["parameters"] == sum(m.count_params() for m in members)
