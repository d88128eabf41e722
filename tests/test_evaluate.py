import json

from core.evaluate import main as evaluate_main


def test_song_evaluation_prints_the_metrics_object(tiny_song_model, tiny_music_dir, capsys):
    assert evaluate_main(["song", "--data", str(tiny_music_dir), "--model", str(tiny_song_model)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 24 and 0 <= result["quadrant_accuracy"] <= 1
    assert set(result["valence"]) == set(result["arousal"]) == {"r", "r2", "ccc", "rmse"}


def test_face_evaluation_scores_rows_not_in_training_by_default(tiny_face_model, tiny_fer_file, capsys):
    assert evaluate_main(["face", "--data", str(tiny_fer_file), "--model", str(tiny_face_model)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 28 and len(result["per_class_recall"]) == 7
    assert sum(map(sum, result["confusion"])) == 28
    assert evaluate_main(["face", "--data", str(tiny_fer_file), "--model", str(tiny_face_model),
                          "--usage", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 112


def test_evaluation_of_a_missing_model_fails_with_a_message(tiny_music_dir, tmp_path, capsys):
    assert evaluate_main(["song", "--data", str(tiny_music_dir), "--model", str(tmp_path / "no.keras")]) == 2
    assert "no.keras is missing" in capsys.readouterr().err
