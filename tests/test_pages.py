"""Page tests with Streamlit's AppTest: upload as a person would, find what they should see."""

import json
import sys

import cv2
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import cards
from core.variants.zoo import DEFAULT, model_path, trained_variants
from tests.conftest import ROOT, music_like, wav_bytes

TIMEOUT_S = 180


def _page(path: str) -> AppTest:
    app = AppTest.from_file(str(ROOT / path), default_timeout=TIMEOUT_S)
    app.run()
    assert not app.exception, app.exception
    return app


def _charts(app: AppTest) -> list:
    return app.get("plotly_chart")


def test_home_page_links_to_every_page():
    app = _page("streamlit_app.py")
    assert "MoodLens" in app.title[0].value
    links = [el.proto.label for el in app.get("page_link")]
    assert any("Song mood" in label for label in links) and any("Face expression" in label for label in links)


@pytest.fixture(scope="module")
def song_page():
    return _page("pages/song_mood.py")


def test_song_page_shows_the_empty_mood_map_before_any_song():

    app = _page("pages/song_mood.py")
    assert "No song yet" in app.info[0].value
    spec = json.loads(_charts(app)[0].proto.spec)
    assert spec["data"] == [] and "Mood map" in spec["layout"]["title"]["text"]
    assert len(spec["layout"]["annotations"]) == 4  # the quadrants' names
    card = cards.read_card(cards.DEFAULT_MODELS["song"])
    table = next(m.value for m in app.markdown if "| this model |" in m.value)  # About the model
    mean, sd = card["cross_validation"]["mean"], card["cross_validation"]["sd"]
    assert (f"| this model | {mean['valence']['r']:.3f} ± {sd['valence']['r']:.3f} | "
            f"{mean['arousal']['r']:.3f} ± {sd['arousal']['r']:.3f} |") in table
    assert all(f"| {row['name']} (ablation) |" in table for row in card["ablation"] if "recipe" not in row["name"])


def test_song_page_maps_an_uploaded_clip_and_lists_it(song_page, real_clip):
    name, data = real_clip
    song_page.file_uploader[0].set_value((name, data, "audio/mpeg")).run()
    assert not song_page.exception and not song_page.error
    chart = _charts(song_page)[0]
    assert name in chart.proto.spec  # the song's labelled point on the mood map
    assert "valence" in chart.proto.spec
    table = song_page.dataframe[0].value
    assert table["file"].tolist() == [name] and 0 <= table["valence"][0] <= 1
    assert table["valence sd"][0] > 0  # the 5 fold models' spread
    result = next(iter(song_page.session_state["song_results"].values()))
    assert table["what the model hears"][0].startswith(result["tags"][0]["tag"])
    # One 30-s window: no chart over time, a line that says why.
    assert len(_charts(song_page)) == 1 and any("single 30-s window" in c.value for c in song_page.caption)
    zoomed = json.loads(chart.proto.spec)["layout"]["xaxis"]["range"]
    assert zoomed[0] <= result["valence"] <= zoomed[1] and zoomed[0] <= 0.5 <= zoomed[1]
    song_page.toggle[0].set_value(False).run()  # the whole map, one click away
    assert json.loads(_charts(song_page)[0].proto.spec)["layout"]["xaxis"]["range"] == [0, 1]


def test_a_song_of_several_windows_gets_its_valence_and_arousal_over_time(song_page):
    from tests.conftest import music_like

    song_page.file_uploader[0].set_value(("long.wav", wav_bytes(music_like(50.0, seed=5), 22050), "audio/wav")).run()
    assert not song_page.exception and not song_page.error
    over_time = json.loads(_charts(song_page)[1].proto.spec)
    assert [t["name"] for t in over_time["data"]] == ["long.wav: valence", "long.wav: arousal"]
    assert len(over_time["data"][0]["x"]) > 1  # a point a window
    assert not any("single 30-s window" in c.value for c in song_page.caption)


def test_song_page_explains_a_bad_file_and_still_maps_the_good_one(song_page):
    good = wav_bytes(np.sin(np.arange(22050 * 5) / 7).astype(np.float32) * 0.3, 22050)
    song_page.file_uploader[0].set_value([("notes.mp3", b"not a song at all" * 10, "audio/mpeg"),
                                          ("tone.wav", good, "audio/wav")]).run()
    assert not song_page.exception
    assert "notes.mp3" in song_page.error[0].value and "could not be read as audio" in song_page.error[0].value
    assert song_page.dataframe[0].value["file"].tolist() == ["tone.wav"]


def test_song_page_forgets_the_results_of_removed_songs(song_page):
    tone = wav_bytes(np.sin(np.arange(22050 * 4) / 9).astype(np.float32) * 0.3, 22050)
    other = wav_bytes(np.sin(np.arange(22050 * 4) / 5).astype(np.float32) * 0.3, 22050)
    song_page.file_uploader[0].set_value([("tone.wav", tone, "audio/wav")]).run()
    assert [r["file"] for r in song_page.session_state["song_results"].values()] == ["tone.wav"]
    song_page.file_uploader[0].set_value([("other.wav", other, "audio/wav")]).run()
    assert [r["file"] for r in song_page.session_state["song_results"].values()] == ["other.wav"]
    song_page.file_uploader[0].set_value([]).run()
    assert not song_page.exception and "song_results" not in song_page.session_state


@pytest.fixture(scope="module")
def face_page():
    return _page("pages/face_expression.py")


def test_face_page_shows_probabilities_for_a_photo(face_page, fer_faces):
    canvas = np.full((480, 640), 128, np.uint8)
    from core.face import detect as faces
    face = next(f for f in fer_faces if faces.detect_faces(
        cv2.copyMakeBorder(cv2.resize(f, (160, 160)), 100, 100, 100, 100, cv2.BORDER_CONSTANT, value=128)))
    canvas[100:260, 200:360] = cv2.resize(face, (160, 160))
    photo = cv2.imencode(".png", canvas)[1].tobytes()
    face_page.file_uploader[0].set_value(("me.png", photo, "image/png")).run()
    assert not face_page.exception and not face_page.error
    # The bars are this face's probabilities from the page's ensemble (core.predict on the same bytes),
    # in the order of the seven expressions, and the title names the top one.
    from core.face.served import FaceEnsemble
    from core.face.predict import predict_faces

    expected = predict_faces(FaceEnsemble.load(), photo)["faces"]  # the ensemble its card names
    assert len(expected) == 1
    specs = [json.loads(c.proto.spec) for c in _charts(face_page)]
    bars = [s for s in specs if s["layout"].get("title", {}).get("text", "").startswith("Face 1")]
    assert len(bars) == 1
    assert bars[0]["layout"]["title"]["text"] == f"Face 1: {expected[0]['label']}"
    assert bars[0]["data"][0]["y"] == list(expected[0]["probabilities"])
    np.testing.assert_allclose(bars[0]["data"][0]["x"], list(expected[0]["probabilities"].values()), atol=1e-4)
    assert "1 face found, numbered left to right" in face_page.get("image")[0].proto.imgs[0].caption
    labels = [b.proto.label for b in face_page.get("download_button")]
    assert labels == ["Faces (CSV)", "Faces (JSON)", "Picture (PNG)"]


def _photo_with_a_face(fer_faces) -> bytes:
    """A real FER face the detector finds, 160 px in a grey 640x480 picture."""
    from core.face import detect as faces

    canvas = np.full((480, 640), 128, np.uint8)
    face = next(f for f in fer_faces if faces.detect_faces(
        cv2.copyMakeBorder(cv2.resize(f, (160, 160)), 100, 100, 100, 100, cv2.BORDER_CONSTANT, value=128)))
    canvas[100:260, 200:360] = cv2.resize(face, (160, 160))
    return cv2.imencode(".png", canvas)[1].tobytes()


def _images(app: AppTest) -> list:
    return [img for element in app.get("image") for img in element.proto.imgs]


def test_face_page_shows_where_the_model_looked_only_when_asked(monkeypatch, fer_faces):
    from core.face import saliency

    made = []
    overlay = saliency.picture_face_overlay
    monkeypatch.setattr(saliency, "picture_face_overlay", lambda *a: made.append(a[2:]) or overlay(*a))
    app = _page("pages/face_expression.py")
    app.file_uploader[0].set_value(("me.png", _photo_with_a_face(fer_faces), "image/png")).run()
    assert not app.exception and not app.error
    assert len(_images(app)) == 1 and not made  # the picture only; no map made
    assert app.toggle(key="looked_0").value is False
    app.toggle(key="looked_0").set_value(True).run()
    assert not app.exception, app.exception
    face = next(iter(app.session_state["face_results"]["by_choice"].values()))["faces"][0]
    assert made == [(face["box"], face["label"])]  # made for this face and its label
    images = _images(app)
    assert len(images) == 2 and images[1].url  # the picture and the map
    assert f"where the models looked for '{face['label']}'" in images[1].caption
    app.run()  # a rerun shows the kept map; it is not made again
    assert len(made) == 1 and len(_images(app)) == 2
    app.toggle(key="looked_0").set_value(False).run()
    assert len(_images(app)) == 1


def test_face_page_card_names_the_ensembles_members():
    from core.face import ensemble as face_ensemble

    app = _page("pages/face_expression.py")
    card = json.loads(face_ensemble.ENSEMBLE_CARD.read_text())
    text = next(m.value for m in app.markdown if "CNNs of the variant zoo" in m.value)
    assert all(member["name"] in text for member in card["members"])
    assert f"accuracy {card['validation']['accuracy']:.1%}" in text


@pytest.mark.slow  # a Grad-CAM of every face variant: ~10 s on a loaded 2-core machine (the Face page's map stays fast)
def test_compare_page_shows_where_each_variant_looks_when_asked(fer_faces):
    app = AppTest.from_file(str(ROOT / "pages" / "compare_variants.py"), default_timeout=300)
    app.run()
    app.radio[0].set_value("Face expression (CNN)").run()
    selected = app.multiselect(key="variants_face").value
    app.file_uploader(key="upload_face").set_value(("me.png", _photo_with_a_face(fer_faces), "image/png")).run()
    assert not app.exception and not app.error, (app.exception, app.error)
    assert len(_images(app)) == 1  # the picture only
    app.toggle(key="variant_looks_0").set_value(True).run()
    assert not app.exception, app.exception
    images = _images(app)
    assert len(images) == 1 + len(selected)
    labels = {name: r[0]["label"] for name, r in app.session_state["compare_result"]["results"].items()}
    assert [i.caption for i in images[1:]] == [f"{name}: {labels[name]}" for name in selected]


def test_face_page_without_a_face_offers_the_whole_picture(face_page):
    blank = cv2.imencode(".jpg", np.full((200, 200, 3), 180, np.uint8))[1].tobytes()
    face_page.file_uploader[0].set_value(("wall.jpg", blank, "image/jpeg")).run()
    assert "No face was found" in face_page.warning[0].value
    face_page.checkbox[0].check().run()
    assert any("Face 1" in c.proto.spec for c in _charts(face_page))
    assert any("scored as if it were a face" in w.value for w in face_page.warning)


def test_face_page_detects_a_picture_once_however_often_the_page_reruns(monkeypatch):
    from core.face import detect as faces

    detected = []
    detect = faces.detect_faces
    monkeypatch.setattr(faces, "detect_faces", lambda image: detected.append(1) or detect(image))
    app = _page("pages/face_expression.py")
    card_chart = [c for c in _charts(app) if "PublicTest confusion" in c.proto.spec]
    assert card_chart, "the model's card is open, with its chart, before any picture"
    wall = cv2.imencode(".jpg", np.full((200, 200, 3), 180, np.uint8))[1].tobytes()
    app.file_uploader[0].set_value(("wall.jpg", wall, "image/jpeg")).run()
    assert len(detected) == 1 and "No face was found" in app.warning[0].value
    # The card closes once there is a picture, and is not filled while closed.
    assert not [c for c in _charts(app) if "PublicTest confusion" in c.proto.spec]
    app.checkbox[0].check().run()    # the whole picture as one face
    app.checkbox[0].uncheck().run()
    app.checkbox[0].check().run()
    app.session_state["face_card"] = True  # the person opens the card
    app.run()
    assert not app.exception and len(detected) == 1, "the picture was detected again on a rerun"
    assert [c for c in _charts(app) if "PublicTest confusion" in c.proto.spec]
    assert any("Face 1" in c.proto.spec for c in _charts(app))
    app.file_uploader[0].set_value(None).run()
    assert "face_results" not in app.session_state  # nothing kept of a picture once it is gone


def test_face_page_explains_a_file_that_is_not_an_image(face_page):
    face_page.file_uploader[0].set_value(("cat.png", b"meow" * 100, "image/png")).run()
    assert not face_page.exception
    assert "not an image" in face_page.error[0].value


def test_a_missing_model_file_gives_a_clear_message_naming_it(monkeypatch, tmp_path):
    monkeypatch.setitem(cards.DEFAULT_MODELS, "song", tmp_path / "gone.keras")
    app = _page("pages/song_mood.py")
    assert "gone.keras is missing" in app.error[0].value
    assert not app.get("plotly_chart")


def test_song_workers_that_cannot_start_give_a_clear_message(monkeypatch):
    from webapp import loaders as loaded_models

    monkeypatch.setattr(sys, "executable", "/bin/false")  # every worker exits as it starts
    loaded_models._song_feature_workers.clear()
    try:
        app = _page("pages/song_mood.py")
        assert "Songs cannot be analysed on this server" in app.error[0].value
        assert "exit status 1" in app.error[0].value
        # The inputs are drawn before the workers are asked for (a first page in seconds); the page
        # stops at the message: no map, no analysis.
        assert not app.get("plotly_chart") and not app.info
    finally:
        loaded_models._song_feature_workers.clear()  # the next page starts real workers


def test_face_page_decodes_a_picture_once_in_a_worker_and_a_refused_one_once(monkeypatch):
    from core.face.workers import PictureWorkers

    decoded = []
    decode = PictureWorkers.decode_image
    monkeypatch.setattr(PictureWorkers, "decode_image", lambda self, data: decoded.append(len(data)) or decode(self, data))
    app = _page("pages/face_expression.py")
    wall = cv2.imencode(".jpg", np.full((200, 200, 3), 180, np.uint8))[1].tobytes()
    app.file_uploader[0].set_value(("wall.jpg", wall, "image/jpeg")).run()
    app.checkbox[0].check().run()  # the whole picture as one face: scored again, not decoded again
    app.session_state["face_card"] = True
    app.run()
    assert not app.exception and decoded == [len(wall)]
    strip = cv2.imencode(".png", np.full((130000, 48), 90, np.uint8))[1].tobytes()  # refused in the worker
    app.file_uploader[0].set_value(("strip.png", strip, "image/png")).run()
    app.run()
    app.run()
    assert not app.exception and decoded == [len(wall), len(strip)], "a refused picture was decoded again"
    assert app.error[0].value.startswith("` strip.png `: The picture is 48x130000 pixels: too long and narrow")


def test_a_picture_whose_run_stops_mid_decode_is_decoded_again_on_the_next_run(monkeypatch):
    """A person who changes something while a picture decodes reruns the page: Streamlit stops the
    running script at its next yield point (StopException, raised here by the first decode). The next
    run must decode the picture again, not trust a half-kept result (it once raised KeyError)."""
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    from core.face.workers import PictureWorkers

    decode, calls = PictureWorkers.decode_image, []

    def stopped_once(self, data):
        calls.append(len(data))
        if len(calls) == 1:
            raise StopException()
        return decode(self, data)

    monkeypatch.setattr(PictureWorkers, "decode_image", stopped_once)
    app = _page("pages/face_expression.py")
    wall = cv2.imencode(".jpg", np.full((200, 200, 3), 180, np.uint8))[1].tobytes()
    app.file_uploader[0].set_value(("wall.jpg", wall, "image/jpeg")).run()
    app.run()
    assert not app.exception, app.exception
    assert calls == [len(wall), len(wall)]
    assert any("No face was found" in w.value for w in app.warning)


@pytest.mark.slow  # runs the Compare page's every panel (over 3 s)
def test_compare_page_decodes_a_picture_once_however_the_choices_change(monkeypatch):
    from core.face.workers import PictureWorkers

    decoded = []
    decode = PictureWorkers.decode_image
    monkeypatch.setattr(PictureWorkers, "decode_image", lambda self, data: decoded.append(len(data)) or decode(self, data))
    app = AppTest.from_file(str(ROOT / "pages" / "compare_variants.py"), default_timeout=300)
    app.run()
    app.radio[0].set_value("Face expression (CNN)").run()
    wall = cv2.imencode(".jpg", np.full((200, 200, 3), 180, np.uint8))[1].tobytes()
    app.file_uploader(key="upload_face").set_value(("wall.jpg", wall, "image/jpeg")).run()
    app.checkbox[0].check().run()  # the whole picture as one face
    app.slider(key="passes_face").set_value(5).run()  # another N: the variants run again
    assert not app.exception and not app.error, (app.exception, app.error)
    assert decoded == [len(wall)], "the picture was decoded again"
    strip = cv2.imencode(".png", np.full((130000, 48), 90, np.uint8))[1].tobytes()
    app.file_uploader(key="upload_face").set_value(("**strip**.png", strip, "image/png")).run()
    app.slider(key="passes_face").set_value(10).run()
    assert decoded == [len(wall), len(strip)], "a refused picture was decoded again"
    assert app.error[0].value.startswith("` **strip**.png `: The picture is 48x130000 pixels")


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
    from core.metrics import compared_metrics

    zoo = trained_variants(task)
    app = AppTest.from_file(str(ROOT / "pages" / "compare_variants.py"), default_timeout=300)
    app.run()
    if task == "face":
        app.radio[0].set_value("Face expression (CNN)").run()
    assert not app.exception, app.exception
    assert DEFAULT in zoo and "comparison" in zoo[DEFAULT], f"the {task} cards hold no comparison"
    specs = {spec.key: spec for spec in compared_metrics(task)}
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
                                                      d["high"] * spec.scale), rel=1e-6)
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


def _face_photo() -> tuple[bytes, bool]:
    """(picture, whether a face is in it): a real FER face in a 640x480 frame where ../shared is
    present, else a generated picture with no face (the page then offers to score the whole picture)."""
    from tests.conftest import FER_FILE, has_shared
    from tests.face.test_detect import frame_with_faces

    if has_shared(FER_FILE):
        with np.load(FER_FILE) as npz:
            face = npz["pixels"][np.flatnonzero(npz["usage"] == 1)[3]]
        image, has_face = frame_with_faces(face[None], 1, side_px=200), True
    else:
        image, has_face = np.random.default_rng(0).integers(0, 256, (480, 640), dtype=np.uint8), False
    return cv2.imencode(".png", image)[1].tobytes(), has_face
