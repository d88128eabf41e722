"""Hostile input, table-driven: both pages (AppTest) and both CLIs get the same corpus of bad and odd files.

Every refused input must give a person a message that names the problem (on a page: `st.error` or
`st.warning`, no exception; on the CLI: exactly one `error: FILE: ...` line on stderr and a non-zero
exit), every input that should work must give a result, and after all of them the same page session
answers a valid input exactly as the CLI does. The outcome of every input on every surface is
written to test-output/hostile_input.md (the "hostile-input table").
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
from PIL import Image

from core import cards
from core.song import decode as audio
from core.face import detect as faces
from core.errors import InputError
from core.text import markdown_code
from tests import hostile_files
from tests.waiting import holds_for, wait_until
from tests.conftest import FER_FILE, has_shared, MUSIC_DIR, ROOT, music_like, wav_bytes


TIMEOUT_S = 300
TABLE_FILE = ROOT / "test-output" / "hostile_input.md"
# Words that must never reach a person: a traceback, a Python type, or a library's misleading detail.
LEAKS = re.compile(r"Traceback|Exception|NoneType|Errno|[Dd]oes not exist|possibly a pipe|\bnan\b")
NON_ASCII_DIR = "é"


@dataclass(frozen=True)
class Case:
    label: str                      # the table's row
    task: str                       # "song" or "face"
    upload_name: str                # what the page's uploader is given
    make: Callable[[], bytes]
    refusal: str | None             # regex the message must match; None: must give a result
    cli_name: str | None = None     # path (relative to the corpus folder) the CLI is given
    duration_s: float | None = None  # a song's true length, where its header says otherwise

    @property
    def data(self) -> bytes:
        return _bytes_for(self.task, self.label)

    @property
    def cli_path(self) -> str:
        return self.cli_name or self.upload_name


# --- the corpus, generated ---------------------------------------------------------------------

def _mp3(seconds: float) -> bytes:
    return wav_bytes(music_like(seconds, 44100, channels=2), 44100, fmt="MP3")


def _square(seconds: float, amplitude: float, subtype: str) -> bytes:
    t = np.arange(int(seconds * 22050)) / 22050
    return wav_bytes((amplitude * np.sign(np.sin(2 * np.pi * 220 * t))).astype(np.float32), 22050, subtype=subtype)


def _silence(seconds: float) -> bytes:
    # 16-bit mono at 22,050 Hz: 902 s is 40 MB, under the 50-MB upload limit
    return wav_bytes(np.zeros(int(seconds * 22050), np.int16), 22050, subtype="PCM_16")


def _with_nan() -> bytes:
    y = music_like(5.0)
    y[1000:1100] = np.nan
    return wav_bytes(y, 22050, subtype="FLOAT")


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def _jpg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def _png_header_claiming(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width x height grey pixels, then a few bytes of IDAT."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(width + 1))) \
        + chunk(b"IEND", b"")


@cache
def _fer_face() -> np.ndarray | None:
    """The first FER2013 PublicTest face BlazeFace finds when pasted at 160 px; None without ../shared."""
    if not has_shared(FER_FILE):
        return None
    with np.load(FER_FILE) as npz:
        rows = np.flatnonzero(npz["usage"] == 1)[:50]
        for face in npz["pixels"][rows]:
            if faces.detect_faces(_grey_canvas(face)):
                return face
    return None


def _grey_canvas(face: np.ndarray | None) -> np.ndarray:
    """A 480x640 grey picture, with a face at 160 px in it when one is given."""
    canvas = np.full((480, 640), 128, np.uint8)
    if face is not None:
        canvas[100:260, 200:360] = cv2.resize(face, (160, 160))
    return canvas


def _photo() -> np.ndarray:
    return _grey_canvas(_fer_face())


def _cmyk_jpg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_photo()).convert("CMYK").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def _gif(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "GIF")
    return buffer.getvalue()


def _noise(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).bytes(n)


def _real_or_generated_song() -> bytes:
    clips = sorted((MUSIC_DIR / "clips").glob("*.mp3")) if has_shared(MUSIC_DIR / "clips") else []
    return clips[0].read_bytes() if clips else _mp3(30.0)


_limit_min = audio.MAX_DURATION_S / 60
SONG_CASES = [
    Case("empty file", "song", "empty.mp3", lambda: b"", r"The file is empty"),
    Case("random bytes named .mp3", "song", "noise.mp3", lambda: _noise(20_000, 1), r"could not be read as audio"),
    Case("random bytes named .wav", "song", "noise.wav", lambda: _noise(20_000, 2), r"could not be read as audio"),
    Case("a jpg named .mp3", "song", "photo.mp3", lambda: _jpg(_photo()), r"could not be read as audio"),
    Case("truncated mp3 (first 400 bytes)", "song", "cut_header.mp3", lambda: _mp3(12.0)[:400],
         r"could not be read as audio"),
    Case("truncated mp3 (first 2,000 bytes: 0.2 s of sound)", "song", "cut_early.mp3", lambda: _mp3(12.0)[:2000],
         r"only 0\.\d\d s long; at least 1 s"),
    Case("truncated mp3 (second half missing): scored on the part that is there", "song", "cut_half.mp3",
         lambda: _mp3(12.0)[:len(_mp3(12.0)) // 2], None),
    Case(f"silent wav, limit + 2 s ({audio.MAX_DURATION_S + 2:.0f} s; the check allows 1 s over)", "song",
         "too_long.wav", lambda: _silence(audio.MAX_DURATION_S + 2),
         rf"longer than the limit of {_limit_min:.0f} minutes \(the reading stopped at {_limit_min:.0f} min 1 s\)"),
    Case(f"silent wav, limit + 1 s ({audio.MAX_DURATION_S + 1:.0f} s, inside the 1-s tolerance)", "song",
         "at_limit.wav", lambda: _silence(audio.MAX_DURATION_S + 1), r"silent"),
    Case("0.2-s clip", "song", "blip.wav", lambda: wav_bytes(music_like(0.2), 22050), r"only 0\.20 s long"),
    Case("all zeros, 5 s (NaN after a 0-dB reference)", "song", "zeros.wav",
         lambda: wav_bytes(np.zeros(5 * 22050, np.float32), 22050), r"silent"),
    Case("NaN samples in a float wav", "song", "nan.wav", _with_nan, r"invalid values \(NaN or infinity\)"),
    Case("clipped square wave, full scale, 16-bit", "song", "square.wav", lambda: _square(5.0, 1.0, "PCM_16"), None),
    Case("square wave in a float wav at 1e20 x full scale (overflows to NaN)", "song", "square_1e20.wav",
         lambda: _square(5.0, 1e20, "FLOAT"), r"beyond full scale"),
    Case("8-channel wav, 48 kHz", "song", "eight.wav", lambda: wav_bytes(music_like(6.0, 48000, channels=8), 48000),
         None),
    Case("192-kHz wav", "song", "hires.wav", lambda: wav_bytes(music_like(6.0, 192000), 192000, subtype="PCM_24"),
         None),
    Case("name with path separators and non-ASCII", "song", f"../{NON_ASCII_DIR}/日本 song.wav",
         lambda: wav_bytes(music_like(6.0, seed=4), 22050), None, cli_name=f"{NON_ASCII_DIR}/../日本 é song.wav"),
    # Headers that lie about the length: the song is read to its real end.
    Case("VBR mp3 without a Xing header, loud start: header guesses 10.8 s of 60 s (was scored on 10.8 s)", "song",
         "vbr_no_xing.mp3", lambda: hostile_files.vbr_mp3_without_xing(hostile_files.loud_then_quiet(60.0, 5.0)),
         None, duration_s=60.0),
    Case("VBR mp3 without a Xing header, silent start: header guesses over 15 min of 5 min (was refused)", "song",
         "vbr_no_xing_long.mp3",
         lambda: hostile_files.vbr_mp3_without_xing(hostile_files.quiet_then_loud(300.0, 3.0), 22050),
         None, duration_s=300.0),
    Case("FLAC whose header says 'length unknown', 40 s (was refused as millions of minutes long)", "song",
         "unknown_length.flac", lambda: hostile_files.flac_of_unknown_length(music_like(40.0, seed=7), 22050),
         None, duration_s=40.0),
    Case("FLAC whose header says 'length unknown', 20 min: refused once the reading passes 15 min", "song",
         "unknown_length_long.flac",
         lambda: hostile_files.flac_of_unknown_length(np.tile(music_like(60.0, 4000, seed=8), 20), 4000),
         rf"longer than the limit of {_limit_min:.0f} minutes"),
    Case("FLAC whose header says 10 s of its 40 s (was read as 10 s)", "song", "claims_10_s.flac",
         lambda: hostile_files.flac_claiming(music_like(40.0, seed=14), 22050, 10.0), None, duration_s=40.0),
    Case("wav whose data size field is 0, 20 s of samples there (was '0.00 s')", "song", "size_0.wav",
         lambda: hostile_files.wav_with_data_size_0(music_like(20.0, seed=9), 22050), None, duration_s=20.0),
    # The containers of phones, music stores and browsers' recordings, decoded by FFmpeg (PyAV).
    Case("m4a (AAC in MP4), 12 s stereo, as a phone or a music store gives it", "song", "phone.m4a",
         lambda: hostile_files.ffmpeg_encoded(music_like(12.0, 44100, seed=13), 44100, "ipod", "aac"), None,
         duration_s=12.0),
    Case("bare AAC stream (ADTS), 12 s", "song", "stream.aac",
         lambda: hostile_files.ffmpeg_encoded(music_like(12.0, 44100, seed=14), 44100, "adts", "aac"), None,
         duration_s=12.0),
    Case("WebM with Opus, 12 s, as a browser records", "song", "recording.webm",
         lambda: hostile_files.ffmpeg_encoded(music_like(12.0, 48000, seed=15), 48000, "webm", "libopus"), None,
         duration_s=12.0),
    Case("m4a cut in half (its index is at the end)", "song", "cut.m4a",
         lambda: (lambda d: d[:len(d) // 2])(hostile_files.ffmpeg_encoded(music_like(12.0, 44100), 44100, "ipod", "aac")),
         r"could not be read as audio"),
    Case("AAC stream of 16 min (a 60-s stream 16 times): refused once the reading passes 15 min", "song",
         "long.aac", lambda: hostile_files.ffmpeg_encoded(music_like(60.0, 8000, seed=16), 8000, "adts", "aac", 1) * 16,
         rf"longer than the limit of {_limit_min:.0f} minutes"),
    # Names are text, never markup or a formula.
    Case("name that is Markdown: an image from another host", "song", "![t](https://example.invalid/x.png).mp3",
         lambda: wav_bytes(music_like(6.0, seed=10), 22050, fmt="MP3"), None, cli_name="![t](x.png).mp3"),
    Case("name that is Markdown bold, on a file that is refused", "song", "**bold**.wav",
         lambda: _noise(20_000, 11), r"could not be read as audio"),
    Case("name that is a spreadsheet formula", "song", "=1+2.wav", lambda: wav_bytes(music_like(6.0, seed=12), 22050),
         None),
]

_big_side = 10_000
assert _big_side ** 2 > faces.MAX_PIXELS
FACE_CASES = [
    Case("empty file", "face", "empty.jpg", lambda: b"", r"The file is empty"),
    Case("random bytes named .png", "face", "noise.png", lambda: _noise(20_000, 3), r"not an image"),
    Case("random bytes named .jpg", "face", "noise.jpg", lambda: _noise(20_000, 4), r"not an image"),
    Case("a wav named .png", "face", "song.png", lambda: wav_bytes(music_like(2.0), 22050), r"not an image"),
    Case("truncated jpg (first half)", "face", "cut.jpg", lambda: _jpg(_photo())[:len(_jpg(_photo())) // 2],
         r"could not be decoded: the file may be cut short"),
    Case("truncated png (first half)", "face", "cut.png",
         lambda: _png(np.random.default_rng(5).integers(0, 256, (300, 400, 3), dtype=np.uint8))[:100_000],
         r"could not be decoded: the file may be cut short"),
    Case("png header claiming 60000x60000 (zip-bomb-like)", "face", "bomb.png",
         lambda: _png_header_claiming(60000, 60000), rf"the limit is {faces.MAX_PIXELS / 1e6:.0f} megapixels"),
    Case("1x1 png", "face", "dot.png", lambda: _png(np.zeros((1, 1, 3), np.uint8)), r"only 1x1 pixels"),
    Case(f"{_big_side}x{_big_side} png", "face", "huge.png", lambda: _png(np.full((_big_side, _big_side), 90, np.uint8)),
         rf"{_big_side}x{_big_side} pixels; the limit is {faces.MAX_PIXELS / 1e6:.0f} megapixels"),
    Case("CMYK jpg", "face", "cmyk.jpg", _cmyk_jpg, None),
    Case("16-bit png", "face", "deep.png", lambda: _png(_photo().astype(np.uint16) * 257), None),
    Case("name with path separators and non-ASCII", "face", f"../{NON_ASCII_DIR}/日本 photo.png",
         lambda: _png(_photo()), None, cli_name=f"{NON_ASCII_DIR}/../日本 é photo.png"),
    # Pictures made to stall or fool a decoder.
    Case("progressive 8000x8000 JPEG, its last scan repeated 700 times (a minute of decoding)", "face", "stall.jpg",
         lambda: hostile_files.progressive_jpeg(8000, repeat_last_scan=700), r"progressive JPEG of 705 scans"),
    Case("Radiance HDR with PCD_ at byte 2048 (read as a Photo CD; OpenCV decoded it through a temp file)", "face",
         "photo_cd.png", hostile_files.radiance_hdr_posing_as_photo_cd, r"not an image"),
    Case("48x130000 picture (scaled to a width of 0: cv2.resize raised)", "face", "strip.png",
         lambda: _png(np.full((130000, 48), 90, np.uint8)), r"48x130000 pixels: too long and narrow"),
    Case("a GIF named .png (not one of the promised formats)", "face", "anim.png", lambda: _gif(_photo()),
         r"not an image"),
    Case("a jpg named .png (the format is read from the bytes)", "face", "really_a_jpg.png", lambda: _jpg(_photo()),
         None),
    Case("png with a 3-MB text chunk (was called damaged)", "face", "big_text.png",
         lambda: hostile_files.png_with_large_chunks(_photo()), None),
    Case("png with a 2-MB ICC profile", "face", "big_icc.png",
         lambda: hostile_files.png_with_large_chunks(_photo(), text_bytes=0, icc_bytes=2_000_000), None),
    Case("name with HTML, on a file that is refused", "face", "<img src=x onerror=alert(1)>.png",
         lambda: _noise(20_000, 13), r"not an image"),
]
CASES = SONG_CASES + FACE_CASES
# The valid input each page gets after all the hostile ones (the CLI scores it too, to compare).
CONTROLS = {"song": Case("valid song (after all the above)", "song", "valid.mp3", _real_or_generated_song, None),
            "face": Case("valid photo (after all the above)", "face", "valid.png", lambda: _png(_photo()), None)}
_BY_LABEL = {(c.task, c.label): c for c in CASES + list(CONTROLS.values())}
assert len(_BY_LABEL) == len(CASES) + 2, "case labels must be unique per task"


@cache
def _bytes_for(task: str, label: str) -> bytes:
    return _BY_LABEL[(task, label)].make()


def _id(case: Case) -> str:
    return f"{case.task}-{case.upload_name}"


# --- the table ---------------------------------------------------------------------------------

OUTCOMES: dict[tuple[str, str], dict[str, str]] = {}


def _record(case: Case, surface: str, outcome: str) -> None:
    OUTCOMES.setdefault((case.task, case.label), {})[surface] = outcome


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@pytest.fixture(scope="module", autouse=True)
def hostile_table():
    """Writes every outcome seen in this module as a markdown table, also when a test failed."""
    yield
    lines = ["| input | should | page | CLI |", "|---|---|---|---|"]
    for case in CASES + list(CONTROLS.values()):
        seen = OUTCOMES.get((case.task, case.label), {})
        page = "Song mood" if case.task == "song" else "Face expression"
        lines.append(f"| {case.task}: {_cell(case.label)} (`{_cell(case.upload_name)}`) | "
                     f"{'refuse' if case.refusal else 'work'} | {page}: {_cell(seen.get('page', 'not run'))} | "
                     f"{_cell(seen.get('cli', 'not run'))} |")
    TABLE_FILE.parent.mkdir(exist_ok=True)
    TABLE_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n" + "\n".join(lines))


def _song_summary(r: dict) -> str:
    return (f"result: {r['quadrant']} {r['mood']}, valence {r['valence']:.3f}, arousal {r['arousal']:.3f}, "
            f"{r['duration_s']} s")


def _face_summary(labels: list[str]) -> str:
    return f"result: {len(labels)} face(s): {', '.join(labels)}" if labels else "result: no face found"


# --- the CLIs: each runs once on every file ------------------------------------------------------

@dataclass
class CliRun:
    returncode: int
    results: dict[str, dict]       # by the path as given
    stderr: list[str]
    writes: list[tuple[str, str]]  # file-system events in its temp folder and working folder while it ran


def _reject_constant(name: str):
    raise ValueError(f"{name} in the CLI's JSON")


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory) -> dict[str, CliRun]:
    """Each CLI once on every file, with a private temp folder (TMPDIR, OPENCV_TEMP_PATH), while
    inotify watches it and the working folder: test_no_hostile_input_makes_anything_write_a_file
    asserts on what was seen."""
    folder, private_tmp = tmp_path_factory.mktemp("hostile"), tmp_path_factory.mktemp("hostile_tmp")
    (folder / NON_ASCII_DIR).mkdir()
    env = {**_cli_env(), **{name: str(private_tmp) for name in ("TMPDIR", "TEMP", "TMP", "OPENCV_TEMP_PATH")}}
    runs = {}
    for task in ("song", "face"):
        cases = [c for c in CASES if c.task == task] + [CONTROLS[task]]
        for case in cases:
            (folder / case.cli_path).write_bytes(case.data)
        with _watching([private_tmp, folder], private_tmp) as writes:
            done = subprocess.run([sys.executable, "-m", "core.predict", task, *[c.cli_path for c in cases]],
                                  cwd=folder, env=env, capture_output=True, timeout=TIMEOUT_S)
        stdout, stderr = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
        results = {}
        for line in stdout.splitlines():
            result = json.loads(line, parse_constant=_reject_constant)
            results[result["file"]] = result
        runs[task] = CliRun(done.returncode, results, stderr.splitlines(), writes)
    return runs


def _cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.slow  # cli_runs: both CLIs in subprocesses on the whole corpus (over a minute on 2 cores)
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_cli_gives_a_result_or_one_error_line(case, cli_runs):
    run = cli_runs[case.task]
    mine = [line for line in run.stderr if line.startswith(f"error: {case.cli_path}: ")]
    if case.refusal is None:
        assert not mine, mine
        result = run.results[case.cli_path]
        if case.task == "song":
            assert 0 <= result["valence"] <= 1 and 0 <= result["arousal"] <= 1 and result["duration_s"] >= 1
            if case.duration_s:
                assert result["duration_s"] == pytest.approx(case.duration_s, abs=0.1)
            _record(case, "cli", _song_summary(result))
        else:
            labels = [f["label"] for f in result["faces"]]
            assert len(labels) == (1 if _fer_face() is not None else 0)
            _record(case, "cli", _face_summary(labels))
    else:
        assert case.cli_path not in run.results, "a refused file must not also print a result"
        assert len(mine) == 1, run.stderr
        message = mine[0].removeprefix(f"error: {case.cli_path}: ")
        _record(case, "cli", f"exit {run.returncode}: `{mine[0]}`")
        assert re.search(case.refusal, message), message
        assert not LEAKS.search(message), message


@pytest.mark.slow  # cli_runs: both CLIs in subprocesses on the whole corpus (over a minute on 2 cores)
@pytest.mark.parametrize("task", ["song", "face"])
def test_cli_stderr_is_one_error_line_per_refused_file_and_nothing_else(task, cli_runs):
    run = cli_runs[task]
    refused = [c for c in CASES if c.task == task and c.refusal]
    assert run.returncode == 1
    assert len(run.stderr) == len(refused), run.stderr  # no decoder warnings, no traceback
    assert all(line.startswith("error: ") for line in run.stderr), run.stderr
    assert len(run.results) == len([c for c in CASES if c.task == task and not c.refusal]) + 1


# --- the pages: one session each, every case in turn, then a valid input ------------------------

def _page(task: str):
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(ROOT / "pages" / ("song_mood.py" if task == "song" else "face_expression.py")),
                            default_timeout=TIMEOUT_S)
    app.run()
    assert not app.exception, app.exception
    return app


@pytest.fixture(scope="module")
def song_app():
    return _page("song")


@pytest.fixture(scope="module")
def face_app():
    return _page("face")


def _upload(app, case: Case):
    mime = {"song": "audio/mpeg", "face": "image/png"}[case.task]
    app.file_uploader[0].set_value((case.upload_name, case.data, mime)).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _song_rows(app) -> list[dict]:
    return app.dataframe[0].value.to_dict("records") if app.dataframe and "file" in app.dataframe[0].value else []


def _face_labels(app) -> list[str]:
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in app.get("plotly_chart")]
    return [t.split(": ", 1)[1] for t in titles if t.startswith("Face ")]


def _messages(app) -> list[str]:
    return [e.value for e in app.error] + [w.value for w in app.warning]


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_page_gives_a_result_or_names_the_problem(case, request):
    app = _upload(request.getfixturevalue(f"{case.task}_app"), case)
    errors = [e.value for e in app.error]
    if case.refusal is None:
        assert not errors, errors
        if case.task == "song":
            (row,) = [r for r in _song_rows(app) if r["file"] == case.upload_name]
            assert 0 <= row["valence"] <= 1 and 0 <= row["arousal"] <= 1 and row["duration_s"] >= 1
            if case.duration_s:
                assert row["duration_s"] == pytest.approx(case.duration_s, abs=0.1)
            _record(case, "page", _song_summary(row))
        else:
            labels = _face_labels(app)
            if _fer_face() is None:
                assert not labels and "No face was found" in app.warning[0].value
            else:
                assert len(labels) == 1, _messages(app)
            _record(case, "page", _face_summary(labels))
    else:
        mine = [m for m in _messages(app) if m.startswith(f"{markdown_code(case.upload_name)}: ")]
        assert len(mine) == 1, _messages(app)
        message = mine[0].removeprefix(f"{markdown_code(case.upload_name)}: ")
        _record(case, "page", f"error: {message}")
        assert re.search(case.refusal, message), message
        assert not LEAKS.search(message), message
        assert not [r for r in _song_rows(app) if r["file"] == case.upload_name] and not _face_labels(app)
    _assert_the_name_is_only_text(app, case.upload_name)


def _assert_the_name_is_only_text(app, name: str) -> None:
    """Wherever the page puts the upload's name into Markdown (messages, captions), it is a code
    span, shown literally; anywhere else it is plain text (st.text, a table cell)."""
    for kind in ("markdown", "caption", "error", "warning", "info", "success"):
        for element in app.get(kind):
            assert name not in str(element.value).replace(markdown_code(name), ""), (kind, element.value)


@pytest.mark.slow  # cli_runs: both CLIs in subprocesses on the whole corpus (over a minute on 2 cores)
def test_song_page_answers_a_valid_song_after_the_hostile_ones_as_the_cli_does(song_app, cli_runs):
    control = CONTROLS["song"]
    app = _upload(song_app, control)
    assert not app.error
    (row,) = _song_rows(app)
    expected = cli_runs["song"].results[control.cli_path]
    assert row["file"] == control.upload_name and row["quadrant"] == expected["quadrant"]
    assert row["valence"] == pytest.approx(expected["valence"], abs=1e-4)
    assert row["arousal"] == pytest.approx(expected["arousal"], abs=1e-4)
    _record(control, "page", _song_summary(row))
    _record(control, "cli", _song_summary(expected))


@pytest.mark.slow  # cli_runs: both CLIs in subprocesses on the whole corpus (over a minute on 2 cores)
def test_face_page_answers_a_valid_photo_after_the_hostile_ones_as_the_cli_does(face_app, cli_runs):
    control = CONTROLS["face"]
    app = _upload(face_app, control)
    assert not app.error
    expected = [f["label"] for f in cli_runs["face"].results[control.cli_path]["faces"]]
    assert _face_labels(app) == expected and len(expected) == (1 if _fer_face() is not None else 0)
    _record(control, "page", _face_summary(_face_labels(app)))
    _record(control, "cli", _face_summary(expected))


# --- the length limit is checked on the decoded length, and the reading stops there -------------------

def test_a_song_over_the_limit_is_refused_once_its_decoding_passes_the_limit(monkeypatch):
    case = next(c for c in SONG_CASES if c.upload_name == "too_long.wav")
    read, frame_samples = [], audio._frame_samples
    monkeypatch.setattr(audio, "_frame_samples", lambda frame, channels: read.append(frame.samples)
                        or frame_samples(frame, channels))
    with pytest.raises(InputError, match=case.refusal):
        audio.load_mono(case.data, 16000)
    assert sum(read) <= (audio.MAX_DURATION_S + 1) * 22050


# --- nothing is written to disk ------------------------------------------------------------------

_WRITES = ("created", "modified", "moved", "deleted", "closed")  # watchdog's event types that change a file
_TEMPDIR_PROBE = re.compile(r"[a-z0-9_]{8}")  # tempfile._get_default_tempdir's names


@contextlib.contextmanager
def _watching(folders: list[Path], private_tmp: Path):
    """The file-system events (watchdog, inotify) that change a file under `folders` while the body
    runs, as (event type, path); the list is complete once the block has ended."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    seen: list[tuple[str, str]] = []

    class Changes(FileSystemEventHandler):
        def on_any_event(self, event):
            path = Path(event.src_path)
            # Python's tempfile.gettempdir() tries the folder once per process, with 4 bytes in a
            # file of 8 random letters that it deletes at once; TensorFlow (absl) asks for it as it loads.
            probe = path.parent == private_tmp and _TEMPDIR_PROBE.fullmatch(path.name)
            if event.event_type in _WRITES and path not in folders and not probe:
                seen.append((event.event_type, event.src_path))

    observer = Observer()
    for folder in folders:
        observer.schedule(Changes(), str(folder), recursive=True)
    observer.start()
    try:
        yield seen
        holds_for(lambda: not seen, 1.0)  # events still on their way from inotify
    finally:
        observer.stop()
        observer.join()


@pytest.mark.slow  # starts worker processes and runs both CLIs on the whole corpus (cli_runs)
def test_no_hostile_input_makes_anything_write_a_file(tmp_path, monkeypatch, cli_runs):
    """Every case (songs and pictures) through the workers the pages use and through the CLI, while
    watchdog (inotify) watches the temp folder they are given (TMPDIR, and OPENCV_TEMP_PATH, which
    OpenCV uses instead of /tmp) and the CLI's working folder: no file appears, changes or goes. The
    watch is first shown to see a write there: OpenCV decoding a Radiance HDR itself, as the app did
    before, writes the upload to a temp file. (The system temp folder is not watched: other
    programs on the machine write there, tests of this project among them.) The CLI's runs are
    those of cli_runs, watched the same way."""
    from core.face.workers import PictureWorkers
    from core.song.workers import SongFeatureWorkers

    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    for name in ("TMPDIR", "TEMP", "TMP", "OPENCV_TEMP_PATH"):  # for the workers started below
        monkeypatch.setenv(name, str(private_tmp))

    def opencv_temp(seen, kinds) -> bool:
        return any(kind in kinds and Path(path).name.startswith("__opencv_temp") and Path(path).parent == private_tmp
                   for kind, path in seen)

    songs, pictures = SongFeatureWorkers(1), PictureWorkers(1)
    try:
        with _watching([private_tmp], private_tmp) as control:
            pictures.run(hostile_files.opencv_decode, hostile_files.radiance_hdr_posing_as_photo_cd())
            wait_until(lambda: opencv_temp(control, {"deleted"}), 10,
                       message=f"the watch did not see OpenCV's temp file come and go: {control}")
        assert opencv_temp(control, _WRITES)
        with _watching([private_tmp], private_tmp) as seen:
            for case in CASES:
                try:
                    (songs.song_features if case.task == "song" else pictures.decode_image)(case.data)
                except InputError:
                    pass
    finally:
        songs.close()
        pictures.close()
    assert not seen, seen
    for task in ("song", "face"):
        assert not cli_runs[task].writes, (task, cli_runs[task].writes)
