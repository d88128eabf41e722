"""`python -m core.library scan`: every song scored, every bad file listed, a rerun skips what is
done, a kill loses at most one batch, and Ray's path writes the same rows."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from core.library import scan as library_scan
from core.library import store
from tests.conftest import ROOT
from tests.library.library_files import music_folder

pytestmark = pytest.mark.slow  # each loads the song models (about 20 s) or starts a scan command


@pytest.fixture(scope="module")
def scorer():
    return library_scan.SongScorer.load()


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, scorer):
    folder = tmp_path_factory.mktemp("music")
    placed = music_folder(folder)
    out = tmp_path_factory.mktemp("out") / "library.parquet"
    summary = library_scan.scan(str(folder), str(out), scorer, batch_size=4, progress=False)
    return folder, out, placed, summary


def _command(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "core.library", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_rows_hold_the_mood_the_song_page_gives(scanned, scorer):
    from core.song.predict import predict_song

    folder, out, placed, summary = scanned
    songs = store.read_songs(str(out)).to_pandas().set_index("path")
    assert summary["files"] == len(placed["songs"]) + len(placed["failures"])
    assert sorted(songs.index) == placed["songs"]
    first = placed["songs"][0]
    expected = predict_song(scorer.model, (folder / first).read_bytes(), fold_runners=scorer.folds)
    row = songs.loc[first]
    assert row["valence"] == pytest.approx(expected["valence"], abs=1e-6)
    assert row["arousal_sd"] == pytest.approx(expected["folds"]["std"][1], abs=1e-6)
    assert row["quadrant"] == expected["quadrant"] and list(row["tags"]) == [t["tag"] for t in expected["tags"]]
    assert len(row["embedding"]) == 250 and row["model_sha256"] == scorer.model_sha256
    assert set(songs["folder"]) == {"rock", "rock/live"}


def test_bad_files_are_listed_with_a_reason_and_the_run_goes_on(scanned):
    folder, out, placed, summary = scanned
    failures = store.read_failures(str(out)).to_pandas().set_index("path")
    assert sorted(failures.index) == placed["failures"] and summary["failed"] == len(placed["failures"])
    assert "over the scan's limit" in failures.loc["huge.wav", "reason"]
    assert "empty" in failures.loc["empty.wav", "reason"]
    assert failures["reason"].str.len().min() > 10


def test_a_rerun_skips_everything_and_is_fast(scanned):
    folder, out, placed, _ = scanned
    started = time.monotonic()
    result = _command("scan", str(folder), "--out", str(out), "--quiet")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["pending"] == 0 and summary["already_scored"] == summary["files"]
    assert took < 10  # the bound is 5 s on an idle machine; this one is shared


def test_a_changed_file_is_scored_again(tmp_path, scanned, scorer):
    folder, out, placed, _ = scanned
    copy = tmp_path / "music"
    import shutil

    shutil.copytree(folder, copy, symlinks=True)
    dataset = tmp_path / "library.parquet"
    shutil.copytree(out, dataset)
    (dataset / store.META).write_text(json.dumps({"root": str(copy), "model_sha256": scorer.model_sha256}))
    a, b = placed["songs"][:2]
    (copy / a).write_bytes((copy / b).read_bytes())
    summary = library_scan.scan(str(copy), str(dataset), scorer, progress=False)
    assert summary["pending"] == 1 and summary["scored"] == 1
    songs = store.read_songs(str(dataset)).to_pandas().set_index("path")
    assert len(songs) == len(placed["songs"]) and songs.loc[a, "sha256"] == songs.loc[b, "sha256"]


def test_a_kill_mid_run_loses_at_most_one_batch_and_the_rerun_completes(tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    placed = music_folder(folder, songs=10)
    out = tmp_path / "library.parquet"
    command = [sys.executable, "-m", "core.library", "scan", str(folder), "--out", str(out), "--quiet",
               "--batch", "2", "--jobs", "1"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob("part-*.parquet")) and time.monotonic() < deadline:
            assert process.poll() is None, "the scan ended before its first batch"
            time.sleep(0.2)
        assert list(out.glob("part-*.parquet")), "no batch committed in time"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    committed = len(store.read_songs(str(out))) + len(store.read_failures(str(out)))
    assert committed >= 2
    total = len(placed["songs"]) + len(placed["failures"])
    result = _command("scan", str(folder), "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["already_scored"] == committed and summary["pending"] == total - committed
    songs = store.read_songs(str(out)).to_pandas()
    assert sorted(songs["path"]) == placed["songs"]
    assert len(store.read_table(str(out))) == len(placed["songs"])  # nothing scored twice


def test_the_ray_path_gives_the_same_rows(tmp_path, scanned):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -r requirements-scale.txt")
    folder, out, placed, _ = scanned
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}})
    try:
        summary = library_scan.scan(str(folder), str(tmp_path / "ray.parquet"), ray_address="auto", progress=False)
    finally:
        ray.shutdown()
    assert summary["path"] == "ray" and summary["failed"] == len(placed["failures"])
    local = store.read_songs(str(out)).to_pandas().sort_values("path").reset_index(drop=True)
    remote = store.read_songs(str(tmp_path / "ray.parquet")).to_pandas().sort_values("path").reset_index(drop=True)
    assert list(local["path"]) == list(remote["path"])
    for column in ("size", "sha256", "quadrant", "mood", "model_sha256", "folder"):
        assert list(local[column]) == list(remote[column]), column
    for column in ("duration_s", "valence", "arousal", "valence_sd", "arousal_sd"):
        assert np.allclose(local[column], remote[column], atol=1e-5), column
    assert np.allclose(np.stack(local["embedding"]), np.stack(remote["embedding"]), atol=1e-5)
    assert [list(t) for t in local["tags"]] == [list(t) for t in remote["tags"]]
    failures = store.read_failures(str(tmp_path / "ray.parquet")).to_pandas()
    assert sorted(failures["path"]) == placed["failures"]
