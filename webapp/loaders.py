"""The app's models, loaded once per server process and shared by every session."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np
import streamlit as st

from core import cards
from core.face import ensemble as face_ensemble
from core.face import detect
from core.face import saliency
from core.errors import ModelFileError
from core.variants.compare import INPUT_SHAPES
from core.face.ensemble import FaceEnsemble
from core.runner import ModelRunner
from core.variants.zoo import fold_model_paths, model_path
from core.face.workers import PictureWorkers
from core.song.workers import SongFeatureWorkers
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
    steps = [(_song_feature_workers,), (_load, str(cards.DEFAULT_MODELS["song"]), "song"),
             *[(_load, str(path), "song") for path in fold_model_paths("song", "default")],
             (_picture_workers,), (_load_face_ensemble, str(face_ensemble.ENSEMBLE_CARD))]
    for load, *args in steps:
        try:
            load(*args)
        except Exception as e:  # noqa: BLE001 - reported by the page that needs it
            log.warning("warm-up: %s%s failed (the page will say why): %s", load.__name__, tuple(args), e)
            continue
        with _ready_lock:
            _ready.add((load.__name__, tuple(args)))


@st.cache_resource(show_spinner=False)
def _load(path: str, task: str) -> ModelRunner:
    """The task's model at `path`, traced (its first call), and for faces the detectors, made
    before anyone waits on them."""
    runner = ModelRunner.load(Path(path))
    runner(np.zeros((1, *INPUT_SHAPES[task]), np.float32))
    if task == "face":
        detect.prepare_detectors()
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
    """The Face page's ensemble (its card at `card_path`), each member traced, and the detectors."""
    ensemble = FaceEnsemble.load(Path(card_path))
    ensemble(np.zeros((1, *INPUT_SHAPES["face"]), np.float32))
    detect.prepare_detectors()
    # "Where the model looked" is traced in the background: the page does not wait for it, and the
    # first map asked for is as quick as the next. Not a daemon: a process that exits while TensorFlow
    # traces in a daemon thread can abort ("terminate called ...") instead of exiting.
    threading.Thread(target=saliency.prepare, args=(ensemble,), name="prepare-saliency").start()
    keep_loaded_objects_out_of_gc()
    return ensemble


def face_page_scorer() -> FaceEnsemble:
    """What the Face page runs: the ensemble its card names (core.face.ensemble.ENSEMBLE_CARD); on a
    missing or altered file, a clear message and the page stops."""
    try:
        return _loaded(_load_face_ensemble, str(face_ensemble.ENSEMBLE_CARD), message="Loading the models…")
    except ModelFileError as e:
        st.error(f"This page cannot run: {e}")
        st.stop()


def default_runner(task: str) -> ModelRunner:
    """The task's default model; on a missing or corrupt file, a clear message and the page stops."""
    try:
        return _loaded(_load, str(cards.DEFAULT_MODELS[task]), task, message="Loading the model…")
    except ModelFileError as e:
        st.error(f"This page cannot run: {e}")
        st.stop()


@st.cache_resource(show_spinner="Preparing Monte Carlo dropout…")
def _with_mc_dropout(path: str, task: str) -> ModelRunner:
    """The runner of `path`, its dropout-on copy traced once (the first trace takes seconds)."""
    runner = _load(path, task)
    runner.mc_dropout(np.zeros((1, *INPUT_SHAPES[task]), np.float32), 1)
    keep_loaded_objects_out_of_gc()
    return runner


def variant_runners(task: str, names: list[str]) -> dict[str, ModelRunner]:
    """The named variants of the task's zoo, ready for Monte Carlo dropout. A variant whose file is
    missing or corrupt is left out, with a message naming the file."""
    runners = {}
    for name in names:
        try:
            runners[name] = _with_mc_dropout(str(model_path(task, name)), task)
        except ModelFileError as e:
            st.error(f"Variant **{name}** is left out: {e}")
    return runners


def fold_runners(task: str, names: list[str]) -> dict[str, list[ModelRunner]]:
    """Each named variant's cross-validation fold models (core.variants.zoo.fold_model_paths), for the
    spread of a prediction; a variant without them, or with a missing or corrupt one, gets none
    (with a message naming the file)."""
    runners = {}
    for name in names:
        try:
            found = [_loaded(_load, str(path), task, message="Loading the fold models…")
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
    thread: a process that exits while TensorFlow traces in a daemon thread can abort."""
    if _warm_up_started.is_set() or not served_by_a_real_server():
        return
    _warm_up_started.set()

    threading.Thread(target=warm_up, name="moodlens-warm-up").start()
