"""The app's models, loaded once per server process and shared by every session.

The pages serve through LiteRT (core.litert; the face ensemble core.face.served.FaceEnsemble): no TensorFlow is
imported until a person asks for what only Keras can give (Grad-CAM, Monte Carlo dropout, the
Compare page's look inside each variant); those loaders import it then."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np
import streamlit as st

from core import cards
from core.errors import ModelFileError
from core.face import detect
from core.face.served import FaceEnsemble
from core.face.workers import PictureWorkers
from core.litert import LiteRTModel
from core.song.workers import SongFeatureWorkers
from core.variants.compare import INPUT_SHAPES
from core.variants.zoo import fold_model_paths, model_path
from core.workers import WorkersFailed
from webapp.server_setup import configure_server, keep_loaded_objects_out_of_gc
from webapp.streamlit_internals import served_by_a_real_server

configure_server()
log = logging.getLogger("moodlens.loaders")


# At most one analysis per CPU at a time, across all sessions: `with analysis_slot:`. The others
# wait their turn (waiters are woken oldest first) instead of all sharing the cores and finishing
# together at the end.
analysis_slot = threading.BoundedSemaphore(os.cpu_count() or 1)

# What has finished loading in this process (key: loader and arguments): a page shows a spinner
# only while something it needs is still loading, here or on the warm-up thread.
_ready: set[tuple] = set()
_ready_lock = threading.Lock()


def _loaded(load, *args, message: str):
    """`load(*args)`, a cached loader: at once when it has loaded before in this process, else under
    a spinner with `message` (waiting for the warm-up thread's load of the same thing if it is under
    way: Streamlit's cache computes a value once and lets the others wait for it)."""
    key = (load.__name__, args)
    with _ready_lock:
        ready = key in _ready
    if ready:
        return load(*args)
    with st.spinner(message, show_time=True):
        value = load(*args)
    with _ready_lock:
        _ready.add(key)
    return value


def warm_up() -> None:
    """Load what the pages need, in the order a first visitor most likely needs it
    (warm_up_in_background calls it once per process, on a thread of its own).
    A failure is left for the page that needs the thing to report (its own call raises it again)."""
    steps = [(_song_feature_workers,), (_load_served, str(cards.DEFAULT_MODELS["song"]), "song"),
             *[(_load_served, str(path), "song") for path in fold_model_paths("song", "default")],
             (_picture_workers,), (_load_face_ensemble, str(cards.DEFAULT_MODELS["face"]))]
    for load, *args in steps:
        try:
            load(*args)
        except Exception as e:  # noqa: BLE001 - reported by the page that needs it
            log.warning("warm-up: %s%s failed (the page will say why): %s", load.__name__, tuple(args), e)
            continue
        with _ready_lock:
            _ready.add((load.__name__, tuple(args)))


@st.cache_resource(show_spinner=False)
def _load_served(path: str, task: str) -> LiteRTModel:
    """The task's model at `path` as LiteRT serves it (the `.tflite` its card names), run once."""
    model = LiteRTModel.load(Path(path))
    model(np.zeros((1, *INPUT_SHAPES[task]), np.float32))
    keep_loaded_objects_out_of_gc()
    return model


@st.cache_resource(show_spinner=False)
def _load_keras(path: str, task: str):
    """The Keras model at `path` in TensorFlow (core.runner.ModelRunner), traced: for what only
    Keras gives (Monte Carlo dropout, the Compare page's look inside a variant)."""
    from core.runner import ModelRunner

    runner = ModelRunner.load(Path(path))
    runner(np.zeros((1, *INPUT_SHAPES[task]), np.float32))
    keep_loaded_objects_out_of_gc()
    return runner


@st.cache_resource(show_spinner=False)
def _song_feature_workers() -> SongFeatureWorkers:
    return SongFeatureWorkers(os.cpu_count() or 1)


def _started_workers(start, message: str, what: str):
    """Worker processes from the cached `start`; if they cannot start, a clear message and the page
    stops."""
    try:
        return _loaded(start, message=message)
    except WorkersFailed as e:
        st.error(f"{what} cannot be analysed on this server: {e}.")
        st.stop()


def song_feature_workers() -> SongFeatureWorkers:
    """One worker process per CPU for songs' features, shared by every session (`core.workers`)."""
    return _started_workers(_song_feature_workers, "Starting the song analysis…", "Songs")


@st.cache_resource(show_spinner=False)
def _picture_workers() -> PictureWorkers:
    return PictureWorkers(os.cpu_count() or 1)


def picture_workers() -> PictureWorkers:
    """One worker process per CPU that decodes pictures with a time and a memory limit, shared by
    every session (`core.workers`)."""
    return _started_workers(_picture_workers, "Starting the picture decoding…", "Pictures")


@st.cache_resource(show_spinner=False)
def _load_face_ensemble(card_path: str) -> FaceEnsemble:
    """The Face page's ensemble (its card at `card_path`) on LiteRT, run once, and the detectors."""
    ensemble = FaceEnsemble.load(Path(card_path))
    ensemble(np.zeros((1, *INPUT_SHAPES["face"]), np.float32))
    detect.prepare_detectors()
    keep_loaded_objects_out_of_gc()
    return ensemble


def face_page_scorer() -> FaceEnsemble:
    """What the Face page runs: the ensemble its card names (core.cards.DEFAULT_MODELS["face"]); on a
    missing or altered file, a clear message and the page stops."""
    try:
        return _loaded(_load_face_ensemble, str(cards.DEFAULT_MODELS["face"]), message="Loading the models…")
    except ModelFileError as e:
        st.error(f"This page cannot run: {e}")
        st.stop()


@st.cache_resource(show_spinner="Loading the models' Keras copies (first time only)…")
def face_keras_ensemble(card_path: str = str(cards.DEFAULT_MODELS["face"])):
    """The Face page's ensemble in Keras (its members' .keras files in TensorFlow): what Grad-CAM needs."""
    ensemble = FaceEnsemble.load(Path(card_path), runtime="keras")
    keep_loaded_objects_out_of_gc()
    return ensemble


def default_runner(task: str) -> LiteRTModel:
    """The task's model as its page serves it; on a missing or corrupt file, a clear message and the
    page stops."""
    try:
        return _loaded(_load_served, str(cards.DEFAULT_MODELS[task]), task, message="Loading the model…")
    except ModelFileError as e:
        st.error(f"This page cannot run: {e}")
        st.stop()


@st.cache_resource(show_spinner="Preparing Monte Carlo dropout…")
def _with_mc_dropout(path: str, task: str):
    """The Keras runner of `path`, its dropout-on copy traced once (the first trace takes seconds)."""
    runner = _load_keras(path, task)
    runner.mc_dropout(np.zeros((1, *INPUT_SHAPES[task]), np.float32), 1)
    keep_loaded_objects_out_of_gc()
    return runner


def variant_runners(task: str, names: list[str]) -> dict:
    """The named variants of the task's zoo in Keras (core.runner.ModelRunner), ready for Monte Carlo
    dropout and a look inside. A variant whose file is missing or corrupt is left out, with a
    message naming the file."""
    runners = {}
    for name in names:
        try:
            runners[name] = _with_mc_dropout(str(model_path(task, name)), task)
        except ModelFileError as e:
            st.error(f"Variant **{name}** is left out: {e}")
    return runners


def fold_runners(task: str, names: list[str]) -> dict[str, list[LiteRTModel]]:
    """Each named variant's cross-validation fold models (core.variants.zoo.fold_model_paths), for the
    spread of a prediction; a variant without them, or with a missing or corrupt one, gets none
    (with a message naming the file)."""
    runners = {}
    for name in names:
        try:
            found = [_loaded(_load_served, str(path), task, message="Loading the fold models…")
                     for path in fold_model_paths(task, name)]
        except ModelFileError as e:
            st.warning(f"Variant **{name}**: its fold models are left out: {e}")
            continue
        if found:
            runners[name] = found
    return runners


_warm_up_started = threading.Event()


def warm_up_in_background() -> None:
    """In a real server, once per process: import the loaders and load the models and worker
    processes on a thread of their own, as soon as the first person opens any page. The page then
    draws at once, and a person's first file waits only for what is left of the loading (a page's
    own call of a loader waits for the load under way instead of starting a second). Not a daemon
    thread: a process that exits while a model loads in a daemon thread can abort."""
    if _warm_up_started.is_set() or not served_by_a_real_server():
        return
    _warm_up_started.set()

    threading.Thread(target=warm_up, name="moodlens-warm-up").start()
