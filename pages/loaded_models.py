"""The app's models, loaded once per server process and shared by every session."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import cards
from core.errors import ModelFileError
from core.predict import ModelRunner


@st.cache_resource(show_spinner="Loading the model…")
def _load(path: str) -> ModelRunner:
    return ModelRunner.load(Path(path))


def default_runner(task: str) -> ModelRunner:
    """The task's default model; on a missing or corrupt file, a clear message and the page stops."""
    try:
        return _load(str(cards.DEFAULT_MODELS[task]))
    except ModelFileError as e:
        st.error(f"This page cannot run: {e}")
        st.stop()
