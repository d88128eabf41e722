import json
import shutil

import numpy as np
import pytest

from core.song.data import load_annotations
from core import metrics
from core.evaluate import main as evaluate_main
from core.runner import ModelRunner
from core.song.predict import predict_song


@pytest.mark.slow  # trains a tiny model (session fixture)
def test_song_evaluation_prints_the_metrics_object(tiny_song_model, tiny_music_dir, capsys):
    assert evaluate_main(["song", "--data", str(tiny_music_dir), "--model", str(tiny_song_model)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 24 and 0 <= result["quadrant_accuracy"] <= 1
    assert set(result["valence"]) == set(result["arousal"]) == {"r", "r2", "ccc", "rmse"}


@pytest.mark.slow  # trains a tiny model (session fixture)
def test_song_evaluation_scores_each_songs_audio_as_the_app_does_without_the_stored_log_mel(
        tiny_song_model, tiny_music_dir, tmp_path, capsys):
    folder = tmp_path / "music"
    shutil.copytree(tiny_music_dir, folder, ignore=shutil.ignore_patterns("features_logmel.npz"))
    song_id, targets, _ = load_annotations(folder)
    runner = ModelRunner.load(tiny_song_model)
    app = [predict_song(runner, (folder / "songs" / f"{s}.wav").read_bytes()) for s in song_id]
    expected = metrics.song_metrics(targets, np.array([[r["valence"], r["arousal"]] for r in app]))
    # The Keras file, as the runner above: a tiny model's predictions are nearly constant, so its r
    # would magnify LiteRT's float32 differences (tests/song/test_litert.py holds those to 1e-4).
    assert evaluate_main(["song", "--data", str(folder), "--model", str(tiny_song_model), "--runtime", "keras"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["valence"] == pytest.approx(expected["valence"], abs=1e-6)
    assert result["arousal"] == pytest.approx(expected["arousal"], abs=1e-6)
    assert result["quadrant_accuracy"] == pytest.approx(expected["quadrant_accuracy"], abs=1e-12)
    # An unreadable or missing song is skipped and named: tests/song/test_decode.py
    # (test_evaluate_skips_and_names_unreadable_and_missing_songs).


@pytest.mark.slow  # trains a tiny model (session fixture)
def test_face_evaluation_scores_rows_not_in_training_by_default(tiny_face_model, tiny_fer_file, capsys):
    # Training wrote the .tflite the app serves: scored on LiteRT by default, the .keras with --runtime keras.
    assert evaluate_main(["face", "--data", str(tiny_fer_file), "--model", str(tiny_face_model)]) == 0
    served = json.loads(capsys.readouterr().out)
    assert evaluate_main(["face", "--data", str(tiny_fer_file), "--model", str(tiny_face_model), "--runtime", "keras"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert served["confusion"] == result["confusion"]
    assert result["n"] == 28 and len(result["per_class_recall"]) == 7
    assert sum(map(sum, result["confusion"])) == 28
    assert evaluate_main(["face", "--data", str(tiny_fer_file), "--model", str(tiny_face_model),
                          "--usage", "0", "--runtime", "keras"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 112


def test_evaluation_of_a_missing_model_fails_with_a_message(tiny_music_dir, tmp_path, capsys):
    assert evaluate_main(["song", "--data", str(tiny_music_dir), "--model", str(tmp_path / "no.keras")]) == 2
    assert "no.keras is missing" in capsys.readouterr().err
