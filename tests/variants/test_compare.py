"""Comparing variants (core/variants/compare.py): one result per selected variant from one decoding,
what pooling and dropout do, the table, the CLI and the rows for a CSV. The Compare page itself is
tested in tests/test_pages.py, the zoo's cards in tests/variants/test_zoo.py."""

import json

import numpy as np
import pytest

from core import plots
from core.variants import compare
from core.face.data import EXPRESSIONS
from core.face.model import build_face_cnn
from core.runner import ModelRunner
from core.song.model import build_song_crnn
from core.variants.zoo import trained_variants
from tests.conftest import music_like, wav_bytes


def test_the_table_has_one_row_a_variant_from_the_cards():
    zoo = trained_variants("face")
    rows = compare.variant_rows("face", zoo)
    assert [r["variant"] for r in rows] == list(zoo)
    assert [r["default"] for r in rows].count(True) == 1 and rows[0]["change"] == "(the default)"
    for row in rows:
        card = zoo[row["variant"]]
        assert row["accuracy"] == card["validation"]["accuracy"] and row["parameters"] == card["parameters"]
        assert row["pooling"] == card["config"]["pooling"]
    by_name = {r["variant"]: r for r in rows}
    assert by_name["pooling_average"]["change"] == "pooling: max → average"
    assert by_name["dropout_0.5"]["change"].startswith("dropout: ") and by_name["dropout_0.5"]["change"].endswith("→ 0.5")


def _tiny_song(**choices):
    return build_song_crnn(conv_filters=(4, 8), lstm_units=(4, 2), dense_units=(4,), dense_dropout=(0.2,), **choices)


def test_pooling_halves_the_sequence_and_no_pooling_keeps_it():
    shape = compare.INPUT_SHAPES["song"]  # a 30-s window: 10 patches of musicnn embeddings
    assert shape == (10, 250)
    shapes = {row["layer"]: row["output shape"] for row in compare.layer_shapes(_tiny_song(), shape)}
    assert shapes["conv1"] == (10, 4) and shapes["pool1"] == (5, 4) and shapes["pool2"] == (3, 8)
    x = np.random.default_rng(0).normal(size=(1, *shape)).astype(np.float32)
    seen = compare.pooling_activations(_tiny_song(pooling="average", pool_size=2), x)
    assert seen["type"] == "AveragePooling1D" and seen["before"].shape == (10, 4) and seen["after"].shape == (5, 4)
    np.testing.assert_allclose(seen["after"][0], seen["before"][:2].mean(axis=0), rtol=1e-5, atol=1e-6)
    assert compare.pooling_activations(_tiny_song(pooling="none"), x) is None


def test_a_strided_face_cnn_downsamples_in_its_convolution():
    model = build_face_cnn(blocks=2, filters=4, dense_units=(8,), pooling="strided")
    seen = compare.pooling_activations(model, np.full((1, 48, 48, 1), 100, np.float32))
    assert seen["type"] == "Conv2D" and seen["before"].shape == (48, 48, 4) and seen["after"].shape == (24, 24, 4)


def test_monte_carlo_dropout_spreads_only_where_there_is_dropout():
    picture = compare.PictureInput("x", None, [], np.random.default_rng(1).uniform(0, 255, (2, 48, 48, 1)).astype(np.float32))
    with_dropout = ModelRunner(build_face_cnn(blocks=2, filters=4, dense_units=(8,), dropout=0.5), {})
    without = ModelRunner(build_face_cnn(blocks=2, filters=4, dense_units=(8,), dropout=0.0, dense_dropout=0.0), {})
    results = compare.compare_faces({"with": with_dropout, "without": without}, picture, passes=10)
    assert len(results["with"]) == len(results["without"]) == 2
    assert max(results["with"][0]["mc_std"].values()) > 1e-4
    assert max(results["without"][0]["mc_std"].values()) < 1e-6
    assert sum(results["with"][1]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_a_song_through_the_variants_gives_one_result_each_from_one_decoding():
    runners = {"a": ModelRunner(_tiny_song(), {}), "b": ModelRunner(_tiny_song(pooling="average"), {})}
    song = compare.song_input(wav_bytes(music_like(50.0), 22050), "long.wav")
    results = compare.compare_song(runners, song, passes=5)
    assert list(results) == ["a", "b"]
    for name, result in results.items():
        assert len(result["windows"]) == len(song.starts_s) > 1 and result["file"] == name
        assert result["valence"] == pytest.approx(np.mean([w["valence"] for w in result["windows"]]), abs=1e-6)
        assert result["mc"]["passes"] == 5 and len(result["mc"]["points"]) == 5


def test_the_compare_cli_prints_every_variant_and_refuses_a_bad_file(tmp_path, capsys):
    song = tmp_path / "song.wav"
    song.write_bytes(wav_bytes(music_like(12.0), 22050))
    assert compare.main(["song", str(song), "--variants", "default,pooling_average", "--passes", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["results"]) == {"default", "pooling_average"} and out["passes"] == 3
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    assert compare.main(["song", str(bad), "--variants", "default,pooling_average"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad}:")
    assert compare.main(["face", str(bad), "--variants", "nonsense"]) == 2


def test_fold_models_give_a_second_labelled_spread_of_a_song():
    shape = compare.INPUT_SHAPES["song"]
    features = np.random.default_rng(2).normal(size=(3, *shape)).astype(np.float32)
    song = compare.SongInput("x", 90.0, np.array([0.0, 30.0, 60.0]), features)
    runners = {"a": ModelRunner(_tiny_song(), {}), "b": ModelRunner(_tiny_song(pooling="average"), {})}
    folds = [ModelRunner(_tiny_song(), {}) for _ in range(3)]  # differently initialised: they disagree
    results = compare.compare_song(runners, song, passes=4, fold_runners={"a": folds})
    spread = results["a"]["folds"]
    assert spread["models"] == 3 and "folds" not in results["b"]
    expected = np.array([fold(features).mean(axis=0) for fold in folds])
    np.testing.assert_allclose(spread["points"], expected, atol=1e-4)
    np.testing.assert_allclose(spread["std"], expected.std(axis=0), atol=1e-6)
    assert results["a"]["mc"]["passes"] == 4  # Monte Carlo dropout stays, as its own entry
    figure = plots.variants_mood_map(results)
    diamonds = [t for t in figure.data if t.name == "a (3 fold models)"]
    assert len(diamonds) == 1 and diamonds[0].marker.symbol == "diamond-open" and len(diamonds[0].x) == 3


def test_every_variant_s_result_becomes_rows_for_a_csv():
    song = {"a": {"valence": 0.6, "arousal": 0.4, "mood": "calm", "folds": {"std": [0.01, 0.02]}},
            "b": {"valence": 0.5, "arousal": 0.5, "mood": "happy", "mc": {"std": [0.03, 0.04]}}}
    rows = compare.song_result_rows(song)
    assert rows[0]["valence sd (fold models)"] == 0.01 and "valence sd (MC dropout)" not in rows[0]
    assert rows[1]["arousal sd (MC dropout)"] == 0.04 and "valence sd (fold models)" not in rows[1]
    probabilities = {e: 1 / 7 for e in EXPRESSIONS}
    faces_rows = compare.face_result_rows({"a": [{"label": "sad", "probabilities": probabilities}] * 2,
                                           "b": [{"label": "happy", "probabilities": probabilities}] * 2})
    assert [(r["variant"], r["face"]) for r in faces_rows] == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    assert faces_rows[2]["label"] == "happy" and faces_rows[0]["neutral"] == pytest.approx(1 / 7, abs=5e-5)  # rounded to 4 decimals
