"""What `webapp/server_setup.py` changes in the Streamlit server process, checked through the code
paths a real server takes: Starlette's multipart parser for uploads, the script runner's clean-up,
the storage of closed tabs' sessions, the models' loading."""

import asyncio
import gc
import os
import threading
import time
import weakref

import keras
import pytest
from starlette.formparsers import MultiPartParser
from starlette.requests import Request
from streamlit.runtime.scriptrunner import script_runner
from streamlit.testing.v1 import AppTest

from core.variants.zoo import model_path
from webapp import server_setup
from tests.conftest import ROOT
from tests.waiting import async_wait_until, holds_for, wait_until

BOUNDARY = "moodlensboundary"


def _parse_upload(size: int):
    """An upload of `size` bytes, parsed the way Streamlit's upload route does (`request.form()`)."""
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"song.mp3\"\r\n"
            f"Content-Type: audio/mpeg\r\n\r\n").encode() + b"\x00" * size + f"\r\n--{BOUNDARY}--\r\n".encode()
    scope = {"type": "http", "method": "PUT", "path": "/_stcore/upload_file/s/f", "query_string": b"",
             "headers": [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
                         (b"content-length", str(len(body)).encode())]}
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]

    async def receive():
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)} if chunks else \
            {"type": "http.request", "body": b"", "more_body": False}

    async def parse():
        form = await Request(scope, receive).form()
        upload = form["file"]
        return upload.file._rolled, len(await upload.read())

    return asyncio.run(parse())


def test_a_large_upload_stays_in_memory(monkeypatch):
    size = 8 * 1024 * 1024  # a real song's mp3
    monkeypatch.setattr(MultiPartParser, "spool_max_size", 1024 * 1024)  # Starlette's default
    rolled, n = _parse_upload(size)
    assert rolled and n == size, "Starlette's default should spill this upload to a temp file"
    server_setup.keep_uploads_in_memory()
    rolled, n = _parse_upload(size)
    assert not rolled and n == size, "the upload was written to a temp file"


@pytest.mark.parametrize("page", ["streamlit_app.py", "pages/face_expression.py"])
def test_script_runs_do_not_clear_the_keras_session(page, monkeypatch):
    cleared = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: cleared.append(1))
    monkeypatch.setattr(script_runner, "_clean_problem_modules", script_runner._clean_problem_modules)
    app = AppTest.from_file(str(ROOT / page), default_timeout=180)
    app.run()
    app.run()
    assert not app.exception, app.exception
    assert script_runner._clean_problem_modules is server_setup._close_pyplot_figures
    assert cleared == []


def test_streamlit_s_own_hook_clears_keras(monkeypatch):
    """The hook the setup replaces exists and clears the Keras session (else the test above proves nothing)."""
    cleared = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: cleared.append(1))
    assert server_setup.STREAMLIT_CLEAN_UP is not None
    server_setup.STREAMLIT_CLEAN_UP()
    assert cleared == [1]


def test_tensorflow_gets_one_thread_inside_an_operation_and_one_per_cpu_between(monkeypatch):
    # One inter-op thread made every session's model calls queue on it (docs/performance.md).
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.delenv(name, raising=False)
    server_setup.tensorflow_threads()
    assert os.environ["TF_NUM_INTRAOP_THREADS"] == "1"
    assert os.environ["TF_NUM_INTEROP_THREADS"] == str(os.cpu_count())


def test_analyses_take_turns_one_per_cpu():
    from webapp.loaders import analysis_slot

    cpus = os.cpu_count() or 1
    lock, inside, peak, done, release = threading.Lock(), [0], [0], [0], threading.Event()

    def analyse():
        with analysis_slot:
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            release.wait(timeout=30)  # hold the slot until the test has looked
            with lock:
                inside[0] -= 1
                done[0] += 1

    threads = [threading.Thread(target=analyse) for _ in range(3 * cpus)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: inside[0] >= cpus, 10, message="fewer analyses than CPUs got a slot")
        assert holds_for(lambda: inside[0] == cpus, 0.2), "more analyses than CPUs ran at once"
    finally:
        release.set()
        for thread in threads:
            thread.join()
    assert peak[0] == cpus and inside[0] == 0 and done[0] == 3 * cpus


class _Session:
    """What the session storage touches of a Streamlit AppSession; like one, it refers to itself
    through its parts (only the cyclic collector frees it) and holds a person's upload."""

    def __init__(self, session_id: str):
        self.id, self.shutdowns = session_id, 0
        self.parts, self.upload = [self], bytearray(1024 * 1024)

    def shutdown(self):
        self.shutdowns += 1


def _stored(storage, session_id: str) -> _Session:
    from streamlit.runtime.session_manager import SessionInfo

    session = _Session(session_id)
    storage.save(SessionInfo(client=None, session=session, script_run_count=1))
    return session


def test_a_tab_that_reconnects_in_time_gets_its_session_back():
    storage = server_setup.ClosedSessionsShutDown(ttl_s=60)
    session = _stored(storage, "a")
    assert storage.get("a").session is session and storage.list()[0].session is session
    storage.delete("a")  # what Streamlit does when the tab reconnects
    assert storage.get("a") is None and session.shutdowns == 0


def _time_up(storage, session_id: str) -> bool:
    return storage._stored[session_id][1] <= time.monotonic()


def test_a_closed_tab_s_session_is_shut_down_when_its_time_is_up():
    async def close_tabs():
        storage = server_setup.ClosedSessionsShutDown(ttl_s=0.2)
        gone = _stored(storage, "gone")
        await async_wait_until(lambda: gone.shutdowns, 10,  # nothing touches the storage meanwhile
                               message="the event loop did not shut down the session when its time was up")
        assert gone.shutdowns == 1
        return storage, gone, _stored(storage, "kept")

    storage, gone, kept = asyncio.run(close_tabs())
    assert kept.shutdowns == 0 and storage.get("gone") is None and storage.get("kept").session is kept
    # No event loop now: once its time is up, the next look at the storage shuts "kept" down.
    wait_until(lambda: _time_up(storage, "kept"), 10, interval_s=0.005)
    assert kept.shutdowns == 0
    assert storage.list() == [] and kept.shutdowns == 1 and gone.shutdowns == 1


def test_the_face_pages_models_are_loaded_before_anyone_waits_and_kept_out_of_the_collector():
    from core import cards
    from core.face import detect as faces
    from webapp.loaders import _load_face_ensemble

    _load_face_ensemble.clear()
    gc.unfreeze()
    try:
        ensemble = _load_face_ensemble(str(cards.DEFAULT_MODELS["face"]))
        assert all(m._made >= 1 for m in ensemble.members.values())  # each member's interpreter made
        assert faces._detectors_made == faces.MAX_DETECTORS  # and the face detectors
        assert gc.get_freeze_count() > 10_000  # the loaded objects, out of full collections
    finally:
        gc.unfreeze()
        _load_face_ensemble.clear()


def test_a_shut_down_session_is_freed_at_once():
    storage = server_setup.ClosedSessionsShutDown(ttl_s=0.05)
    gc.disable()  # no collection on its own during the test: only the storage's
    try:
        gone = weakref.ref(_stored(storage, "gone"))
        wait_until(lambda: _time_up(storage, "gone"), 10, interval_s=0.005)
        assert gone() is not None  # the storage still holds it (the time is up, not yet looked at)
        storage.list()
        assert gone() is None, "the shut-down session and its upload are still in memory"
    finally:
        gc.enable()
