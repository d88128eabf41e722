"""Every use of Streamlit's and Starlette's private internals, in one place.

Each is kept only because a privacy promise or a measured stall needs it, and each names the upstream
issue it works around (remove it once that is fixed). After an upgrade a private attribute may be gone:
then `missing()` lists it, the server logs an ERROR line naming it and what is no longer in force, and
tests/test_streamlit_internals.py fails. Nothing here is a silent no-op.

| what | why | upstream |
|---|---|---|
| `starlette.formparsers.MultiPartParser.spool_max_size` | privacy: an upload over 1 MB is spooled to a temp file | Kludex/starlette#3190 |
| `streamlit.runtime.scriptrunner.script_runner._clean_problem_modules` | speed: it calls `keras.backend.clear_session()` after every script run | streamlit/streamlit#939 |
| `Runtime._session_mgr` and the session manager's `_session_storage` / `_storage_lock` | privacy: a closed tab's session (and its uploads) is never shut down | streamlit/streamlit#12506 |
| `streamlit.runtime.pages_manager.PagesManager.uses_pages_directory` | deep links on a fresh server run a page without the app's navigation | streamlit/streamlit#9624 |

Measurements behind each: docs/performance.md.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

log = logging.getLogger("moodlens.streamlit_internals")
if not log.handlers:  # the server's terminal, whatever the root logger's set-up
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(_handler)

_reported: set[str] = set()


def _report_missing(name: str, consequence: str) -> None:
    """One loud line per missing internal per process (the check runs on every script run)."""
    if name not in _reported:
        _reported.add(name)
        log.error("MoodLens: the private attribute %s is missing (Streamlit or Starlette upgraded?): %s. "
                  "See webapp/streamlit_internals.py.", name, consequence)


# --- what is reached into --------------------------------------------------------------------------

def _multipart_parser():
    from starlette.formparsers import MultiPartParser

    return MultiPartParser


def _script_runner_module():
    from streamlit.runtime.scriptrunner import script_runner

    return script_runner


def _pages_manager():
    from streamlit.runtime.pages_manager import PagesManager

    return PagesManager


def _runtime_class():
    from streamlit.runtime.runtime import Runtime

    return Runtime


def _sets(cls, attribute: str) -> bool:
    """Whether `cls`'s constructor sets `self.<attribute>` (an instance attribute: without a running
    server the source is the only place to look)."""
    import inspect

    try:
        return f"self.{attribute} =" in inspect.getsource(cls.__init__)
    except (OSError, TypeError):
        return False


def _session_manager_class():
    from streamlit.runtime.websocket_session_manager import WebsocketSessionManager

    return WebsocketSessionManager


CHECKS: dict[str, Callable[[], bool]] = {
    "starlette MultiPartParser.spool_max_size": lambda: isinstance(
        getattr(_multipart_parser(), "spool_max_size", None), int),
    "streamlit script_runner._clean_problem_modules": lambda: callable(
        getattr(_script_runner_module(), "_clean_problem_modules", None)),
    "streamlit PagesManager.uses_pages_directory": lambda: hasattr(_pages_manager(), "uses_pages_directory"),
    "streamlit Runtime._session_mgr": lambda: _sets(_runtime_class(), "_session_mgr"),
    "streamlit WebsocketSessionManager._session_storage": lambda: _sets(_session_manager_class(), "_session_storage"),
    "streamlit WebsocketSessionManager._storage_lock": lambda: _sets(_session_manager_class(), "_storage_lock"),
}


def missing() -> list[str]:
    """The private attributes this module needs that the installed Streamlit/Starlette lack."""
    return [name for name, present in CHECKS.items() if not present()]


# --- the workarounds ------------------------------------------------------------------------------

def raise_upload_spool_limit(limit_bytes: int) -> None:
    """Starlette parses an upload into a SpooledTemporaryFile that moves to a file in the temp folder
    once it passes `spool_max_size` (1 MB), so any real song would touch the disk while it is received.
    Raise the class-wide threshold to `limit_bytes`."""
    parser = _multipart_parser()
    if not isinstance(getattr(parser, "spool_max_size", None), int):
        _report_missing("starlette MultiPartParser.spool_max_size",
                        "uploads over 1 MB may be written to the temp folder while they are received")
        return
    if parser.spool_max_size < limit_bytes:
        parser.spool_max_size = limit_bytes


def streamlit_clean_up_hook() -> Callable[[], None] | None:
    """Streamlit's own clean-up between script runs (it clears the Keras session)."""
    return getattr(_script_runner_module(), "_clean_problem_modules", None)


def replace_clean_up_hook(replacement: Callable[[], None], original: Callable[[], None] | None) -> None:
    """Put `replacement` in place of Streamlit's clean-up hook `original` (once; idempotent)."""
    module = _script_runner_module()
    current = getattr(module, "_clean_problem_modules", None)
    if current is None:
        _report_missing("streamlit script_runner._clean_problem_modules",
                        "the models may be slowed by keras.backend.clear_session() after every script run")
        return
    if current is not replacement and (original is None or current is original):
        module._clean_problem_modules = replacement


def session_storage_of(runtime_instance) -> tuple[object, object] | None:
    """(storage, lock) of a running server's session manager, or None outside a real server (AppTest's
    stand-in runtime, a shell). A real server without them is reported loudly."""
    manager = getattr(runtime_instance, "_session_mgr", None)
    if manager is None or type(manager).__name__ != "WebsocketSessionManager":
        return None  # AppTest and the like: no storage of closed tabs to replace
    storage, lock = getattr(manager, "_session_storage", None), getattr(manager, "_storage_lock", None)
    if storage is None or lock is None:
        _report_missing("streamlit WebsocketSessionManager._session_storage/_storage_lock",
                        "a closed tab's uploads stay in memory for as long as the server runs")
        return None
    return storage, lock


def served_by_a_real_server() -> bool:
    """Whether this script runs in a `streamlit run` server (not AppTest's stand-in runtime, whose
    session manager is a mock): streamlit-webrtc reads the real session manager."""
    from streamlit import runtime

    if not runtime.exists():
        return False
    return type(getattr(runtime.get_instance(), "_session_mgr", None)).__name__ == "WebsocketSessionManager"


def set_session_storage(runtime_instance, storage) -> None:
    runtime_instance._session_mgr._session_storage = storage


def runs_in_legacy_pages_mode() -> bool:
    """Whether Streamlit still treats pages/ as its legacy multipage folder (before the main script
    has called `st.navigation`)."""
    manager = _pages_manager()
    if not hasattr(manager, "uses_pages_directory"):
        _report_missing("streamlit PagesManager.uses_pages_directory",
                        "a deep link to a page on a fresh server may run it without the app's navigation")
        return False
    return bool(manager.uses_pages_directory)


def close_pyplot_figures() -> None:
    """What Streamlit's own clean-up between script runs does, less `keras.backend.clear_session()`."""
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
