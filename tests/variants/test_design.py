"""Designing a variant: choices checked before training, a sketch that matches Keras, the worker's
streamed epochs and card, the queue (one at a time, cancel within 2 s)."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core import cards
from core.variants import design, design_queue, design_store
from core.variants.zoo import DEFAULT, model_path
from tests.conftest import MUSIC_DIR, has_shared
from tests.waiting import wait_until

RECIPE_KEYS = ("epochs", "batch_size", "learning_rate", "folds", "min_crop_patches", "seed")


# ---------------------------------------------------------------- choices and validation

def test_the_defaults_are_the_zoo_defaults_config():
    card = cards.read_card(model_path("song", DEFAULT))
    assert design.validate("song", {}) == card["config"]
    face = cards.read_card(model_path("face", DEFAULT))
    assert design.validate("face", {}) == face["config"]


BAD_SONG = [
    ({"pooling": "strided"}, "Pooling after each conv block must be one of"),
    ({"pool_size": 9}, "must be between 2 and 4"),
    ({"dropout": 1.5}, "must be between 0 and 0.8"),
    ({"dropout": float("nan")}, "must be between"),
    ({"dropout": "0.3"}, "must be a number"),
    ({"kernel_size": 2.5}, "must be a whole number"),
    ({"spatial_dropout": "yes"}, "must be true or false"),
    ({"batch_norm": 1}, "must be true or false"),
    ({"lstm_units": []}, "takes 1 to 3 entries"),
    ({"lstm_units": [32, 32, 32, 32]}, "takes 1 to 3 entries"),
    ({"conv_filters": "64, 128"}, "must be a list of numbers"),
    ({"conv_filters": [64, 0]}, "each of Conv1D filters per block must be between 4 and 512"),
    ({"dense_units": [64], "dense_dropout": [0.1, 0.2]}, "one dense dropout rate per dense layer"),
    ({"spatial_dropout": True, "dropout": 0.0}, "spatial dropout needs a conv-block dropout rate above 0"),
    ({"conv_filters": [], "pooling": "max"}, "pooling sits after the conv blocks"),
    ({"conv_filters": [], "pooling": "none", "spatial_dropout": True}, "spatial dropout sits after the conv blocks"),
    ({"lstm_units": [512, 512, 512], "bidirectional": True, "summary": "lstm", "dense_units": [1024, 1024],
      "dense_dropout": [0.1, 0.1]}, "over the panel's"),
    ({"input_features": "logmel"}, "unknown choice(s) ['input_features']"),
    ({"__class__": 1}, "unknown choice(s)"),
]


@pytest.mark.parametrize("choices, message", BAD_SONG, ids=[str(c)[:40] for c, _ in BAD_SONG])
def test_a_bad_song_design_gets_a_clear_message_before_training(choices, message):
    with pytest.raises(ValueError) as raised:
        design.validate("song", choices)
    assert message in str(raised.value)


@pytest.mark.parametrize("choices, message", [
    ({"blocks": 6}, "between 1 and 5"), ({"pooling": "none"}, "must be one of max, average, strided"),
    ({"dense_units": [0]}, "between 4 and 2048"), ({"filters": 128, "blocks": 5, "dense_units": [2048]}, "over the panel's"),
])
def test_a_bad_face_design_gets_a_clear_message(choices, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        design.validate("face", choices)


@pytest.mark.parametrize("text", ["__import__('os').system('x')", "1e3", "-5", "0x10", "64;rm", "1,2,a"])
def test_typed_lists_are_parsed_never_evaluated(text):
    with pytest.raises(ValueError, match="is not a"):
        design.parse_numbers(text, int)


def test_typed_lists_parse_numbers():
    assert design.parse_numbers(" 64, 128 ", int) == [64, 128]
    assert design.parse_numbers("0.4 .3, 0", float) == [0.4, 0.3, 0.0]
    assert design.parse_numbers("", int) == []


@pytest.mark.parametrize("name", ["default", "pooling_average", "../evil", "a/b", "", "A", "x" * 41, "-x"])
def test_a_name_that_is_taken_or_not_a_plain_file_name_is_refused(name):
    with pytest.raises(ValueError, match="name"):
        design.check_name(name)


def test_the_page_side_of_the_panel_imports_no_tensorflow():
    code = ("import sys; from webapp import design_panel; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'")
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_face_zoo_designs_cost_hours_on_two_cpus_and_are_refused():
    from core.variants.zoo import ZOO, trained_variants

    zoo = trained_variants("face")
    for choices in ZOO["face"].values():
        estimate = design.estimate_seconds("face", design.validate("face", choices), zoo, threads_here=2)
        assert estimate["seconds"] > 3600


# ---------------------------------------------------------------- the sketch against Keras

SKETCHED = [
    ("song", {}), ("song", {"pooling": "none", "summary": "lstm"}),
    ("song", {"bidirectional": True, "lstm_units": [32, 16, 8], "summary": "lstm", "batch_norm": False}),
    ("song", {"conv_filters": [], "pooling": "none", "dense_units": [], "dense_dropout": []}),
    ("song", {"conv_filters": [16, 32, 64, 128], "pool_size": 3, "summary": "global_max", "spatial_dropout": True}),
    ("face", {}), ("face", {"pooling": "strided", "blocks": 3, "filters": 16}),
    ("face", {"dense_units": [], "convs_per_block": 1, "dropout": 0.0}),
]


@pytest.mark.slow
@pytest.mark.parametrize("task, choices", SKETCHED, ids=[f"{t}-{c}"[:50] for t, c in SKETCHED])
def test_the_sketch_matches_keras_layers_and_count_params(task, choices):
    import numpy as np

    config = design.validate(task, choices)
    if task == "song":
        from core.song.model import build_song_crnn as build
        sketch = design.song_sketch(config)
        shape = (1, design.WINDOW_PATCHES, design.EMBEDDING_DIM)
    else:
        from core.face.model import build_face_cnn as build
        sketch = design.face_sketch(config)
        shape = (1, 48, 48, 1)
    model = build(**config)
    assert sketch["parameters"] == model.count_params()
    assert [r["layer"] for r in sketch["layers"]] == [layer.name for layer in model.layers]
    assert model(np.zeros(shape, np.float32)).shape[-1] == (2 if task == "song" else 7)


# ---------------------------------------------------------------- data for the worker, made here

def fake_song_data(folder: Path, song_ids, targets, quadrants, monkeypatch) -> tuple[Path, Path]:
    """A music folder (annotations.csv, songs/<id>.wav placeholders) and its embedding cache, built
    by the real core.song.features.dataset_embeddings with musicnn replaced by random embeddings
    (musicnn itself is tested in tests/song): -> (data_dir, cache_dir)."""
    from core.song import features, musicnn

    data_dir, cache_dir = folder / "music", folder / "cache"
    (data_dir / "songs").mkdir(parents=True)
    with open(data_dir / "annotations.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["song_id", "valence", "arousal", "quadrant"])
        for s, (v, a), q in zip(song_ids, targets, quadrants):
            writer.writerow([s, f"{v:.4f}", f"{a:.4f}", q])
            (data_dir / "songs" / f"{s}.wav").write_bytes(b"placeholder")
    rng = np.random.default_rng(0)

    def song_patches(data, offset_frames=0, max_patches=features.MAX_PATCHES):
        n = int(rng.integers(4, max_patches + 1))
        return 30.0, np.arange(n) * 3.0, np.zeros((n, 1, 1), np.float32)

    class FakeMusicnn:
        def embeddings(self, x):
            return rng.normal(0, 1, (len(x), design.EMBEDDING_DIM)).astype(np.float32)

    monkeypatch.setattr(features, "song_patches", song_patches)
    monkeypatch.setattr(musicnn, "default_musicnn", lambda: FakeMusicnn())
    features.dataset_embeddings(data_dir, np.asarray(song_ids), cache_dir, log=None)
    monkeypatch.undo()
    return data_dir, cache_dir


def tiny_song_data(folder: Path, monkeypatch, n: int = 40) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    targets = rng.uniform(0.1, 0.9, (n, 2))
    quadrants = [("Q1" if a > 0.5 else "Q4") if v > 0.5 else ("Q2" if a > 0.5 else "Q3") for v, a in targets]
    return fake_song_data(folder, [f"S{i:04d}" for i in range(n)], targets, quadrants, monkeypatch)


def zoo_recipe() -> dict:
    return {k: cards.read_card(model_path("song", DEFAULT))["training"][k] for k in RECIPE_KEYS}


TINY_DESIGN = {"conv_filters": [8], "lstm_units": [8, 4], "dense_units": [8], "dense_dropout": [0.1]}


# ---------------------------------------------------------------- the queue, with a stand-in worker

STAND_IN = """
import json, sys, time
job = json.load(open(sys.argv[1]))
def say(**e): print(json.dumps({"t": time.time(), **e}), flush=True)
say(event="started", folds=2, epochs=job["max_epochs"])
for k in range(2):
    for e in range(job["max_epochs"]):
        time.sleep(0.05)
        say(event="epoch", fold=k, epoch=e, loss=1.0 / (e + 1), val_loss=1.1 / (e + 1))
say(event="done", path=job["out_dir"] + "/" + job["name"] + ".keras")
"""


def stand_in_queue(tmp_path: Path, epochs: int) -> design_queue.TrainingQueue:
    return design_queue.TrainingQueue(tmp_path, tmp_path, tmp_path / "out", zoo_recipe(), limit_s=60,
                                      max_epochs=epochs, command=[sys.executable, "-c", STAND_IN])


@pytest.mark.slow  # three queued jobs one after another (over 3 s)
def test_the_queue_trains_one_at_a_time_and_shows_each_its_place(tmp_path, monkeypatch):
    monkeypatch.setenv("MOODLENS_VARIANTS_DIR", str(tmp_path / "variants"))
    queue = stand_in_queue(tmp_path, epochs=10)
    try:
        jobs = [queue.submit("song", f"v{i}", {}, owner=f"person{i}") for i in range(3)]
        with pytest.raises(ValueError, match="taken"):
            queue.submit("song", "v1", {}, owner="someone")
        wait_until(lambda: jobs[0].status == design_queue.RUNNING, 10)
        assert [queue.position(j.id) for j in jobs] == [0, 1, 2]
        most_running = 0
        deadline = time.time() + 60
        while any(j.active for j in jobs) and time.time() < deadline:
            most_running = max(most_running, sum(j.status == design_queue.RUNNING for j in queue.jobs()))
            time.sleep(0.02)
        assert most_running == 1
        assert [j.status for j in jobs] == [design_queue.DONE] * 3
        assert jobs[0].finished <= jobs[1].started and jobs[1].finished <= jobs[2].started
        assert len(jobs[2].curves["1"]["val_loss"]) == 10
    finally:
        queue.close()


def test_a_waiting_design_can_be_taken_out_of_the_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MOODLENS_VARIANTS_DIR", str(tmp_path / "variants"))
    queue = stand_in_queue(tmp_path, epochs=40)
    try:
        first, second = queue.submit("song", "a", {}, "p1"), queue.submit("song", "b", {}, "p2")
        assert queue.cancel(second.id)
        assert second.status == design_queue.CANCELLED and queue.position(second.id) is None
        queue.cancel(first.id)
        wait_until(lambda: queue._process is None, 10)
        assert second.started is None  # never ran
    finally:
        queue.close()


# ---------------------------------------------------------------- the real worker

@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    try:
        yield tiny_song_data(tmp_path_factory.mktemp("design_data"), monkeypatch)
    finally:
        monkeypatch.undo()


@pytest.mark.slow
def test_the_worker_streams_each_epoch_and_writes_a_card_like_the_zoos(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MOODLENS_VARIANTS_DIR", str(tmp_path / "variants"))
    data_dir, cache_dir = tiny_data
    queue = design_queue.TrainingQueue(data_dir, cache_dir, design_store.variants_dir("song"), zoo_recipe(),
                                       limit_s=300, max_epochs=2)
    try:
        job = queue.submit("song", "tiny", design.validate("song", TINY_DESIGN), owner="test")
        wait_until(lambda: not job.active, 300, interval_s=0.2)
    finally:
        queue.close()
    assert job.status == design_queue.DONE, job.message
    assert sorted(job.curves) == ["0", "1", "2", "3", "4", "final"]
    assert all(len(c["loss"]) == 2 for c in job.curves.values())
    assert all(len(job.curves[str(k)]["val_loss"]) == 2 for k in range(5))
    # each epoch reached the server (where the page reads it every second) within moments of its end
    assert max(seen - ended for _, _, ended, seen in job.arrived) < 4.0
    card = design_store.designed_cards("song")["tiny"]
    zoo_card = cards.read_card(model_path("song", "pooling_average"))
    # "comparison" needs the zoo's folds: these 40 made-up songs are not the zoo's 764
    assert set(card) | {"comparison"} == set(zoo_card)
    assert card["config"] == design.validate("song", TINY_DESIGN)
    assert card["split"]["folds"] == 5 and card["training"]["epochs_run"] == 2
    assert len(card["cross_validation"]["per_fold"]) == 5 and len(card["fold_curves"]) == 5
    assert card["training"]["machine"] and card["training"]["seconds"] > 0
    assert len(design_store.zip_bytes("song", "tiny")) > 1000
    design_store.delete("song", "tiny")
    assert design_store.designed_cards("song") == {}


@pytest.mark.slow
def test_cancel_stops_a_training_worker_within_2_s(tiny_data, tmp_path):
    data_dir, cache_dir = tiny_data
    queue = design_queue.TrainingQueue(data_dir, cache_dir, tmp_path / "out", zoo_recipe(), limit_s=300)
    try:
        job = queue.submit("song", "to_cancel", design.validate("song", TINY_DESIGN), owner="test")
        wait_until(lambda: job.curves or not job.active, 120, interval_s=0.1)
        process = queue._process
        assert process is not None and job.status == design_queue.RUNNING, job.message
        asked = time.monotonic()
        queue.cancel(job.id)
        wait_until(lambda: process.poll() is not None, 2.0, interval_s=0.01)
        assert time.monotonic() - asked < 2.0
        assert job.status == design_queue.CANCELLED
        assert not list((tmp_path / "out").glob("*.json"))
    finally:
        queue.close()


@pytest.mark.slow
def test_the_per_epoch_callback_sees_every_epoch_and_changes_no_training(tiny_data):
    """fit_song_crnn's `on_epoch` (what the worker streams) is called once per epoch with that
    epoch's losses, and a run with it gives the same curves and weights as one without."""
    from core.song.train import fit_song_crnn, song_training_data
    from core.variants.design_worker import fit_fold

    data_dir, cache_dir = tiny_data
    data = song_training_data(data_dir, cache_dir)
    config = design.validate("song", TINY_DESIGN)
    training = {**zoo_recipe(), "epochs": 2}
    train, test = np.arange(30), np.arange(30, 40)
    theirs, their_curves, _ = fit_song_crnn(config, training, data, train, 7, test)
    seen = []
    ours, our_curves, _ = fit_fold(config, training, data, train, 7, test, lambda *e: seen.append(e))
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(our_curves[key], their_curves[key], rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert [e[0] for e in seen] == [0, 1]
    assert [e[1] for e in seen] == pytest.approx(our_curves["loss"], rel=1e-9)
    assert [e[2] for e in seen] == pytest.approx(our_curves["val_loss"], rel=1e-9)


# ---------------------------------------------------------------- joining the comparison

def test_a_designed_variant_on_the_zoos_folds_gets_verdicts_holm_corrected_with_the_zoo():
    from core.variants import verdicts
    from core.variants.zoo import trained_variants

    zoo = trained_variants("song")
    twin = cards.Card.from_dict({**zoo["dropout_0.1"].to_dict(), "name": "my_twin"})
    merged = design_store.with_designed("song", zoo, {"my_twin": twin})
    assert set(merged) == set(zoo) | {"my_twin"}
    assert verdicts.stale_comparisons(merged) == []
    entry = merged["my_twin"]["comparison"]["metrics"]["valence_r"]
    assert entry["difference"]["value"] == pytest.approx(merged["dropout_0.1"]["comparison"]["metrics"]["valence_r"]
                                                         ["difference"]["value"])
    assert f"over the {len(zoo)} variants" in merged[DEFAULT]["comparison"]["method"]
    assert "my_twin" in [r["variant"] for r in verdicts.forest_rows(merged, "valence_r")]
    # the shipped cards are not touched
    assert "my_twin" not in json.dumps(cards.read_card(model_path("song", DEFAULT)).to_dict()["comparison"])


def test_a_designed_variant_on_other_folds_is_left_out_of_the_verdicts():
    from core.variants.zoo import trained_variants

    zoo = trained_variants("song")
    other = zoo["dropout_0.1"].to_dict()
    other = cards.Card.from_dict({**other, "name": "elsewhere", "split": {**other["split"], "fold_song_ids": [["x"]]}})
    kept, left = design_store.comparable(zoo, {"elsewhere": other})
    assert kept == {} and "other songs or folds" in left["elsewhere"]
