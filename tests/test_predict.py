"""`python -m core.predict`: one JSON line per file, one error line per refused file (core/predict.py).
The committed zoo defaults stand in for "a model file" (no training needed)."""

import json

import cv2
import numpy as np

from core.predict import main as predict_main
from core.variants.zoo import model_path
from tests.conftest import music_like, wav_bytes


def test_song_cli_prints_one_json_line_per_file(tmp_path, capsys):
    good = tmp_path / "song.wav"
    good.write_bytes(wav_bytes(music_like(4.0), 22050))
    assert predict_main(["song", str(good), str(good), "--model", str(model_path("song", "default"))]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    result = json.loads(lines[0])
    assert {"file", "valence", "arousal", "quadrant", "windows", "tags"} <= set(result)
    assert set(result["windows"][0]) == {"start_s", "valence", "arousal"}


def test_song_cli_fails_with_a_one_line_error_on_bad_files(tmp_path, capsys):
    bad = tmp_path / "notes.mp3"
    bad.write_text("not audio")
    assert predict_main(["song", str(bad), str(tmp_path / "missing.wav"), "--model", str(model_path("song", "default"))]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith(f"error: {bad}: This file could not be read as audio")
    assert "No such file" in err[1]


def test_face_cli_prints_json_and_refuses_a_non_image(tmp_path, capsys):
    photo = tmp_path / "blank.jpg"
    photo.write_bytes(cv2.imencode(".jpg", np.full((120, 160, 3), 200, np.uint8))[1].tobytes())
    assert predict_main(["face", str(photo), "--model", str(model_path("face", "default"))]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == []
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG but not really")
    assert predict_main(["face", str(bad), "--model", str(model_path("face", "default"))]) == 1
    assert "not an image" in capsys.readouterr().err
