"""Serving never imports TensorFlow or Keras (issue 24): the commands, the server's loading of every
model a page serves, and the worker processes. Each check runs in a fresh process, and a planted
import of TensorFlow shows that the check can see one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import MUSIC_DIR, ROOT, require_shared

FRAMEWORKS = ("tensorflow", "keras")


def frameworks_loaded() -> list[str]:
    """Run in a worker process: which of the frameworks it has imported."""
    return [name for name in FRAMEWORKS if name in sys.modules]


def _run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code + "\nimport json, sys\n"
                           f"print(json.dumps([n for n in {FRAMEWORKS!r} if n in sys.modules]))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # fresh processes that load every served model
def test_the_commands_serve_songs_and_faces_without_tensorflow(tmp_path):
    require_shared(MUSIC_DIR)
    clip = sorted((MUSIC_DIR / "clips").glob("*.mp3"))[0]
    picture = tmp_path / "grey.png"
    code = (f"import cv2, numpy as np; cv2.imwrite({str(picture)!r}, np.full((240, 320, 3), 128, np.uint8))\n"
            "from core.predict import main\n"
            f"assert main(['song', {str(clip)!r}]) == 0\n"
            f"assert main(['face', {str(picture)!r}]) == 0\n")
    assert _run(code) == []
    assert "tensorflow" in _run(code + "import tensorflow\n")  # the check sees a planted import


@pytest.mark.slow  # a fresh process that loads every model the pages serve
def test_the_server_loads_every_served_model_without_tensorflow():
    code = ("import logging; logging.disable(logging.WARNING)\n"
            "from webapp import loaders\n"
            "loaders.warm_up()\n"
            "from core import cards\n"
            "assert loaders._load_served(str(cards.DEFAULT_MODELS['song']), 'song') is not None\n")
    assert _run(code) == []


@pytest.mark.slow  # starts worker processes
def test_the_worker_processes_never_import_tensorflow():
    from core.face.workers import PictureWorkers
    from core.song.workers import SongFeatureWorkers

    for pool in (SongFeatureWorkers(1), PictureWorkers(1)):
        try:
            assert pool.run(frameworks_loaded) == []
        finally:
            pool.close()
