"""Shared fixtures: the real data where ../shared is present, and inputs the tests make themselves."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The suite runs in two processes on two cores (the Makefile's -n 2): one thread each for TensorFlow
# and OpenMP/BLAS keeps their thread pools from fighting over the cores (docs/testing.md measures
# it). Only the test processes and the CLIs they start get this: a real server
# (tests/live_server.py) gets the app's own thread settings (webapp/server_setup.py).
TEST_PROCESS_THREADS = {name: "1" for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
                                               "OPENBLAS_NUM_THREADS") if name not in os.environ}
os.environ.update(TEST_PROCESS_THREADS)
os.environ.setdefault("MOODLENS_TEST_THREADS", ",".join(TEST_PROCESS_THREADS))  # what a server drops again

# `slow` (pytest.ini) is set by hand on each test or module that trains a model, starts a real
# `streamlit run` server, drives a browser or takes over ~3 s alone; `make test-fast` leaves those out.

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
MUSIC_DIR = SHARED_DATA / "music"
FER_FILE = SHARED_DATA / "fer2013" / "fer2013.npz"
NO_SHARED = "../shared/data is not beside the checkout"


def require_shared(path: Path = SHARED_DATA) -> None:
    """Tests on the real data need ../shared beside the checkout. CI always has it, so there a
    missing copy fails the test; elsewhere (a checkout on its own) the test skips and says why."""
    if path.exists():
        return
    message = f"{NO_SHARED} ({path} is missing)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message}: CI must have it")
    pytest.skip(message)


def has_shared(path: Path) -> bool:
    """Whether the real data at `path` is there to use (else the test makes its own). Under CI a
    missing copy fails: there the real data must be used."""
    if not path.exists() and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{NO_SHARED} ({path} is missing): CI must have it")
    return path.exists()


def wav_bytes(samples: np.ndarray, sample_rate_hz: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate_hz, format=fmt, subtype=subtype)
    return buffer.getvalue()


def music_like(seconds: float, sample_rate_hz: int = 22050, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A few seconds of chords with a beat: (n,) or (n, channels) float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
    tones = sum(np.sin(2 * np.pi * f * t) for f in rng.choice([220, 277, 330, 440, 554], 3))
    beat = (np.sin(2 * np.pi * 2 * t) > 0.9) * rng.normal(0, 1, len(t))
    y = (0.2 * tones + 0.2 * beat).astype(np.float32)
    y = np.clip(y, -1, 1)
    return y if channels == 1 else np.stack([y] * channels, axis=1)


@pytest.fixture(scope="session")
def song_wav() -> bytes:
    return wav_bytes(music_like(12.0), 22050)


@pytest.fixture(scope="session")
def real_clip() -> tuple[str, bytes]:
    """A real 30-s mp3 from the shared demo clips, else a generated wav."""
    clips = sorted((MUSIC_DIR / "clips").glob("*.mp3"))
    if has_shared(MUSIC_DIR / "clips") and clips:
        return clips[0].name, clips[0].read_bytes()
    return "generated.wav", wav_bytes(music_like(30.0), 22050)


@pytest.fixture(scope="session")
def tiny_music_dir(tmp_path_factory) -> Path:
    """A music folder in the shared layout, 24 generated songs: their audio (songs/<song_id>.wav)
    and the log-mel the recipe makes of it."""
    import librosa

    folder = tmp_path_factory.mktemp("music")
    rng = np.random.default_rng(1)
    ids = [f"MT{i:010d}" for i in range(24)]
    songs = [music_like(8.0 + i % 5, seed=i) for i in range(24)]
    (folder / "songs").mkdir()
    for song_id, y in zip(ids, songs):
        (folder / "songs" / f"{song_id}.wav").write_bytes(wav_bytes(y, 22050))
    # The data set's recipe (../shared/data/music/SOURCE.md): 30 s at 22,050 Hz, 128 mel bands in dB.
    features = np.stack([librosa.power_to_db(librosa.feature.melspectrogram(
        y=librosa.util.fix_length(y, size=661_500), sr=22050, n_fft=2048, hop_length=1024, n_mels=128),
        ref=np.max).T for y in songs])
    np.savez_compressed(folder / "features_logmel.npz", song_id=np.array(ids), logmel=features.astype(np.float16),
                        n_valid_frames=np.full(24, 200, np.int32), n_valid_samples=np.full(24, 200 * 1024, np.int32))
    va = rng.uniform(0.2, 0.8, (24, 2))
    lines = ["song_id,valence,arousal,quadrant"]
    for song_id, (v, a) in zip(ids, va):
        q = (1 if v >= 0.5 else 2) if a >= 0.5 else (4 if v >= 0.5 else 3)
        lines.append(f"{song_id},{v:.4f},{a:.4f},Q{q}")
    (folder / "annotations.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="session")
def tiny_fer_file(tmp_path_factory) -> Path:
    """An npz in the FER2013 layout: 140 generated faces, 7 classes, Training and PublicTest rows."""
    rng = np.random.default_rng(2)
    n = 140
    label = np.arange(n) % 7
    pixels = rng.integers(0, 256, (n, 48, 48)).astype(np.uint8)
    pixels[:, 10:20, :] = (label[:, None, None] * 36).astype(np.uint8)  # a learnable cue
    usage = (np.arange(n) >= 112).astype(np.uint8)
    path = tmp_path_factory.mktemp("fer") / "fer2013.npz"
    np.savez_compressed(path, pixels=pixels, label=label.astype(np.uint8), usage=usage)
    return path


@pytest.fixture(scope="session")
def fer_faces() -> np.ndarray:
    """Some real FER2013 PublicTest faces (48x48 uint8)."""
    require_shared(FER_FILE)
    with np.load(FER_FILE) as npz:
        rows = np.flatnonzero(npz["usage"] == 1)[:400]
        return npz["pixels"][rows]


TINY_SONG_CONFIG = {"conv_filters": [8], "lstm_units": [8, 4], "dense_units": [8], "dense_dropout": [0.1]}
TINY_SONG_TRAINING = {"epochs": 2, "batch_size": 8, "folds": 2, "logmel_epochs": 1}
TINY_FACE_CONFIG = {"blocks": 2, "filters": 4, "dense_units": [8]}
TINY_FACE_TRAINING = {"epochs": 2, "batch_size": 32, "mixed_bfloat16": False}


@pytest.fixture(scope="session")
def song_embedding_cache(tmp_path_factory) -> Path:
    """One musicnn-embedding cache (`--cache`) for every song training of a session on
    tiny_music_dir: the first training computes the songs' embeddings from their audio, the others
    read them (core.song.features.dataset_embeddings keys them by the files and the musicnn model)."""
    return tmp_path_factory.mktemp("song_embeddings")


@pytest.fixture(scope="session")
def tiny_song_model(tiny_music_dir, song_embedding_cache, tmp_path_factory) -> Path:
    from core.song.train import SONG_TRAINING, train_song

    out = tmp_path_factory.mktemp("models") / "tiny_song"
    return train_song(tiny_music_dir, out, dict(TINY_SONG_CONFIG), {**SONG_TRAINING, **TINY_SONG_TRAINING}, seed=3,
                      cache_dir=song_embedding_cache)


@pytest.fixture(scope="session")
def tiny_face_model(tiny_fer_file, tmp_path_factory) -> Path:
    from core.face.train import train_face

    out = tmp_path_factory.mktemp("models") / "tiny_face"
    return train_face(tiny_fer_file, out, dict(TINY_FACE_CONFIG), dict(TINY_FACE_TRAINING), seed=3)


@pytest.fixture(scope="session")
def song_runner():
    """The zoo's default song network (committed, models/song/default.keras), loaded once a session."""
    from core.runner import ModelRunner
    from core.variants.zoo import model_path

    return ModelRunner.load(model_path("song", "default"))


@pytest.fixture(scope="session")
def face_runner():
    """The zoo's default face network (committed, models/face/default.keras), loaded once a session."""
    from core.runner import ModelRunner
    from core.variants.zoo import model_path

    return ModelRunner.load(model_path("face", "default"))


# --- two processes (pytest-xdist, `-n 2` in the Makefile) -----------------------------------------
# A fixture is made once per process that needs it. The tests are handed out in units that share
# what is costly to make: a file with module fixtures (a real server, both CLIs over the hostile
# corpus, a loaded page) is one unit; the files that use the tiny trained models or the tiny songs'
# musicnn embeddings (session fixtures) are one unit together (tests/test_suite_units.py keeps that
# list complete); every other test is a unit of its own, so the two processes stay evenly loaded.
# The heaviest units go out first: the last one to start should be a short one.
SHARED_TRAINING_FIXTURES = ("song_embedding_cache", "tiny_song_model", "tiny_face_model")
TRAINING_FILES = ("tests/song/test_train.py", "tests/test_train.py", "tests/test_evaluate.py",
                  "tests/face/test_ensemble.py")
MODULE_FIXTURE_FILES = frozenset(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py")
                                 if 'scope="module"' in p.read_text(encoding="utf-8"))
# From `pytest --durations`: a scheduling hint only (a stale order costs minutes, never a result).
HEAVIEST_FIRST = ("training", "tests/test_browser.py", "tests/test_browser_design.py", "tests/test_hostile_input.py",
                  "tests/variants/test_design.py", "tests/library/test_library_scan.py",
                  "tests/library/test_library_browser.py", "tests/face/test_served.py")


def xdist_unit(nodeid: str) -> str:
    """The unit of work (run in one process) that a test belongs to."""
    path = nodeid.split("::", 1)[0]
    if path in TRAINING_FILES:
        return "training"
    return path if path in MODULE_FIXTURE_FILES else nodeid


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_unit(nodeid)

        def _assign_work_unit(self, node) -> None:
            rank = {unit: i for i, unit in enumerate(HEAVIEST_FIRST)}
            first = min(self.workqueue, key=lambda unit: rank.get(unit, len(rank)))
            self.workqueue.move_to_end(first, last=False)
            super()._assign_work_unit(node)

    return SharedFixtureUnits(config, log)
