"""core/runner.py: a loaded model called safely from several threads, traced once, with Monte Carlo dropout."""

import numpy as np

from core.face.model import build_face_cnn
from core.runner import ModelRunner
from core.song import features as song_features
from core.song import musicnn


def test_the_runner_is_safe_to_call_from_several_threads(song_runner):
    from concurrent.futures import ThreadPoolExecutor

    x = np.random.default_rng(0).normal(size=(4, song_features.WINDOW_PATCHES, musicnn.EMBEDDING_DIM))
    expected = song_runner(x)
    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(lambda k: song_runner(x[k:k + 1]), [0, 1, 2, 3] * 5))
    for k, out in enumerate(outputs):
        np.testing.assert_allclose(out[0], expected[k % 4], rtol=1e-4, atol=1e-5)


def test_monte_carlo_dropout_spreads_predictions_but_plain_calls_do_not(song_runner):
    x = np.random.default_rng(1).normal(size=(2, song_features.WINDOW_PATCHES, musicnn.EMBEDDING_DIM))
    samples = song_runner.mc_dropout(x, passes=8)
    assert samples.shape == (8, 2, 2)
    assert samples.std(axis=0).min() > 0  # dropout on: the passes differ
    np.testing.assert_allclose(song_runner(x), song_runner(x))  # plain calls stay deterministic
    # the passes centre near the plain prediction (dropout is unbiased in expectation)
    assert np.abs(samples.mean(axis=0) - song_runner(x)).max() < 5 * samples.std(axis=0).max() + 1e-3


def test_each_runner_is_traced_once_whatever_the_batch_and_passes():
    """One trace per runner (and one for its Monte Carlo copy), for any batch size or number of
    passes: why core.runner may drop TensorFlow's retracing warning about many runners. (A small
    face network with dropout: tracing depends on the input signature, not on the weights.)"""
    runners = [ModelRunner(build_face_cnn(blocks=2, filters=4, dense_units=(8,), dropout=0.5), {}) for _ in range(6)]
    for runner in runners:
        for batch in (1, 3, 8):
            runner(np.zeros((batch, 48, 48, 1), np.float32))
        for passes in (1, 5, 20):
            runner.mc_dropout(np.zeros((2, 48, 48, 1), np.float32), passes)
        assert runner._infer.experimental_get_tracing_count() == 1
        assert runner._mc_infer.experimental_get_tracing_count() == 1


def test_tensorflow_s_retracing_warning_about_many_runners_is_dropped(caplog):
    import logging

    from core.tf_runtime import import_keras

    import_keras()
    logger = logging.getLogger("tensorflow")
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        logger.warning("5 out of the last 5 calls to <function <lambda>> triggered tf.function retracing.")
        logger.warning("another warning")
    assert [r.getMessage() for r in caplog.records] == ["another warning"]
