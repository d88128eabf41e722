"""Live webcam video on the Face page, through streamlit-webrtc.

The browser sends its camera over WebRTC to this server; every frame goes through
`core.face.live.LiveFaces.process` (faces found, scored, smoothed, drawn) on streamlit-webrtc's own
thread and comes back to the browser with its boxes and labels. With `async_processing` a frame
that arrives while another is processed replaces the one waiting: frames are dropped, never queued.

No ICE (STUN/TURN) servers are configured: nothing leaves this server, and a browser on the same
machine or network connects directly. A deployment reached over the internet needs a TURN server
(streamlit-webrtc issues #1213 and #1226): pass it in `RTC_CONFIGURATION`.
"""

from __future__ import annotations

import os
import sys

import pandas as pd
import streamlit as st

from core import plots
from core.face.data import EXPRESSIONS
from core.face.detect import png_bytes
from core.face.live import LiveFaces
from webapp.streamlit_internals import served_by_a_real_server

RTC_CONFIGURATION = {"iceServers": []}
MEDIA = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}, "frameRate": {"ideal": 20}}, "audio": False}


def import_webrtc():
    """streamlit_webrtc, imported safely after TensorFlow.

    pylibsrtp (aiortc's SRTP) links its own copy of OpenSSL's crypto into its binding; once
    TensorFlow has loaded, its `srtp_init()` resolved those symbols to TensorFlow's and crashed the
    process (a segmentation fault on import: `import tensorflow, pylibsrtp`). Loading the binding
    with RTLD_DEEPBIND makes it use its own symbols first (tests/test_live.py imports it after
    TensorFlow)."""
    if "pylibsrtp" not in sys.modules:
        flags = sys.getdlopenflags()
        sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
        try:
            import pylibsrtp  # noqa: F401
        finally:
            sys.setdlopenflags(flags)
    import streamlit_webrtc

    return streamlit_webrtc


def _session_live_faces(score) -> LiveFaces:
    """This session's frames' state (its timeline survives reruns of the page, not the session)."""
    if "live_faces" not in st.session_state:
        st.session_state["live_faces"] = LiveFaces(score)
    return st.session_state["live_faces"]


def live_mode(score) -> None:
    """The live video, its rolling chart, the snapshot button and the session's summary."""
    if not served_by_a_real_server():
        st.info("Live video needs the app served by `streamlit run` (`make run`).")
        return
    import av

    webrtc = import_webrtc()
    live = _session_live_faces(score)

    def on_frame(frame: av.VideoFrame) -> av.VideoFrame:
        return av.VideoFrame.from_ndarray(live.process(frame.to_ndarray(format="bgr24")), format="bgr24")

    st.caption("Press **Start** and allow the camera. Boxes and labels follow every frame; the chart "
               "shows face 1 (the leftmost) over the last 30 s, smoothed over half a second.")
    context = webrtc.webrtc_streamer(key="live-faces", mode=webrtc.WebRtcMode.SENDRECV,
                                     rtc_configuration=RTC_CONFIGURATION,
                                     server_rtc_configuration=RTC_CONFIGURATION, media_stream_constraints=MEDIA,
                                     video_frame_callback=on_frame, async_processing=True)
    playing = bool(context.state.playing)
    # Redrawn every second on its own while the video plays (the rest of the page does not rerun);
    # idle sessions cost nothing.
    st.fragment(run_every=1.0 if playing else None)(_timeline)(live, playing)


def _timeline(live: LiveFaces, playing: bool) -> None:
    times, probabilities = live.timeline.recent()
    snapshots = st.session_state.get("live_snapshots", [])
    if not playing and not len(times):
        st.info("Start the video: the chart of the last 30 seconds fills as frames come in.")
        if not live.timeline.frames and not snapshots:
            # Nothing to chart, keep or download yet. Every run of the Face page runs this (a photo's
            # too), so an idle tab draws nothing: less CPU time a page run (docs/performance.md).
            return
    st.plotly_chart(plots.expression_timeline(times, probabilities, EXPRESSIONS), key="live_timeline")
    left, right = st.columns(2)
    if left.button("Keep this moment", icon=":material/photo_camera:", disabled=live.snapshot() is None):
        kept = live.snapshot()
        snapshots = st.session_state.setdefault("live_snapshots", [])
        snapshots.append(kept)
    summary = live.timeline.summary()
    # Written when the button is clicked (deferred), not on every run of the page.
    right.download_button("Download the session's summary (CSV)", live.timeline.summary_csv,
                          "moodlens_live_summary.csv", "text/csv", on_click="ignore",
                          disabled=live.timeline.frames == 0)
    if live.timeline.frames:
        st.dataframe(pd.DataFrame({"expression": list(summary), "share of time": list(summary.values())}),
                     hide_index=True, column_config={"share of time": st.column_config.ProgressColumn(
                         format="percent", min_value=0.0, max_value=1.0)})
    for i, (image, frame) in enumerate(reversed(snapshots)):
        n = len(snapshots) - i
        st.image(image, caption=f"Moment {n}: " + (", ".join(f"{k + 1}: {label}" for k, label in
                                                           enumerate(frame.labels)) or "no face"))
        st.download_button(f"Download moment {n} (PNG)", png_bytes(image), f"moodlens_moment_{n}.png",
                           "image/png", on_click="ignore", key=f"moment_{n}")
