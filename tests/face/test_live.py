"""core/live.py: frames' faces smoothed over time, the rolling timeline, the session's summary."""

import csv
import io
import threading

import cv2
import numpy as np
import pytest

from core.face import detect as faces
from core.face import live
from core.face.data import EXPRESSIONS
from tests.face.test_detect import frame_with_faces


def one_hot(i: int) -> np.ndarray:
    p = np.full(len(EXPRESSIONS), 0.0)
    p[i] = 1.0
    return p


def test_the_smoothing_is_the_same_in_time_whatever_the_frame_rate():
    # Ten frames at 20 fps and five at 10 fps, over the same half second, move the average as far.
    fast, slow = live.ExpressionTimeline(), live.ExpressionTimeline()
    fast.add(0.0, [one_hot(0)])
    slow.add(0.0, [one_hot(0)])
    for k in range(1, 11):
        got_fast = fast.add(k * 0.05, [one_hot(3)])
    for k in range(1, 6):
        got_slow = slow.add(k * 0.1, [one_hot(3)])
    np.testing.assert_allclose(got_fast[0], got_slow[0], atol=1e-9)
    expected_happy = 1 - np.exp(-0.5 / live.SMOOTHING_S)
    assert got_fast[0][3] == pytest.approx(expected_happy, abs=1e-9)
    assert got_fast[0].sum() == pytest.approx(1.0, rel=1e-6)


def test_a_one_frame_flicker_does_not_change_the_label():
    timeline = live.ExpressionTimeline()
    for k in range(20):
        timeline.add(k / 20, [one_hot(6)])              # neutral for a second
    flicker = timeline.add(1.0, [one_hot(0)])          # one frame of "angry"
    assert EXPRESSIONS[int(np.argmax(flicker[0]))] == "neutral"


def test_a_new_face_count_starts_the_smoothing_again():
    timeline = live.ExpressionTimeline()
    timeline.add(0.0, [one_hot(0)])
    two = timeline.add(0.05, [one_hot(3), one_hot(4)])
    np.testing.assert_allclose(two[0], one_hot(3), rtol=0, atol=1e-12)  # unsmoothed: taken as they came
    np.testing.assert_allclose(two[1], one_hot(4), rtol=0, atol=1e-12)
    assert timeline.add(0.1, []) == []


def test_the_timeline_keeps_only_the_last_window_and_the_summary_counts_time():
    timeline = live.ExpressionTimeline(window_s=30.0, smoothing_s=0.0)
    for k in range(400):                                   # 40 s at 10 fps
        timeline.add(k / 10, [one_hot(3 if k < 300 else 4)])  # happy for 30 s, then sad for 10 s
    times, probabilities = timeline.recent()
    assert times[0] >= -30.0 and times[-1] == pytest.approx(0.0, abs=1e-9) and len(times) == 301
    assert probabilities.shape == (301, len(EXPRESSIONS))
    summary = timeline.summary()
    assert summary["happy"] == pytest.approx(30 / 39.9, abs=0.01) and summary["sad"] == pytest.approx(9.9 / 39.9, abs=0.01)
    rows = list(csv.DictReader(io.StringIO(timeline.summary_csv())))
    assert [r["expression"] for r in rows] == list(EXPRESSIONS)
    assert float(rows[3]["seconds"]) == pytest.approx(30.0, abs=0.11)


def test_the_timeline_is_read_safely_while_frames_come_in():
    timeline = live.ExpressionTimeline(smoothing_s=0.1)
    stop = threading.Event()

    def frames():
        k = 0
        while not stop.is_set():
            timeline.add(k / 30, [one_hot(k % 7)])
            k += 1

    writer = threading.Thread(target=frames)
    writer.start()
    try:
        for _ in range(200):
            times, probabilities = timeline.recent()
            assert len(times) == len(probabilities)
            assert sum(timeline.summary().values()) in (0.0, pytest.approx(1.0, rel=1e-6))
    finally:
        stop.set()
        writer.join()


def test_a_frame_gets_its_faces_boxed_and_labelled_left_to_right(fer_faces):
    from core.face.detect import detect_faces

    detectable = [f for f in fer_faces[:60] if detect_faces(frame_with_faces(f[None], 1))][:2]
    assert len(detectable) == 2
    grey = frame_with_faces(np.array(detectable), 2, side_px=160)
    frame = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    calls = []

    def score(crops):
        calls.append(len(crops))
        return np.stack([one_hot(3), one_hot(5)])[:len(crops)]

    faces_live = live.LiveFaces(score, clock=iter(np.arange(0, 10, 0.05)).__next__)
    out = faces_live.process(frame)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert not np.array_equal(out, frame)                      # boxes and labels drawn on it
    drawn, faces_seen = faces_live.snapshot()
    assert calls == [2] and len(faces_seen.boxes) == 2
    assert faces_seen.boxes[0][0] < faces_seen.boxes[1][0]     # face 1 is the leftmost
    assert faces_seen.labels == ["happy", "surprise"]
    assert faces.png_bytes(drawn)[:8] == b"\x89PNG\r\n\x1a\n"
    assert faces_live.timeline.frames == 1


def test_a_frame_without_a_face_comes_back_unchanged_but_for_colour_order():
    frame = np.full((240, 320, 3), 90, np.uint8)
    frame[:, :, 0] = 30
    faces_live = live.LiveFaces(lambda crops: pytest.fail("no face to score"))
    out = faces_live.process(frame)
    np.testing.assert_array_equal(out, frame)
    assert faces_live.snapshot()[1].boxes == []


@pytest.mark.slow  # a fresh Python importing TensorFlow and streamlit-webrtc (~8 s)
def test_streamlit_webrtc_imports_after_tensorflow_without_crashing():
    # In a fresh process: TensorFlow first, as in the server, then the live video's WebRTC stack.
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import tensorflow as tf\n"
            "from webapp.live_video import import_webrtc\n"
            "webrtc = import_webrtc()\n"
            "import aiortc\n"
            "print('ok', float(tf.reduce_sum(tf.ones(2))), webrtc.WebRtcMode.SENDRECV.name)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "ok 2.0 SENDRECV" in done.stdout
