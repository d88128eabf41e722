"""The variant zoo and the Compare page: cards consistent with their models, one result per
selected variant, what pooling and dropout do, and the page for both tasks."""

import json

import cv2
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import cards, plots
from core.variants import compare
from core.face.data import EXPRESSIONS
from core.face.model import build_face_cnn
from core.runner import ModelRunner
from core.song.model import build_song_crnn
from core.training import resolved_config
from core.variants.zoo import DEFAULT, ZOO, model_path, trained_variants
from tests.conftest import ROOT, music_like, wav_bytes

BUILDERS = {"song": build_song_crnn, "face": build_face_cnn}
CARD_KEYS = {"task", "config", "training", "data", "split", "curves", "validation", "latency",
             "model_file", "parameters"}


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


def _face_photo() -> tuple[bytes, bool]:
    """(picture, whether a face is in it): a real FER face in a 640x480 frame where ../shared is
    present, else a generated picture with no face (the page then offers to score the whole picture)."""
    from tests.conftest import FER_FILE, has_shared
    from tests.test_faces import frame_with_faces

    if has_shared(FER_FILE):
        with np.load(FER_FILE) as npz:
            face = npz["pixels"][np.flatnonzero(npz["usage"] == 1)[3]]
        image, has_face = frame_with_faces(face[None], 1, side_px=200), True
    else:
        image, has_face = np.random.default_rng(0).integers(0, 256, (480, 640), dtype=np.uint8), False
    return cv2.imencode(".png", image)[1].tobytes(), has_face


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


@pytest.fixture(scope="module")
def compare_page():
    app = AppTest.from_file(str(ROOT / "pages" / "compare_variants.py"), default_timeout=300)
    app.run()
    assert not app.exception, app.exception
    return app


def test_the_compare_page_shows_the_song_zoo(compare_page):
    assert compare_page.radio[0].value.startswith("Song")
    selected = compare_page.multiselect(key="variants_song").value
    assert selected[:1] == [DEFAULT] and len(selected) == 2
    table = compare_page.dataframe[0].value
    assert len(table) == 2 and table["variant"].iloc[0] == f"★ {DEFAULT}"
    specs = [chart.proto.spec for chart in compare_page.get("plotly_chart")]
    # no parallel coordinates: each axis stretched to its own range made noise look like an effect
    assert not any("parcoords" in s for s in specs) and any("validation" in s for s in specs)
    assert any("predicted vs true" in s for s in specs)


def _forest_specs(app, task: str) -> dict[str, dict]:
    return {chart.key.removeprefix(f"forest_{task}_"): json.loads(chart.proto.spec)
            for chart in app.get("plotly_chart") if chart.key and chart.key.startswith(f"forest_{task}_")}


@pytest.mark.parametrize("task", ["song", "face"])
def test_the_compare_page_leads_with_forest_plots_and_sentences_from_the_cards(task):
    from core.variants import verdicts as variant_stats

    zoo = trained_variants(task)
    app = AppTest.from_file(str(ROOT / "pages" / "compare_variants.py"), default_timeout=300)
    app.run()
    if task == "face":
        app.radio[0].set_value("Face expression (CNN)").run()
    assert not app.exception, app.exception
    assert DEFAULT in zoo and "comparison" in zoo[DEFAULT], f"the {task} cards hold no comparison"
    specs = {spec.key: spec for spec in variant_stats.METRICS[task]}
    chosen = app.multiselect(key=f"forest_metrics_{task}").value
    forests = _forest_specs(app, task)
    assert len(chosen) >= 1 and set(forests) == {specs_key for specs_key, s in specs.items() if s.label in chosen}
    text = "\n".join(m.value for m in app.markdown)
    for key, figure in forests.items():
        spec = specs[key]
        expected = {name: card["comparison"]["metrics"][key] for name, card in zoo.items() if name != DEFAULT}
        plotted = {}
        for trace in figure["data"]:
            for i, name in enumerate(trace["y"]):
                plotted[name] = (trace["name"], trace["x"][i], trace["x"][i] - trace["error_x"]["arrayminus"][i],
                                 trace["x"][i] + trace["error_x"]["array"][i])
        assert set(plotted) == set(expected)  # every variant but the default
        for name, entry in expected.items():
            d = entry["difference"]
            assert plotted[name][0] == entry["verdict"]
            assert plotted[name][1:] == pytest.approx((d["value"] * spec.scale, d["low"] * spec.scale,
                                                      d["high"] * spec.scale))
            assert f"- {entry['sentence']}" in text
        x_range = figure["layout"]["xaxis"]["range"]
        assert x_range[0] < 0 < x_range[1]  # the zero line is in view
        assert any(shape.get("x0") == 0 and shape.get("x1") == 0 for shape in figure["layout"]["shapes"])
    # the person's own input comes right after the comparison, before the held-out charts
    order = [e.type if type(e).__name__ == "UnknownElement" else type(e).__name__ for e in app.main]  # top to bottom
    assert "FileUploader" in order and "Dataframe" in order
    assert order.index("plotly_chart") < order.index("FileUploader") < order.index("Dataframe"), order


def test_the_compare_page_runs_a_photo_through_every_selected_variant(compare_page):
    compare_page.radio[0].set_value("Face expression (CNN)").run()
    assert not compare_page.exception, compare_page.exception
    selected = compare_page.multiselect(key="variants_face").value
    assert len(compare_page.dataframe[0].value) == len(selected) >= 2
    specs = [chart.proto.spec for chart in compare_page.get("plotly_chart")]
    assert sum("PublicTest" in s or "predicted" in s for s in specs) >= len(selected)  # confusion matrices
    photo, has_face = _face_photo()
    compare_page.file_uploader[0].set_value(("face.png", photo, "image/png")).run()
    if has_face:  # the real face is found: no warning
        assert not compare_page.warning, [w.value for w in compare_page.warning]
    else:  # no face: the page says so, and a person scores the whole picture
        assert "No face was found" in compare_page.warning[0].value
        compare_page.checkbox[0].check().run()
    assert not compare_page.exception and not compare_page.error, (compare_page.exception, compare_page.error)
    specs = [chart.proto.spec for chart in compare_page.get("plotly_chart")]
    bars = [s for s in specs if '"barmode":"group"' in s.replace(" ", "")]
    assert bars, "no side-by-side probabilities"
    assert all(f'"name":"{name}"' in bars[0].replace(" ", "") for name in selected)
    assert any("block1_pool" in s for s in specs)  # activations around the first pooling layer


def test_a_corrupt_variant_is_left_out_with_a_message_naming_its_file(monkeypatch, tmp_path):
    import shutil

    folder = tmp_path / "face"
    folder.mkdir()
    for name in ("default", "pooling_average", "dropout_0.5"):
        for suffix in (".keras", ".json"):
            shutil.copy(model_path("face", name).with_suffix(suffix), folder / f"{name}{suffix}")
    corrupt = folder / "pooling_average.keras"
    corrupt.write_bytes(corrupt.read_bytes()[:1000])
    monkeypatch.setattr(cards, "MODELS_DIR", tmp_path)
    app = AppTest.from_file(str(ROOT / "pages" / "compare_variants.py"), default_timeout=300)
    app.run()
    app.radio[0].set_value("Face expression (CNN)").run()
    assert not app.exception, app.exception
    app.multiselect(key="variants_face").set_value(["default", "pooling_average", "dropout_0.5"]).run()
    assert not app.exception, app.exception
    messages = [e.value for e in app.error]
    assert any("pooling_average" in m and str(corrupt) in m for m in messages), messages
    assert len(app.dataframe[0].value) == 3  # the cards still compare; only running it is refused


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
    assert faces_rows[2]["label"] == "happy" and faces_rows[0]["neutral"] == round(1 / 7, 4)
