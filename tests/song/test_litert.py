"""core/litert.py and core/song/export.py: the song path served by LiteRT gives Keras's answers
(within 1e-4 on valence/arousal), for every window length, and imports no TensorFlow."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from core import cards
from core.errors import ModelFileError
from core.litert import LiteRTModel
from core.song import musicnn
from tests.conftest import MUSIC_DIR, ROOT, require_shared

TOLERANCE = 1e-4          # valence/arousal
EMBEDDING_TOLERANCE = 5e-5  # musicnn's penultimate layer (values within +-3) and tags
ENSEMBLE = cards.MODELS_DIR / "song" / "ensemble.keras"
FOLD = cards.MODELS_DIR / "song" / "folds" / "default" / "fold_0.keras"


@pytest.fixture(scope="module")
def real_patches() -> np.ndarray:
    """Log-mel patches of three shared clips and two whole songs, as the app cuts them: (p, 187, 96)."""
    require_shared(MUSIC_DIR)
    from core.song import features

    files = sorted((MUSIC_DIR / "clips").glob("*.mp3"))[:3] + sorted((MUSIC_DIR / "songs").glob("*"))[:2]
    return np.concatenate([features.song_patches(p.read_bytes())[2] for p in files])


@pytest.fixture(scope="module")
def real_embeddings(real_patches) -> np.ndarray:
    """Their musicnn embeddings through the Keras model (p, 250)."""
    return musicnn.default_musicnn().embeddings(real_patches)


def _windows(embeddings: np.ndarray, length: int, batch: int) -> np.ndarray:
    starts = np.linspace(0, len(embeddings) - length, batch).round().astype(int)
    return embeddings[starts[:, None] + np.arange(length)].astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("path", [ENSEMBLE, FOLD], ids=["ensemble", "fold_model"])
def test_shipped_song_models_match_keras_for_every_window_length(path, real_embeddings):
    model, _ = cards.load_model(path)
    served = LiteRTModel.load(path)
    for length in range(1, 11):
        for batch in (1, 8):
            x = _windows(real_embeddings, length, batch)
            expected = model(x, training=False).numpy()
            np.testing.assert_allclose(served(x), expected, atol=TOLERANCE, rtol=0,
                                       err_msg=f"{path.name}: {batch} windows of {length} patches")


@pytest.mark.slow
def test_musicnn_on_litert_matches_keras_down_to_valence_and_arousal(real_patches):
    keras_embeddings = musicnn.default_musicnn().embeddings(real_patches)
    litert_embeddings = musicnn.LiteRTMusicnn.load().embeddings(real_patches)
    np.testing.assert_allclose(litert_embeddings, keras_embeddings, atol=EMBEDDING_TOLERANCE, rtol=0)
    ensemble = LiteRTModel.load(ENSEMBLE)
    for length in (1, 4, 10):
        np.testing.assert_allclose(ensemble(_windows(litert_embeddings, length, 8)),
                                   ensemble(_windows(keras_embeddings, length, 8)), atol=TOLERANCE, rtol=0)


def _tiny_crnn(variant: dict):
    from core.song.model import build_song_crnn

    model = build_song_crnn(**{"conv_filters": (8, 16), "lstm_units": (12, 6), "dense_units": (8, 4),
                               "dense_dropout": (0.2, 0.1), **variant})
    rng = np.random.default_rng(1)
    model.get_layer("standardize").adapt(rng.normal(0.5, 2.0, (64, 1, 250)).astype(np.float32))
    for layer in model.layers:  # batch normalisation away from its identity start
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.3, beta.shape),
                               rng.normal(0, 0.3, mean.shape), rng.uniform(0.5, 2.0, variance.shape)])
    return model


# The default's architecture in make test-fast; every other one (about a second each) in make test.
@pytest.mark.parametrize("name", [name if name == "default" else pytest.param(name, marks=pytest.mark.slow)
                                  for name in sorted(__import__("core.variants.zoo", fromlist=["ZOO"]).ZOO["song"])])
def test_every_zoo_architecture_exports_and_matches_keras(name, tmp_path):
    from core.song.export import crnn_function, crnn_layers
    from core.litert import export_litert
    from core.variants.zoo import ZOO

    model = _tiny_crnn(ZOO["song"][name])
    out = tmp_path / f"{name}.tflite"
    export_litert(crnn_function(crnn_layers(model)).get_concrete_function(), out)
    served = LiteRTModel(out.read_bytes())
    rng = np.random.default_rng(2)
    for length in range(1, 11):
        for batch in (1, 3):
            x = rng.normal(0.5, 2.0, (batch, length, 250)).astype(np.float32)
            np.testing.assert_allclose(served(x), model(x, training=False).numpy(), atol=TOLERANCE, rtol=0,
                                       err_msg=f"{name}: {batch} x {length} patches")


def test_a_tflite_that_does_not_match_its_card_is_refused(tmp_path):
    for suffix in (".tflite", ".json"):
        shutil.copy(ENSEMBLE.with_suffix(suffix), tmp_path / f"ensemble{suffix}")
    LiteRTModel.load(tmp_path / "ensemble.keras")  # the copy as shipped loads
    data = bytearray((tmp_path / "ensemble.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "ensemble.tflite").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="does not match its card"):
        LiteRTModel.load(tmp_path / "ensemble.keras")
    (tmp_path / "ensemble.tflite").unlink()
    with pytest.raises(ModelFileError, match="is missing"):
        LiteRTModel.load(tmp_path / "ensemble.keras")


def test_the_card_records_the_tflite_it_ships_with():
    for path in (ENSEMBLE, FOLD, musicnn.MODEL_PATH):
        entry = cards.read_card(path)["litert_file"]
        tflite = path.parent / entry["name"]
        assert entry["sha256"] == cards.sha256_file(tflite) and entry["size_bytes"] == tflite.stat().st_size
        assert entry["size_bytes"] < 15_000_000


def test_sessions_calling_at_once_get_their_own_answers():
    served = LiteRTModel.load(ENSEMBLE, max_interpreters=2)
    rng = np.random.default_rng(3)
    inputs = [rng.normal(0, 1, (1 + i % 3, 1 + i % 10, 250)).astype(np.float32) for i in range(12)]
    expected = [served(x) for x in inputs]
    results, errors = [None] * len(inputs), []

    def work(i):
        try:
            for _ in range(5):
                results[i] = served(inputs[i])
                np.testing.assert_allclose(results[i], expected[i], rtol=0, atol=1e-6)  # its own, not another's
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and all(not t.is_alive() for t in threads)


def test_a_wrong_input_shape_is_named():
    served = LiteRTModel.load(ENSEMBLE)
    with pytest.raises(ValueError, match="takes"):
        served(np.zeros((1, 4, 12), np.float32))


def test_the_litert_song_path_imports_neither_tensorflow_nor_keras():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from core import litert
        from core.song import features, musicnn, predict
        from core.cards import MODELS_DIR

        embeddings = musicnn.LiteRTMusicnn.load().embeddings(np.zeros((2, 187, 96), np.float32))
        _, x = features.windows(embeddings, np.zeros(2))
        litert.LiteRTModel.load(MODELS_DIR / "song" / "ensemble.keras")(x)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
        print("LOADED", loaded)
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED []" in done.stdout, done.stdout
