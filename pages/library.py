"""Library: a scanned library (python -m core.library scan) on the mood map, to filter, select,
find songs like one, walk a mood path, and export a list as M3U or CSV."""

from __future__ import annotations

import os
import sys

import numpy as np
import streamlit as st

from core.library import explore
from core.library.plots import library_map
from core.text import markdown_code
from webapp.navigation import use_app_navigation

use_app_navigation()
st.title(":material/library_music: Library")
st.write("Your whole music library on the mood map: scan a folder with "
         "`python -m core.library scan DIR --out library.parquet`, then open the result here. Filter it, "
         "lasso a region, find songs like one, or walk a playlist from one mood to another.")

given = explore.library_source(sys.argv, os.environ)


@st.cache_resource(show_spinner="Loading the library…", max_entries=2)
def load_given(source: str, changed: float) -> explore.Library:
    return explore.load_library(source)


def _changed(path: str) -> float:
    try:
        return max((entry.stat().st_mtime for entry in os.scandir(path)), default=0.0) if os.path.isdir(path) \
            else os.stat(path).st_mtime
    except OSError:
        return 0.0


upload = st.file_uploader("Open a library (.parquet, one file: `python -m core.library compact`)", type=["parquet"])
try:
    if upload is not None:
        kept = st.session_state.get("library_upload")
        if kept is None or kept[0] != upload.file_id:
            kept = st.session_state["library_upload"] = (upload.file_id, explore.load_library(upload.getvalue()))
        library, source_name = kept[1], upload.name
    elif given:
        library, source_name = load_given(given, _changed(given)), given
    else:
        st.info("No library yet: upload a library.parquet above, or start the server with "
                "`streamlit run streamlit_app.py -- --library PATH` (or MOODLENS_LIBRARY=PATH).")
        st.stop()
except (OSError, ValueError) as e:
    st.error(f"This library could not be opened: {e}")
    st.stop()
if upload is None:
    st.session_state.pop("library_upload", None)
songs = library.songs
st.caption(f"{markdown_code(source_name)}: {len(songs):,} songs"
           + ("" if library.root and upload is None else " · files are not played (an uploaded library)"))

with st.sidebar:
    st.header("Filter")
    quadrants = st.multiselect("Quadrants", ["Q1", "Q2", "Q3", "Q4"], key="lib_quadrants")
    tags = st.multiselect("Any of these tags", explore.all_tags(library), key="lib_tags")
    longest = float(np.nanmax(songs["duration_s"])) if len(songs) and songs["duration_s"].notna().any() else 0.0
    duration = st.slider("Duration (s)", 0.0, max(longest, 1.0), (0.0, max(longest, 1.0)), key="lib_duration")
    folders = [""] + sorted(f for f in songs["folder"].unique() if f)
    folder = st.selectbox("Folder", folders, format_func=lambda f: f or "(all)", key="lib_folder")
shown = explore.filter_songs(library, quadrants, tags, duration if longest else None, folder)
st.write(f"**{len(shown):,}** songs shown.")


def song_list(indices, name: str, key: str) -> None:
    """A list of songs: its table and its M3U and CSV downloads (written on the click)."""
    st.dataframe(explore.song_list(library, indices[:1000]), hide_index=True, key=f"{key}_table")
    left, right = st.columns(2)
    left.download_button("Playlist (M3U)", lambda: explore.m3u_text(library, indices, name), f"{key}.m3u",
                         "audio/x-mpegurl", on_click="ignore", key=f"{key}_m3u")
    right.download_button("List (CSV)", lambda: explore.list_csv(library, indices), f"{key}.csv", "text/csv",
                          on_click="ignore", key=f"{key}_csv")


def play(index: int) -> None:
    song = songs.iloc[index]
    st.text(f"{song['path']} · {song['quadrant']} {song['mood']} · {song['tags']}")
    if upload is None and (path := explore.playable_file(library.root, song["path"])):
        st.audio(path.read_bytes())


like_tab, path_tab = st.tabs(["Selection and songs like this", "Mood path"])
with path_tab:
    st.write("A playlist that walks the map from a start to an end: the nearest song to each of evenly spaced points.")
    a, b, c, d = st.columns(4)
    start = (a.number_input("Start valence", 0.0, 1.0, 0.2, 0.05, key="lib_sv"),
             b.number_input("Start arousal", 0.0, 1.0, 0.2, 0.05, key="lib_sa"))
    end = (c.number_input("End valence", 0.0, 1.0, 0.8, 0.05, key="lib_ev"),
           d.number_input("End arousal", 0.0, 1.0, 0.8, 0.05, key="lib_ea"))
    steps = st.slider("Songs", 2, 50, 12, key="lib_steps")
    walk = explore.mood_path(library, start, end, steps, among=shown) if len(shown) else np.array([], int)
    song_list(walk, "MoodLens mood path", "mood_path")

with like_tab:
    event = st.plotly_chart(library_map(songs, shown, path=walk), key="library_map", on_select="rerun",
                            selection_mode=("lasso", "box", "points"))
    selected = explore.selected_indices(event.selection.points) if event and event.selection else np.array([], int)
    if len(selected):
        st.subheader(f"{len(selected):,} songs selected")
        play(int(selected[0]))
        song_list(selected, "MoodLens selection", "selection")
    else:
        st.caption("Lasso or click songs on the map to list them; click one to hear it.")
    st.subheader("Songs like this")
    search = st.text_input("Find a song (part of its path)", key="lib_search")
    candidates = np.concatenate([selected[:1], explore.find_songs(library, search, shown)]) if len(selected) \
        else explore.find_songs(library, search, shown)
    if len(candidates):
        # None until a song is picked: the embeddings are read only then (explore.Library).
        chosen = st.selectbox("Song", list(dict.fromkeys(candidates.tolist())), index=None, key="lib_like",
                              format_func=lambda i: songs["path"].iloc[i], placeholder="Pick a song")
        if chosen is not None:
            play(chosen)
            try:
                like = explore.songs_like(library, chosen, among=shown, k=20)
            except ValueError as e:
                st.warning(str(e))
            else:
                song_list(like, f"Songs like {songs['path'].iloc[chosen]}", "songs_like")
