"""Deep links to a page on a freshly started server go through the app's own navigation.

Streamlit starts in its legacy mode whenever a `pages/` folder sits beside the main script: until
the main script has called `st.navigation` once, the first visitor's page file runs on its own
(no page config, a sidebar listing every file in pages/), and so does every later visitor's,
until somebody opens the home page. A page calls `use_app_navigation()` first: in that mode it
runs the main script instead, which sets the app's navigation and then runs the page asked for.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import streamlit as st

from webapp.server_setup import configure_server
from webapp.streamlit_internals import runs_in_legacy_pages_mode

APP_SCRIPT = Path(__file__).resolve().parent.parent / "streamlit_app.py"


def use_app_navigation() -> None:
    """First thing on every page: the server's settings (every script run), then the app's navigation."""
    configure_server()
    if runs_in_legacy_pages_mode():
        runpy.run_path(str(APP_SCRIPT))
        st.stop()
