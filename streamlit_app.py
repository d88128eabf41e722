"""MoodLens: see emotion in music and faces. `make run` starts it."""

import streamlit as st

from webapp.loaders import warm_up_in_background
from webapp.server_setup import configure_server

configure_server()
warm_up_in_background()  # the models load while the first page draws

# An emoji favicon is drawn in the browser; a :material/…: one is fetched from fonts.gstatic.com.
st.set_page_config(page_title="MoodLens", page_icon="🎭", layout="wide")


def home() -> None:
    st.title("MoodLens")
    st.write("See emotion in music and faces, and see how a network's layer choices change what it learns.")
    st.page_link(song_page, label="**Song mood**: upload songs, see each on a valence/arousal mood "
                                  "map and the path its mood takes through the song.", icon=":material/music_note:")
    st.page_link(face_page, label="**Face expression**: take a webcam picture or upload a photo, see "
                                  "the probabilities of seven expressions for every face.", icon=":material/mood:")
    st.page_link(compare_page, label="**Compare variants**: see what a pooling or dropout choice does "
                                     "to each model, on held-out data and on your own song or photo.",
                 icon=":material/compare:")
    st.page_link(library_page, label="**Library**: your whole music library on the mood map: filter it, "
                                     "find songs like one, walk a playlist from one mood to another.",
                 icon=":material/library_music:")
    st.caption("Everything you upload is analysed in memory and never stored.")


song_page = st.Page("pages/song_mood.py", title="Song mood", icon=":material/music_note:")
face_page = st.Page("pages/face_expression.py", title="Face expression", icon=":material/mood:")
compare_page = st.Page("pages/compare_variants.py", title="Compare variants", icon=":material/compare:")
library_page = st.Page("pages/library.py", title="Library", icon=":material/library_music:")
st.navigation([st.Page(home, title="Home", icon=":material/home:", default=True),
               song_page, face_page, compare_page, library_page]).run()
