"""What the benches and experiments share: the data paths, a face in a webcam-sized frame, the
3-minute test song, timers, the machine's load, and the report every bench writes as JSON.

Tests may import this module (the face frames, the paths); nothing the server runs imports it.
"""

from __future__ import annotations

import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
FER_FILE = SHARED_DATA / "fer2013" / "fer2013.npz"
MUSIC_DIR = SHARED_DATA / "music"
CLIPS_DIR = MUSIC_DIR / "clips"
RESULTS_DIR = Path(__file__).resolve().parent / "results"

FRAME_SHAPE = (480, 640)  # (height, width) px: a webcam's frame
FER_PUBLIC_TEST = 1       # fer2013.npz's `usage` value of PublicTest


# ---------------------------------------------------------------- faces

def fer_faces(count: int | None = None, start: int = 0, usage: int = FER_PUBLIC_TEST) -> np.ndarray:
    """FER2013 faces of one usage (PublicTest by default), rows start.. start+count: (n, 48, 48) uint8.
    Raises FileNotFoundError when ../shared is not beside the checkout."""
    if not FER_FILE.exists():
        raise FileNotFoundError(f"no {FER_FILE}: run with ../shared beside the checkout")
    with np.load(FER_FILE) as npz:
        rows = np.flatnonzero(npz["usage"] == usage)[start:None if count is None else start + count]
        return npz["pixels"][rows]


def face_in_frame(face: np.ndarray, side_px: int = 160, *, top_left: tuple[int, int] | None = None,
                  angle_deg: float = 0.0, shape: tuple[int, int] = FRAME_SHAPE, grey: int = 128,
                  bgr: bool = True, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """One grey face (h, w) uint8, e.g. a 48x48 FER2013 face, upscaled to side_px x side_px and pasted
    into a plain grey frame.

    Args:
        face: (h, w) uint8 grey face.
        side_px: the pasted face's side, px.
        top_left: (y, x) of the face's top-left corner, px; None: centred.
        angle_deg: the frame rotated about its centre by this angle (counter-clockwise), the edges
            repeated into the corners.
        shape: the frame's (height, width), px.
        grey: the wall's grey level, 0..255.
        bgr: (h, w, 3) BGR, as OpenCV decodes a photo; False: (h, w) grey.
        interpolation: OpenCV's resize interpolation (cubic by default; tests used linear).
    Returns:
        The frame, uint8.
    """
    height, width = shape
    if not 0 < side_px <= min(height, width):
        raise ValueError(f"side_px must be in 1..{min(height, width)} for a {width}x{height} frame, got {side_px}")
    y, x = top_left if top_left is not None else ((height - side_px) // 2, (width - side_px) // 2)
    canvas = np.full((height, width), grey, np.uint8)
    canvas[y:y + side_px, x:x + side_px] = cv2.resize(face, (side_px, side_px), interpolation=interpolation)
    if angle_deg:
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle_deg, 1.0)
        canvas = cv2.warpAffine(canvas, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR) if bgr else canvas


def faces_in_frame(faces: Sequence[np.ndarray], side_px: int = 144, *, margin_px: int = 30, gap_px: int = 10,
                   columns: int | None = None, shape: tuple[int, int] = FRAME_SHAPE, grey: int = 128,
                   bgr: bool = True, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """Several grey faces in a grid in one grey frame: row by row from (margin_px, margin_px), gap_px
    apart, `columns` a row (default: as many as fit). Other arguments as `face_in_frame`."""
    height, width = shape
    columns = columns or max(1, (width - 2 * margin_px + gap_px) // (side_px + gap_px))
    canvas = np.full((height, width), grey, np.uint8)
    for i, face in enumerate(faces):
        y, x = margin_px + (i // columns) * (side_px + gap_px), margin_px + (i % columns) * (side_px + gap_px)
        if y + side_px > height:
            raise ValueError(f"{len(faces)} faces of {side_px} px do not fit in a {width}x{height} frame")
        canvas[y:y + side_px, x:x + side_px] = cv2.resize(face, (side_px, side_px), interpolation=interpolation)
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR) if bgr else canvas


def detectable_faces(faces: Sequence[np.ndarray], count: int, side_px: int = 160) -> list[np.ndarray]:
    """The first `count` faces that MoodLens's detector finds, exactly once, alone and centred in a
    frame at side_px (FER2013's tight crops defeat it now and then)."""
    from core.face import detect

    found = []
    for face in faces:
        if len(found) == count:
            break
        if len(detect.detect_faces(face_in_frame(face, side_px))) == 1:
            found.append(face)
    return found


# ---------------------------------------------------------------- songs

def three_minute_mp3() -> tuple[bytes, str]:
    """A 180-s 44.1 kHz stereo mp3: six shared demo clips joined, or (without ../shared) generated
    tones. -> (its bytes, where its audio came from)."""
    import librosa
    import soundfile as sf

    clips = sorted(CLIPS_DIR.glob("*.mp3"))[:6]
    if len(clips) == 6:
        parts = []
        for clip in clips:
            y, sr = sf.read(clip, dtype="float32", always_2d=True)
            parts.append(librosa.resample(y.T, orig_sr=sr, target_sr=44100).T)
        song, source = np.concatenate(parts)[:180 * 44100], "six demo clips joined"
    else:
        t = np.arange(180 * 44100) / 44100
        y = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
        song, source = np.stack([y, y], axis=1).astype(np.float32), "generated tones"
    buffer = io.BytesIO()
    sf.write(buffer, song, 44100, format="MP3")
    return buffer.getvalue(), source


def demo_clip(fallback: bytes) -> bytes:
    """The first shared demo clip's bytes (a 30-s mp3), else `fallback`."""
    clips = sorted(CLIPS_DIR.glob("*.mp3"))
    return clips[0].read_bytes() if clips else fallback


# ---------------------------------------------------------------- timing

def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `fn()` over `repeats` calls, ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def timed_rounds(stages: dict[str, Callable[[], object]], repeats: int
                 ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(wall-clock s, this process's CPU s) per run of each stage, the stages taking turns in every
    round, so that a change in the machine's load (it is shared) reaches all of them alike."""
    wall, cpu = {name: [] for name in stages}, {name: [] for name in stages}
    for _ in range(repeats):
        for name, fn in stages.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def load_average() -> float:
    """The machine's 1-min load average (above its CPU count, processes wait for a CPU)."""
    return os.getloadavg()[0]


def load_note() -> str:
    """"1-min load average 1.4 on 2 CPUs": the machine is shared, so every report says how busy it was."""
    return f"1-min load average {load_average():.1f} on {os.cpu_count()} CPUs"


# ---------------------------------------------------------------- reports

def add_report_option(parser, name: str) -> None:
    """--json PATH: where the bench's report goes (default bench/results/NAME.json, the committed
    one that `python -m bench.docs` renders)."""
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / f"{name.replace('.', '/')}.json",
                        metavar="PATH", help="write the report here (default: %(default)s)")


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


class _Tee(io.TextIOBase):
    def __init__(self, out):
        self.out, self.parts = out, []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()


class Report:
    """A bench's report: what it prints (kept, as printed, in `text`) and its figures (`figures`,
    plain JSON), written on a clean exit with the command, the time and the machine's load.

        with Report("song_latency", args.json) as report:
            print(...)                       # shown, and kept for the docs
            report.figures["whole_ms"] = ...

    The docs' generated blocks are rendered from these files (`bench.docs`), never from a
    program's stdout."""

    def __init__(self, name: str, path: Path | None, argv: Sequence[str] | None = None):
        self.name, self.path, self.figures = name, path, {}
        argv = list(sys.argv[1:] if argv is None else argv)
        shown = []  # the command as a person reruns it: without where the report went
        while argv:
            arg = argv.pop(0)
            if arg == "--json":
                argv = argv[1:]
            elif not arg.startswith("--json="):
                shown.append(arg)
        self.command = " ".join(["python", "-m", f"bench.{name}", *shown])
        self._tee: _Tee | None = None

    def __enter__(self) -> Report:
        self._load_start = load_average()
        self._stdout, self._tee = sys.stdout, _Tee(sys.stdout)
        sys.stdout = self._tee
        return self

    def __exit__(self, kind, value, traceback) -> None:
        sys.stdout = self._stdout
        if kind is None and self.path is not None:
            self.write(self.path)

    @property
    def text(self) -> str:
        return "".join(self._tee.parts).strip() if self._tee else ""

    def as_dict(self) -> dict:
        return {"bench": self.name, "command": self.command,
                "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                            "load_average_1min": {"start": self._load_start, "end": load_average()}},
                "figures": self.figures, "text": self.text}

    def write(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=1, default=_plain) + "\n")
        print(f"report: {path}", file=sys.stderr)
        return path


def read_report(path: Path) -> dict:
    """A report written by `Report` (its `text`, `figures`, `command`, ...)."""
    return json.loads(Path(path).read_text())


def run_bench(name: str, *args: str, json_path: Path | None = None) -> dict:
    """Run `python -m bench.NAME ARGS` in a fresh process (its own models, traces and memory),
    its report written to json_path (default: a temporary file) -> that report."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(json_path or Path(tmp) / "report.json")
        subprocess.run([sys.executable, "-m", f"bench.{name}", *args, "--json", str(path)], cwd=ROOT, check=True,
                       stdout=sys.stderr)  # progress shown; the caller's stdout stays its own
        return read_report(path)
