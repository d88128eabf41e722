"""Nothing a person uploads is kept: the pages and the CLIs leave no file behind.

Around each action the test takes a listing (path -> mtime, size) of the temp folders and the
working tree, and records every file our own Python process opens for writing (an audit hook;
the CLI runs under the same hook). The machine is shared (a training job writes /tmp/songzoo*,
other sessions run tests), so a changed path counts as ours only when we can tell it is:
  - it lies in the private temp folder the action runs with (TMPDIR / tempfile.tempdir),
  - its name carries the run's marker (every upload is named privacy-<marker>...),
  - its content holds a signature of an input (64 bytes from the middle of each file), or
  - our process opened it for writing (the audit hook: Python-level writes, even if deleted again).
Everything else that changed is listed as "others" in the failure message. The sanity tests at the
end plant each kind of leak and check that the watch reports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest  # imported here: on import it makes a temp folder of its own

from core import cards
from tests.conftest import FER_FILE, has_shared, ROOT, music_like, wav_bytes

REAL_TEMP = Path(tempfile.gettempdir())
WATCHED = sorted({REAL_TEMP, Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), ROOT})
IGNORED_NAMES = {".git", "__pycache__", ".pytest_cache", "test-output"}
SIGNATURE_BYTES = 64
SCAN_LIMIT_BYTES = 256 * 2**20
TIMEOUT_S = 300


# --- the watch ---------------------------------------------------------------------------------

def _listing(roots=WATCHED) -> dict[str, tuple[int, int]]:
    """Every file, folder and link under the roots -> (mtime_ns, size), skipping IGNORED_NAMES."""
    seen: dict[str, tuple[int, int]] = {}
    for root in roots:
        if not root.exists():
            continue
        for folder, dirs, files in os.walk(root, onerror=lambda e: None):
            dirs[:] = [d for d in dirs if d not in IGNORED_NAMES]
            for name in dirs + files:
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    st = os.lstat(path)
                    seen[path] = (st.st_mtime_ns, st.st_size if not os.path.isdir(path) else 0)
    return seen


def _holds(path: str, signatures: list[bytes]) -> bool:
    """Whether the file's first SCAN_LIMIT_BYTES hold any of the signatures."""
    if not os.path.isfile(path) or os.path.islink(path):
        return False
    overlap = SIGNATURE_BYTES
    with contextlib.suppress(OSError), open(path, "rb") as f:
        tail, read = b"", 0
        while read < SCAN_LIMIT_BYTES and (chunk := f.read(4 * 2**20)):
            block = tail + chunk
            if any(s in block for s in signatures):
                return True
            tail, read = block[-overlap:], read + len(chunk)
    return False


# The audit-hook test "this event creates or writes a file", shared by this process and the CLI's wrapper.
_WRITE_TEST = '''
import os, sys
def written_path(event, args):
    """The absolute path an audit event creates or writes to, else None."""
    if event == "open" and len(args) >= 3:
        path, mode, flags = args[:3]
        if mode is not None:
            writes = any(c in str(mode) for c in "wax+")
        else:
            writes = isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        path = path if writes else None
    elif event in ("os.mkdir", "tempfile.mkstemp", "tempfile.mkdtemp"):
        path = args[0]
    elif event in ("os.rename", "os.replace", "os.link", "os.symlink", "shutil.copyfile", "shutil.move"):
        path = args[1]
    else:
        return None
    return os.path.abspath(os.fsdecode(path)) if isinstance(path, (str, bytes, os.PathLike)) else None

def make_hook(record, active=lambda: True):
    def hook(event, args):
        # The first use of tempfile in a process writes and deletes a probe file (b"blat") to test
        # that the folder is writable: not the app's doing.
        if active() and (path := written_path(event, args)) and \
                sys._getframe(1).f_code.co_name != "_get_default_tempdir":
            record(path)
    return hook
'''
_namespace: dict = {}
exec(_WRITE_TEST, _namespace)
_WRITES: list[str] | None = None  # while a watch runs in this process: paths opened for writing
# Cannot be removed; it does nothing while no watch runs.
sys.addaudithook(_namespace["make_hook"](lambda path: _WRITES.append(path), active=lambda: _WRITES is not None))


def _watched(path: str) -> bool:
    if path.startswith("/dev/") and not path.startswith("/dev/shm/"):
        return False  # /dev/null, ttys
    return not set(Path(path).parts) & IGNORED_NAMES and any(Path(path).is_relative_to(r) for r in WATCHED)


@dataclass
class Findings:
    marker: str
    private_temp: Path
    signatures: list[bytes]
    ours: list[str] = field(default_factory=list)          # "path: why"
    others: list[str] = field(default_factory=list)        # changed, but not attributable to us
    child_writes: list[str] = field(default_factory=list)  # what our subprocesses opened for writing

    def report(self) -> str:
        return (f"ours ({len(self.ours)}):\n  " + "\n  ".join(self.ours or ["none"]) +
                f"\nothers ({len(self.others)}, not counted):\n  " + "\n  ".join(self.others[:30] or ["none"]))


@contextlib.contextmanager
def watch(inputs: list[bytes], marker: str, private_temp: Path, monkeypatch):
    """Snapshot, run the body with a private temp folder and the audit hook on, snapshot, judge."""
    global _WRITES
    findings = Findings(marker, private_temp, [d[len(d) // 2:len(d) // 2 + SIGNATURE_BYTES] for d in inputs])
    assert all(len(s) == SIGNATURE_BYTES for s in findings.signatures)
    private_temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_temp))
    monkeypatch.setattr(tempfile, "tempdir", str(private_temp))
    before = _listing()
    _WRITES = []
    try:
        yield findings
    finally:
        writes, _WRITES = _WRITES, None
    after = _listing()
    for path in sorted(private_temp.rglob("*")):
        findings.ours.append(f"{path}: left in the private temp folder")
    for path in sorted({w for w in writes + findings.child_writes if _watched(w)}):
        if path in before and before[path] == after.get(path):
            continue  # e.g. os.makedirs(exist_ok=True) on a folder that was there
        findings.ours.append(f"{path}: opened for writing by our process"
                             + ("" if os.path.lexists(path) else " (deleted again)"))
    for path in sorted(p for p, stat in after.items() if before.get(p) != stat):
        if Path(path).is_relative_to(private_temp):
            continue
        if marker in path:
            findings.ours.append(f"{path}: carries the upload's marker in its name")
        elif _holds(path, findings.signatures):
            findings.ours.append(f"{path}: holds an upload's bytes")
        else:
            findings.others.append(path)


# --- inputs: unique to this run ----------------------------------------------------------------

@dataclass
class Inputs:
    marker: str
    song: bytes
    bad_song: bytes
    photo: bytes

    @property
    def all(self) -> list[bytes]:
        return [self.song, self.bad_song, self.photo]


def _inputs() -> Inputs:
    marker = uuid.uuid4().hex[:12]
    rng = np.random.default_rng(int(marker, 16))
    song = music_like(8.0, seed=int(rng.integers(1000))) + rng.normal(0, 0.01, int(8.0 * 22050)).astype(np.float32)
    canvas = np.full((480, 640), 128, np.uint8)
    if has_shared(FER_FILE):
        with np.load(FER_FILE) as npz:
            canvas[100:260, 200:360] = cv2.resize(npz["pixels"][np.flatnonzero(npz["usage"] == 1)[0]], (160, 160))
    canvas[:20] = rng.integers(0, 256, (20, 640), dtype=np.uint8)  # unique bytes in every run
    return Inputs(marker, wav_bytes(song.astype(np.float32), 22050),
                  rng.bytes(30_000), cv2.imencode(".png", canvas)[1].tobytes())


def _run_pages(inputs: Inputs) -> None:
    song_app = AppTest.from_file(str(ROOT / "pages" / "song_mood.py"), default_timeout=TIMEOUT_S)
    song_app.run()
    song_app.file_uploader[0].set_value([(f"privacy-{inputs.marker}.wav", inputs.song, "audio/wav"),
                                         (f"privacy-{inputs.marker}-bad.mp3", inputs.bad_song, "audio/mpeg")]).run()
    assert not song_app.exception
    assert song_app.dataframe[0].value["file"].tolist() == [f"privacy-{inputs.marker}.wav"]  # it did run
    assert "could not be read as audio" in song_app.error[0].value
    face_app = AppTest.from_file(str(ROOT / "pages" / "face_expression.py"), default_timeout=TIMEOUT_S)
    face_app.run()
    face_app.file_uploader[0].set_value((f"privacy-{inputs.marker}.png", inputs.photo, "image/png")).run()
    assert not face_app.exception and not face_app.error


# Runs core.predict's CLI with the same audit hook; prints the paths it opened for writing, as JSON,
# on the last line of stderr.
_CLI_UNDER_AUDIT = _WRITE_TEST + """
import atexit, json, runpy, sys
writes = []
sys.addaudithook(make_hook(writes.append))
atexit.register(lambda: print("AUDIT " + json.dumps(writes), file=sys.stderr, flush=True))
sys.argv = ["core.predict"] + sys.argv[1:]
runpy.run_module("core.predict", run_name="__main__", alter_sys=True)
"""


def _run_clis(inputs: Inputs, folder: Path, findings: Findings) -> None:
    """Both CLIs from the repository root, on input files written before the watch."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for task, names in (("song", [f"privacy-{inputs.marker}.wav", f"privacy-{inputs.marker}-bad.mp3"]),
                        ("face", [f"privacy-{inputs.marker}.png"])):
        done = subprocess.run([sys.executable, "-c", _CLI_UNDER_AUDIT, task, *[str(folder / n) for n in names]],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        lines = done.stderr.strip().splitlines()
        assert lines and lines[-1].startswith("AUDIT "), done.stderr[-2000:]
        findings.child_writes.extend(json.loads(lines[-1][len("AUDIT "):]))
        results = [json.loads(line) for line in done.stdout.splitlines()]
        assert [r["file"] for r in results] == [str(folder / names[0])], done.stderr[-2000:]  # it did run
        assert done.returncode == (1 if task == "song" else 0)


def _need_models():
    for task in ("song", "face"):
        assert cards.DEFAULT_MODELS[task].exists(), f"the default {task} model is committed in models/"

# --- the checks --------------------------------------------------------------------------------

def test_the_pages_leave_no_file_behind(tmp_path, monkeypatch):
    _need_models()
    inputs = _inputs()
    with watch(inputs.all, inputs.marker, tmp_path / "private_temp", monkeypatch) as findings:
        _run_pages(inputs)
    assert not findings.ours, findings.report()


@pytest.mark.slow  # both CLIs in subprocesses (TensorFlow and the models loaded twice)
def test_the_clis_leave_no_file_behind(tmp_path, monkeypatch):
    _need_models()
    inputs = _inputs()
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name, data in ((f"privacy-{inputs.marker}.wav", inputs.song), (f"privacy-{inputs.marker}-bad.mp3",
                                                                       inputs.bad_song),
                       (f"privacy-{inputs.marker}.png", inputs.photo)):
        (folder / name).write_bytes(data)
    with watch(inputs.all, inputs.marker, tmp_path / "private_temp", monkeypatch) as findings:
        _run_clis(inputs, folder, findings)
    assert not findings.ours, findings.report()


# --- the check can fail: each kind of leak, planted ------------------------------------------------

def _plant_named(inputs: Inputs, spot: Path) -> Path:
    path = Path("/tmp") / f"leak-privacy-{inputs.marker}.txt"  # the marker, no content
    path.write_text("x")
    return path


def _plant_bytes_by_another_program(inputs: Inputs, spot: Path) -> Path:
    path = Path("/dev/shm" if Path("/dev/shm").is_dir() else "/tmp") / f"tmp{uuid.uuid4().hex[:8]}"
    subprocess.run(["cp", str(spot), str(path)], check=True)  # not Python: only the content tells
    return path


def _plant_in_the_working_tree(inputs: Inputs, spot: Path) -> Path:
    path = ROOT / f"cache-{uuid.uuid4().hex[:8]}.bin"
    path.write_bytes(inputs.photo)
    return path


def _plant_temp_file_deleted_again(inputs: Inputs, spot: Path) -> Path:
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:  # in the private temp folder, gone after
        f.write(inputs.song)
    return Path(f.name)


def _plant_outside_tempfile_and_delete(inputs: Inputs, spot: Path) -> Path:
    path = Path("/var/tmp") / f"spool{uuid.uuid4().hex[:8]}"
    path.write_bytes(b"decoded samples")  # no marker, no upload bytes, and gone: only the audit hook sees it
    path.unlink()
    return path


PLANTS = {"named with the marker in /tmp": (_plant_named, "marker"),
          "upload's bytes copied by another program": (_plant_bytes_by_another_program, "holds an upload's bytes"),
          "a file in the working tree": (_plant_in_the_working_tree, "opened for writing"),
          "a temp file, deleted again": (_plant_temp_file_deleted_again, "opened for writing"),
          "a file in /var/tmp, deleted again": (_plant_outside_tempfile_and_delete, "deleted again")}


def test_the_watch_catches_each_kind_of_planted_leak(tmp_path, monkeypatch):
    """All kinds planted under one watch (each watch lists the temp folders and the working tree
    twice: seconds); each planted file must be reported, by its own path, for its own reason."""
    inputs = _inputs()
    spot = tmp_path / "input.wav"
    spot.write_bytes(inputs.song)
    planted: dict[str, Path] = {}
    try:
        with watch(inputs.all, inputs.marker, tmp_path / "private_temp", monkeypatch) as findings:
            for plant, (make, _) in PLANTS.items():
                planted[plant] = make(inputs, spot)
        for plant, (_, why) in PLANTS.items():
            assert any(line.startswith(f"{planted[plant]}: ") and why in line for line in findings.ours), \
                (plant, findings.report())
    finally:
        for path in planted.values():
            path.unlink(missing_ok=True)


def test_a_quiet_action_finds_nothing(tmp_path, monkeypatch):
    inputs = _inputs()
    with watch(inputs.all, inputs.marker, tmp_path / "private_temp", monkeypatch) as findings:
        assert re.fullmatch(r"[0-9a-f]{12}", inputs.marker)
    assert not findings.ours, findings.report()


# --- a real server: an upload stays in memory from the socket on ---------------------------------

_SERVER_UNDER_AUDIT = _WRITE_TEST + """
import json, time
_log = open(os.environ["MOODLENS_AUDIT_LOG"], "a", buffering=1)  # opened before the hook is on
sys.addaudithook(make_hook(lambda path: _log.write(json.dumps([time.time(), path]) + "\\n")))
"""


@pytest.mark.slow
def test_a_large_upload_to_the_real_server_touches_no_disk(tmp_path):
    """Through `streamlit run` and its HTTP upload route (Starlette's multipart parser), an 8-MB song
    is received and analysed without any file being created or written: the server runs under an
    audit hook (a sitecustomize) that logs every path it opens for writing, with a private TMPDIR.
    Starlette's own default would spool this upload to a temp file (webapp/streamlit_internals.py)."""
    import asyncio
    import time

    from tests.live_server import LiveServer
    from tests.streamlit_client import SessionClient

    hook_dir, private_temp, audit_log = tmp_path / "hook", tmp_path / "private_temp", tmp_path / "audit.jsonl"
    hook_dir.mkdir()
    private_temp.mkdir()
    (hook_dir / "sitecustomize.py").write_text(_SERVER_UNDER_AUDIT)
    marker = uuid.uuid4().hex[:12]
    song = wav_bytes(music_like(95.0, 44100, seed=11), 44100)  # 16-bit mono: 8.4 MB
    assert len(song) > 8e6  # Starlette spools anything over 1 MB (1,048,576 bytes)
    env = {"PYTHONPATH": os.pathsep.join([str(hook_dir), str(ROOT)]), "MOODLENS_AUDIT_LOG": str(audit_log),
           "TMPDIR": str(private_temp)}
    with LiveServer(tmp_path / "server.log", env=env) as server:
        async def upload():
            async with SessionClient(server.url, "song_mood", timeout_s=240) as session:
                await session.open()
                return await session.upload(f"privacy-{marker}.wav", song, "audio/wav")

        started = time.time()
        run = asyncio.run(upload())
        assert not run.errors, run.errors
        assert run.find(lambda e: e.WhichOneof("type") == "audio") is not None, "the song was not received"
        finished = time.time()
    writes = [path for when, path in map(json.loads, audit_log.read_text().splitlines())
              if started <= when <= finished and _watched(path)]
    assert audit_log.read_text(), "the audit hook did not run in the server"
    assert writes == [], f"the server opened these for writing while it received the song: {writes}"
    assert list(private_temp.iterdir()) == [], "the server left files in its temp folder"
