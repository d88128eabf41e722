"""The Library page with Streamlit's AppTest: a library the server was given, filtered, a song's
neighbours, a mood path, and no file outside the library's music folder ever read."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.library import explore
from tests.conftest import ROOT
from tests.library.library_files import made_up_library

TIMEOUT_S = 60


@pytest.fixture()
def page(tmp_path, monkeypatch):
    dataset, music, outside = made_up_library(tmp_path)
    monkeypatch.setenv("MOODLENS_LIBRARY", str(dataset))
    app = AppTest.from_file(str(ROOT / "pages" / "library.py"), default_timeout=TIMEOUT_S)
    app.run()
    assert not app.exception, app.exception
    return app, explore.load_library(str(dataset))


def _shown(app) -> int:
    return int(next(m.value for m in app.markdown if "songs shown" in m.value).split("**")[1].replace(",", ""))


def test_the_page_draws_every_song_of_the_given_library(page):
    app, library = page
    assert _shown(app) == 60
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    quadrants = [t for t in spec["data"] if t["type"] == "scattergl" and t["name"].startswith("Q")]
    # Plotly sends the coordinates as typed arrays; each quadrant's name carries its count.
    assert sum(int(t["name"].split("(")[1].rstrip(")").replace(",", "")) for t in quadrants) == 60
    assert spec["layout"]["dragmode"] == "lasso"


def test_filters_narrow_the_map(page):
    app, library = page
    app.multiselect(key="lib_quadrants").set_value(["Q2"]).run()
    assert _shown(app) == len(explore.filter_songs(library, ["Q2"]))
    app.selectbox(key="lib_folder").set_value("folder 1").run()
    assert _shown(app) == len(explore.filter_songs(library, ["Q2"], folder="folder 1"))


def test_songs_like_this_and_the_mood_path_are_listed(page):
    app, library = page
    app.text_input(key="lib_search").set_value("song 010").run()
    chosen = app.selectbox(key="lib_like").options[0]  # options are shown as paths
    app.selectbox(key="lib_like").set_value(int(library.songs.index[library.songs["path"] == chosen][0])).run()
    assert not app.exception
    like = [d.value for d in app.dataframe if len(d.value) == 20]
    assert like and chosen not in set(like[0]["path"])
    app.slider(key="lib_steps").set_value(5).run()
    walk = [t for t in (d.value for d in app.dataframe) if len(t) == 5]
    assert walk and walk[0]["path"].is_unique
    expected = explore.song_list(library, explore.mood_path(library, (0.2, 0.2), (0.8, 0.8), 5))
    assert list(walk[0]["path"]) == list(expected["path"])
    assert {b.proto.label for b in app.get("download_button")} >= {"Playlist (M3U)", "List (CSV)"}


def _choose(app, library, path: str):
    app.text_input(key="lib_search").set_value(path.rsplit("/", 1)[-1]).run()
    index = int(library.songs.index[library.songs["path"] == path][0])
    app.selectbox(key="lib_like").set_value(index).run()
    assert not app.exception, app.exception
    return app.get("audio")


def test_a_song_inside_the_music_folder_plays(page):
    app, library = page
    assert len(_choose(app, library, "a/one.wav")) == 1


@pytest.mark.parametrize("path", ["../private/secret.wav", "a/link.wav"])
def test_a_path_outside_the_library_is_never_read(page, path):
    app, library = page
    assert len(_choose(app, library, path)) == 0
