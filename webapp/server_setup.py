"""Settings of the Streamlit server process that its config file cannot make.

`configure_server()` runs at the top of every script run (`streamlit_app.py`, and every page through
`webapp.navigation.use_app_navigation`); it is idempotent and cheap.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time

from streamlit import config, runtime
from streamlit.runtime.session_manager import SessionInfo, SessionStorage

from core import patches
from webapp import streamlit_internals as internals

# Multipart bytes around one uploaded file (boundary lines and part headers), with room to spare.
_MULTIPART_OVERHEAD_BYTES = 64 * 1024


def keep_uploads_in_memory() -> None:
    """An upload stays in memory from the socket to the analysis (Streamlit then keeps its bytes in
    memory only): Starlette's spool-to-disk threshold is raised to the upload limit."""
    limit = config.get_option("server.maxUploadSize") * 1024 * 1024 + _MULTIPART_OVERHEAD_BYTES
    internals.raise_upload_spool_limit(limit)


# Streamlit's own hook, kept to show what is replaced (tests call it).
STREAMLIT_CLEAN_UP = internals.streamlit_clean_up_hook()
_close_pyplot_figures = internals.close_pyplot_figures


def keep_models_warm_between_runs() -> None:
    """After every script run of every session, Streamlit calls `keras.backend.clear_session()`
    (meant for apps that build a model in the script). Here that is a full garbage collection holding
    the GIL, and it empties TensorFlow's kernel cache, so the next call of a model is several times
    slower (docs/performance.md). Our models are built once per process and shared, so there is
    nothing to clear."""
    internals.replace_clean_up_hook(_close_pyplot_figures, STREAMLIT_CLEAN_UP)


def tensorflow_threads() -> None:
    """TensorFlow's thread pools in the server: one thread inside each operation (intra-op), one per
    CPU between operations (inter-op). The server runs one analysis per CPU at a time
    (`analysis_slot`); inside one operation more threads only added hand-overs and spinning (more CPU
    time for no less wall time; docs/performance.md). Between operations one thread per CPU lets two
    sessions' model calls run side by side, and musicnn's five front-end branches too: with a single
    inter-op thread, calls from several sessions queue on that one thread (docs/performance.md).
    TensorFlow reads these when it starts, so this must run before a
    page loads a model: `streamlit_app.py` calls it first."""
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(os.cpu_count() or 1))


def keep_loaded_objects_out_of_gc() -> None:
    """Python's full garbage collection walks every object the collector tracks: with TensorFlow
    and the models loaded, over half a million. In the server each one held the GIL long enough to
    stall every session (docs/performance.md).
    What exists once a model is loaded and traced lives as long as the server: `gc.freeze()` moves
    it out of the collector's reach, and a full collection then walks only what came after.
    Call it once a model is loaded and traced. The price: the objects of the sessions open at that
    moment are frozen too, so whatever of theirs ends in a reference cycle is never collected (their
    uploads and media are still dropped from Streamlit's stores when they close). That is the few
    sessions open at each model's first load, a handful of times per server process."""
    gc.freeze()


class ClosedSessionsShutDown(SessionStorage):
    """Where the server keeps a session whose tab has gone, so that a tab that reconnects within
    `ttl_s` (server.disconnectedSessionTTL) gets its page back. Streamlit's own storage merely
    forgets such a session when its time is up and never shuts it down, so the person's uploads
    stay in the upload store, and their song stays downloadable at its /media URL, for as long as
    the server runs. Here a session whose time is up is shut down, as closing it would: Streamlit
    then drops its uploads and media."""

    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._stored: dict[str, tuple[SessionInfo, float]] = {}  # session id -> (info, deadline)

    def get(self, session_id: str) -> SessionInfo | None:
        self.shut_down_expired()
        with self._lock:
            stored = self._stored.get(session_id)
        return stored[0] if stored else None

    def save(self, session_info: SessionInfo) -> None:
        self.shut_down_expired()
        with self._lock:
            self._stored[session_info.session.id] = (session_info, time.monotonic() + self.ttl_s)
        try:  # Streamlit saves from its event loop's thread; shut down there, once the time is up
            asyncio.get_running_loop().call_later(self.ttl_s + 0.1, self.shut_down_expired)
        except RuntimeError:  # no loop here: the next get, save or list shuts it down
            pass

    def delete(self, session_id: str) -> None:
        with self._lock:
            self._stored.pop(session_id, None)

    def list(self) -> list[SessionInfo]:  # ty: ignore[invalid-type-form]
        self.shut_down_expired()
        with self._lock:
            return [info for info, _ in self._stored.values()]

    def shut_down_expired(self) -> None:
        now = time.monotonic()
        with self._lock:
            expired = [sid for sid, (_, deadline) in self._stored.items() if deadline <= now]
            infos = [self._stored.pop(sid)[0] for sid in expired]
        if not infos:
            return
        while infos:  # popped as they go: nothing here holds them when the memory is given back
            infos.pop().session.shutdown()
        give_memory_back()


def give_memory_back() -> None:
    """A shut-down session's objects refer to each other, so only the cyclic collector frees them
    (and with them the uploads they hold); then glibc keeps the freed memory unless asked to give it
    back. Both are needed for the server's RSS to fall back after tabs close (docs/performance.md).
    A collection is cheap once the models are frozen out of it (`keep_loaded_objects_out_of_gc`)."""
    gc.collect()
    patches.give_memory_back()


def shut_down_closed_sessions() -> None:
    """Put `ClosedSessionsShutDown` in place of the running server's session storage (once; the
    sessions already stored move over). Outside a server (AppTest's stand-in runtime, a shell)
    there is no storage to replace; tests/test_live_sessions.py checks a real server."""
    found = internals.session_storage_of(runtime.get_instance()) if runtime.exists() else None
    if found is None or isinstance(found[0], ClosedSessionsShutDown):
        return
    old, lock = found
    storage = ClosedSessionsShutDown(config.get_option("server.disconnectedSessionTTL"))
    with lock:
        for info in old.list():
            storage.save(info)
        internals.set_session_storage(runtime.get_instance(), storage)


_checked = threading.Event()


def check_internals_once() -> None:
    """Once per process: one ERROR line for each private attribute or patched name that the installed
    libraries lack (webapp.streamlit_internals, core.patches), naming what is no longer in force."""
    if _checked.is_set():
        return
    _checked.set()
    for name in internals.missing():
        internals.log.error("MoodLens: the private attribute %s is missing (Streamlit or Starlette upgraded?); "
                            "see webapp/streamlit_internals.py", name)
    for name in patches.missing():
        patches.log.error("MoodLens: the patched name %s is missing (a library upgraded?); see core/patches.py", name)


def configure_server() -> None:
    check_internals_once()
    tensorflow_threads()
    keep_uploads_in_memory()
    keep_models_warm_between_runs()
    shut_down_closed_sessions()
