"""Song Mood: upload songs, see each on the valence/arousal map with its spread, its path through
the song over time, and what the model hears (musicnn's tags)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import plots
from core.song import decode
from core.song import card as song_card
from core.errors import InputError
from core.text import csv_text, markdown_code
from core.song.predict import predict_song, song_rows
from webapp.navigation import use_app_navigation
from webapp.loaders import analysis_slot, default_runner, fold_runners, song_feature_workers

use_app_navigation()
st.title(":material/music_note: Song mood")
st.write(
    "Upload one or more songs. MoodLens listens to each 3-second patch with a pretrained music "
    "network (musicnn), reads each 30-second window of patches with a CRNN and places the song on "
    "Russell's mood map: **valence** (sad → happy) across, **arousal** (calm → energetic) up. The "
    "line shows how the mood moves through the song; the bars, how much the five cross-validation "
    "models disagree.")
st.caption(f"Formats: {', '.join(decode.SUPPORTED_FORMATS)} · {decode.MIN_DURATION_S:.0f} s to "
           f"{decode.MAX_DURATION_S / 60:.0f} min a song · up to 50 MB a file (long songs: use mp3 or ogg) · "
           "songs are analysed in memory and never stored.")

uploads = st.file_uploader("Songs", type=list(decode.SUPPORTED_FORMATS), accept_multiple_files=True)
recording = st.audio_input(f"Or record what is playing ({decode.MIN_RECORDING_S:.0f} s or more)",
                           sample_rate=None)  # the microphone's own rate: music, not speech at 16 kHz
st.caption("A recording hears the room too: noise, voices and the speaker change what the model hears.")
# Drawn before the models are asked for: the page is usable while they load (webapp.loaders).
runner = default_runner("song")
folds = fold_runners("song", ["default"]).get("default")
workers = song_feature_workers()
uploads = list(uploads or []) + ([recording] if recording else [])
names = {u.file_id: u.name for u in uploads}
if recording:
    names[recording.file_id] = "microphone recording"


def analyse(uploads) -> tuple[list[dict], list[tuple[str, str]]]:
    """Results for every upload, computed once per session and uploaded file (Streamlit's file_id:
    the bytes are not read again on a rerun); the results of files no longer uploaded are dropped
    (a session keeps nothing of a song once it is removed)."""
    keyed = [(u.file_id, u) for u in uploads]
    kept = st.session_state.get("song_results", {})
    done = st.session_state["song_results"] = {key: kept[key] for key, _ in keyed if key in kept}
    todo = [(key, u) for key, u in keyed if key not in done]
    progress = st.progress(0.0, text="Analysing…") if todo else None
    for i, (key, upload) in enumerate(todo):
        progress.progress(i / len(todo), text=f"Analysing {markdown_code(names[key])} ({i + 1} of {len(todo)})…")
        try:
            with analysis_slot:
                done[key] = predict_song(runner, upload.getvalue(), names[key], workers.song_features, folds)
            if recording is not None and key == recording.file_id:
                if too_short := decode.recording_too_short(done[key]["duration_s"]):
                    raise too_short
        except InputError as e:
            done[key] = {"error": str(e)}
    if progress:
        progress.empty()
    results = [done[key] for key, _ in keyed if "error" not in done[key]]
    errors = [(names[key], done[key]["error"]) for key, u in keyed if "error" in done[key]]
    return results, errors


if uploads:
    results, errors = analyse(uploads)
    for name, message in errors:
        st.error(f"{markdown_code(name)}: {message}")
    if results:
        zoom = st.toggle("Zoom to the songs", value=True, help="Off: the whole map, 0 to 1 on both axes.")
        st.plotly_chart(plots.mood_map(results, zoom=zoom), key="mood_map")
        if any(len(r["windows"]) > 1 for r in results):
            st.plotly_chart(plots.mood_over_time(results), key="mood_over_time")
        else:
            st.caption("Each of these songs is a single 30-s window, so there is no path through time to "
                       "draw: a longer song gets a window every few seconds, a line on the map and a chart "
                       "of its valence and arousal over time here.")
        table = pd.DataFrame(song_rows(results))
        st.dataframe(table, hide_index=True, column_config={
            "valence": st.column_config.NumberColumn(format="%.3f"),
            "arousal": st.column_config.NumberColumn(format="%.3f"),
            "valence sd": st.column_config.NumberColumn(format="%.3f", help="over the 5 fold models"),
            "arousal sd": st.column_config.NumberColumn(format="%.3f", help="over the 5 fold models"),
            "what the model hears": st.column_config.TextColumn(help="musicnn's top tags (Million Song Dataset)"),
            "duration_s": st.column_config.NumberColumn("duration (s)", format="%.1f")})
        # The CSV is written when the button is clicked (deferred), not on every rerun.
        st.download_button("Download the results (CSV)", lambda: csv_text(table), "moodlens_songs.csv",
                           "text/csv", on_click="ignore")
        with st.expander("Listen"):
            for upload in uploads:
                st.text(names[upload.file_id])  # text, not Markdown: a name is never markup
                st.audio(upload.getvalue())
else:
    st.session_state.pop("song_results", None)
    st.info("No song yet: upload one above (a 30-second clip or a whole song) or record what is playing. "
            "It will appear on this map.")
    st.plotly_chart(plots.mood_map([]), key="mood_map")

card = runner.card
with st.expander("About the model (from its card)", expanded=not uploads):
    st.markdown(song_card.card_summary(card))
    # Markdown tables, not dataframes: they never change, and as a dataframe one was turned into
    # Arrow again on every rerun (6% of the server's CPU time per song under load, py-spy).
    st.markdown(song_card.card_table(card))
    st.markdown(
        "**Limits.** The labels come from AllMusic editors' mood tags mapped through word norms "
        "(Warriner et al.), not from listeners' ratings; the songs are 30-s previews of mostly "
        "Western popular music. A song gets one mood per 30-s window; the song's value is the mean. "
        "Valence is harder to hear than arousal, and its errors are larger.")
