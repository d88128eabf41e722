"""Settings of the Streamlit server process that its config file cannot make.

`configure_server()` runs at the top of every script run (`streamlit_app.py`, and the pages through
`loaded_models`); it is idempotent and cheap.
"""

from __future__ import annotations

import sys

from streamlit import config
from streamlit.runtime.scriptrunner import script_runner

# Multipart bytes around one uploaded file (boundary lines and part headers), with room to spare.
_MULTIPART_OVERHEAD_BYTES = 64 * 1024


def keep_uploads_in_memory() -> None:
    """Starlette parses an upload into a SpooledTemporaryFile that moves to a file in the temp
    folder once it passes 1 MB, so any real song would be written to disk while it is received.
    Raise that threshold to the upload limit: an upload stays in memory from the socket to the
    analysis (Streamlit then keeps its bytes in memory only)."""
    from starlette.formparsers import MultiPartParser

    limit = config.get_option("server.maxUploadSize") * 1024 * 1024 + _MULTIPART_OVERHEAD_BYTES
    if MultiPartParser.spool_max_size < limit:
        MultiPartParser.spool_max_size = limit


# Streamlit's own hook, kept to show what is replaced (tests call it).
STREAMLIT_CLEAN_UP = getattr(script_runner, "_clean_problem_modules", None)


def _close_pyplot_figures() -> None:
    """What Streamlit's own clean-up between script runs does, less `keras.backend.clear_session()`."""
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def keep_models_warm_between_runs() -> None:
    """After every script run of every session, Streamlit calls `keras.backend.clear_session()`
    (meant for apps that build a model in the script). Here that is about 0.2 s of a full garbage
    collection holding the GIL, and it empties TensorFlow's kernel cache, so the next call of a
    model takes about 75 ms instead of 7. Our models are built once per process and shared, so
    there is nothing to clear. On a Streamlit without that hook this does nothing."""
    if getattr(script_runner, "_clean_problem_modules", None) not in (None, _close_pyplot_figures):
        script_runner._clean_problem_modules = _close_pyplot_figures


def configure_server() -> None:
    keep_uploads_in_memory()
    keep_models_warm_between_runs()
