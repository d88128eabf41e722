"""The Library page's logic (core.library.explore) on a made-up library: filters, songs like
this, the mood path, exports, and which files may be played."""

import numpy as np
import pytest

from core.library import explore, store
from tests.library.library_files import made_up_library


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    dataset, music, outside = made_up_library(tmp_path_factory.mktemp("explore"))
    return explore.load_library(str(dataset))


def test_a_dataset_folder_loads_with_its_music_folder(library):
    assert len(library.songs) == 60 and library.root.endswith("music")
    assert library.embeddings.shape == (60, 250)
    assert np.allclose(np.linalg.norm(library.embeddings, axis=1), 1, atol=1e-5)


def test_a_rescored_file_shows_once_with_its_latest_row(tmp_path):
    dataset, _, _ = made_up_library(tmp_path, n=10)
    rows = store.read_songs(str(dataset)).to_pylist()
    newer = {**rows[0], "valence": 0.99, "scored_at": rows[0]["scored_at"].replace(year=2100)}
    store.LibraryStore(str(dataset)).commit([newer], [])
    library = explore.load_library(str(dataset))
    assert len(library.songs) == 10
    assert library.songs.set_index("path").loc[rows[0]["path"], "valence"] == pytest.approx(0.99)
    assert library.embeddings.shape == (10, 250)


def test_filters_combine(library):
    songs = library.songs
    shown = explore.filter_songs(library, ["Q1", "Q3"], None, (0, 200), "folder 1")
    assert len(shown) and set(songs["quadrant"].iloc[shown]) <= {"Q1", "Q3"}
    assert (songs["duration_s"].iloc[shown] <= 200).all() and (songs["folder"].iloc[shown] == "folder 1").all()
    tag = explore.all_tags(library)[0]
    assert all(tag in t.split(", ") for t in songs["tags"].iloc[explore.filter_songs(library, tags=[tag])])


def test_songs_like_this_are_the_nearest_by_cosine(library):
    like = explore.songs_like(library, 10, k=5)
    assert 10 not in like and len(like) == 5
    similarity = library.embeddings @ library.embeddings[10]
    similarity[10] = -np.inf
    assert list(like) == list(np.argsort(-similarity)[:5])


def test_the_mood_path_walks_from_start_to_end_without_repeats(library):
    walk = explore.mood_path(library, (0.1, 0.1), (0.9, 0.9), steps=8)
    assert len(walk) == 8 and len(set(walk)) == 8
    points = library.songs[["valence", "arousal"]].to_numpy()[walk]
    assert points[0].sum() < points[-1].sum()  # it starts low and ends high
    assert walk[0] == explore.nearest_song(library, 0.1, 0.1)


def test_m3u_lists_each_song_with_its_place_in_the_music_folder(library):
    text = explore.m3u_text(library, [0, 1], "calm\nthen #EXTM3U")
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and lines[1] == "#PLAYLIST:calm then #EXTM3U"
    assert lines[2].startswith("#EXTINF:") and lines[3] == f"{library.root}/a/one.wav"
    assert lines[5] == f"{library.root}/a/two.wav" and len(lines) == 6


def test_csv_cells_cannot_be_formulas(library):
    library.songs.loc[5, "path"] = "=HYPERLINK(1)"
    assert "'=HYPERLINK(1)" in explore.list_csv(library, [5])


def test_only_files_inside_the_music_folder_can_be_played(library):
    root = library.root
    assert explore.playable_file(root, "a/one.wav") is not None
    for path in ("../private/secret.wav", f"{root}/../private/secret.wav", "/etc/passwd", "a/link.wav", "", "a",
                 "a/missing.wav"):
        assert explore.playable_file(root, path) is None, path
    assert explore.playable_file(None, "a/one.wav") is None  # an upload's rows are never read
    assert explore.playable_file("s3://bucket/music", "a/one.wav") is None


def test_the_server_names_its_library_by_argument_or_environment():
    assert explore.library_source(["app.py", "--library", "/x/lib"], {}) == "/x/lib"
    assert explore.library_source(["--library=/y"], {"MOODLENS_LIBRARY": "/z"}) == "/y"
    assert explore.library_source([], {"MOODLENS_LIBRARY": "/z"}) == "/z"
    assert explore.library_source([], {}) is None


def test_a_chart_selection_names_library_rows():
    points = [{"customdata": ["7", "a", "b"]}, {"customdata": [3, "c", "d"]}, {"customdata": ["7", "a", "b"]}]
    assert list(explore.selected_indices(points)) == [7, 3]


def test_an_uploaded_file_loads_without_a_music_folder(tmp_path):
    dataset, _, _ = made_up_library(tmp_path, n=12)
    store.compact(str(dataset), str(tmp_path / "one.parquet"))
    library = explore.load_library((tmp_path / "one.parquet").read_bytes())
    assert len(library.songs) == 12 and library.root is None and library.embeddings.shape == (12, 250)


def test_a_parquet_that_is_not_a_library_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="not a MoodLens library"):
        explore.load_library((tmp_path / "other.parquet").read_bytes())
