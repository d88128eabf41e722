"""Live video: every frame's faces scored, their probabilities smoothed over frames, a rolling
timeline of the last seconds, and a summary of the whole session.

`LiveFaces.process(image_bgr)` is what a video frame goes through (the Face page's live mode and
bench/live_fps.py call the same function): faces found, scored, smoothed, drawn; the timeline is
read from another thread (the page's chart) while frames come in, so it is guarded by a lock.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.face import detect
from core.face.data import EXPRESSIONS
from core.text import csv_text

WINDOW_S = 30.0          # the rolling chart's span
SMOOTHING_S = 0.5        # time constant of the exponential smoothing over frames
MAX_FACES = 8            # faces scored per frame, largest first


def smoothing_weight(dt_s: float, tau_s: float = SMOOTHING_S) -> float:
    """Weight of a new frame in an exponential moving average with time constant `tau_s`, for a
    frame `dt_s` after the last: the same smoothing in time whatever the frame rate."""
    if tau_s <= 0:
        return 1.0
    return 1.0 - math.exp(-max(dt_s, 0.0) / tau_s)


@dataclass
class FrameFaces:
    """One frame's faces, left to right: boxes (x, y, w, h) and smoothed (7,) probabilities."""
    t_s: float
    boxes: list[tuple[int, int, int, int]]
    probabilities: list[np.ndarray]

    @property
    def labels(self) -> list[str]:
        return [EXPRESSIONS[int(np.argmax(p))] for p in self.probabilities]


class ExpressionTimeline:
    """Smoothed probabilities per face over time. Faces are matched between frames by their order
    left to right; when the number of faces changes, smoothing starts again. The timeline and the
    summary follow face 1 (the leftmost)."""

    def __init__(self, window_s: float = WINDOW_S, smoothing_s: float = SMOOTHING_S):
        self.window_s, self.smoothing_s = window_s, smoothing_s
        self._lock = threading.Lock()
        self._smoothed: list[np.ndarray] = []
        self._last_t: float | None = None
        self._recent: deque[tuple[float, np.ndarray]] = deque()
        self._seconds_as = np.zeros(len(EXPRESSIONS))   # seconds face 1 showed each expression
        self._frames = 0

    def add(self, t_s: float, probabilities: list[np.ndarray]) -> list[np.ndarray]:
        """A frame at time `t_s` with each face's raw (7,) probabilities (left to right) -> smoothed."""
        with self._lock:
            dt = 0.0 if self._last_t is None else t_s - self._last_t
            if len(probabilities) != len(self._smoothed):
                self._smoothed = [np.asarray(p, np.float64) for p in probabilities]
            else:
                w = smoothing_weight(dt, self.smoothing_s)
                self._smoothed = [(1 - w) * s + w * np.asarray(p, np.float64)
                                  for s, p in zip(self._smoothed, probabilities)]
            if self._smoothed:
                first = self._smoothed[0]
                if self._last_t is not None and self._recent:
                    self._seconds_as[int(np.argmax(self._recent[-1][1]))] += max(dt, 0.0)
                self._recent.append((t_s, first.copy()))
            while self._recent and self._recent[0][0] < t_s - self.window_s:
                self._recent.popleft()
            self._last_t = t_s
            self._frames += 1
            return [s.copy() for s in self._smoothed]

    def recent(self) -> tuple[np.ndarray, np.ndarray]:
        """Face 1 over the last `window_s`: (times in s, relative to now, (n,) ; probabilities (n, 7))."""
        with self._lock:
            if not self._recent:
                return np.zeros(0), np.zeros((0, len(EXPRESSIONS)))
            times = np.array([t for t, _ in self._recent])
            return times - self._last_t, np.stack([p for _, p in self._recent])

    def summary(self) -> dict[str, float]:
        """Share of the session's time face 1 showed each expression (its top smoothed one)."""
        with self._lock:
            total = self._seconds_as.sum()
            shares = self._seconds_as / total if total > 0 else self._seconds_as
            return {name: float(s) for name, s in zip(EXPRESSIONS, shares)}

    def summary_csv(self) -> str:
        """The summary as CSV: expression, share of time, seconds."""
        with self._lock:
            seconds = self._seconds_as.copy()
        total = seconds.sum()
        rows = [{"expression": name, "share_of_time": round(float(s / total) if total else 0.0, 4),
                 "seconds": round(float(s), 2)} for name, s in zip(EXPRESSIONS, seconds)]
        import pandas as pd

        return csv_text(pd.DataFrame(rows))

    @property
    def frames(self) -> int:
        with self._lock:
            return self._frames


class LiveFaces:
    """What one person's video goes through, frame by frame (one instance per session)."""

    def __init__(self, score: Callable[[np.ndarray], np.ndarray], timeline: ExpressionTimeline | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.score, self.clock = score, clock
        self.timeline = timeline or ExpressionTimeline()
        self._snapshot_lock = threading.Lock()
        self._last: tuple[np.ndarray, FrameFaces] | None = None

    def process(self, image_bgr: np.ndarray) -> np.ndarray:
        """A BGR frame -> the same frame (BGR) with each face's box, number and smoothed label drawn."""
        t = self.clock()
        found = detect.left_to_right(detect.detect_faces(image_bgr)[:MAX_FACES])  # the largest, then in reading order
        raw = list(self.score(detect.crop_faces(image_bgr, found))) if found else []
        smoothed = self.timeline.add(t, raw)
        frame = FrameFaces(t, [tuple(int(v) for v in f.box) for f in found], smoothed)
        drawn = detect.draw_faces(image_bgr, frame.boxes, frame.labels)   # RGB, boxes numbered 1, 2, ...
        with self._snapshot_lock:
            self._last = (drawn, frame)
        return np.ascontiguousarray(drawn[..., ::-1])

    def snapshot(self) -> tuple[np.ndarray, FrameFaces] | None:
        """The last processed frame (RGB, with its boxes drawn) and its faces, or None before any."""
        with self._snapshot_lock:
            return self._last
