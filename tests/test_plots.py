"""The figures built from plain dicts without plotly's validation are valid: validating them
changes nothing (a misspelt key or a bad value would raise or be rewritten)."""

import json

import plotly.graph_objects as go
import pytest

from core import metrics, plots
from core.face.data import EXPRESSIONS


def _song(name: str, windows: int) -> dict:
    return {"file": name, "valence": 0.4, "arousal": 0.7, "mood": "happy / excited",
            "windows": [{"valence": 0.3 + 0.05 * i, "arousal": 0.6, "start_s": 15.0 * i} for i in range(windows)]}


@pytest.mark.parametrize("figure", [
    plots.mood_map([]),
    plots.mood_map([_song("a.mp3", 1), _song("b.mp3", 6)], "Mood map"),
    plots.probability_bars(dict(zip(EXPRESSIONS, [0.1, 0.0, 0.05, 0.6, 0.1, 0.1, 0.05])), "Face 1: happy"),
    plots.probability_bars(dict(zip(EXPRESSIONS, [1 / 7] * 7))),
    plots.confusion_heatmap([[i * 7 + j for j in range(7)] for i in range(7)], EXPRESSIONS, "PublicTest confusion"),
    plots.mood_map([{**_song("c.mp3", 3), "folds": {"models": 5, "points": [[0.4, 0.7]] * 5, "std": [0.02, 0.01]}}],
                   zoom=True),
    plots.mood_over_time([_song("a.mp3", 1), _song("b.mp3", 6)]),
], ids=["empty map", "map", "bars", "bars untitled", "confusion", "zoomed map with folds", "over time"])
def test_an_unvalidated_figure_is_what_plotly_validation_makes_of_it(figure):
    built = figure.to_dict()
    validated = go.Figure(built).to_dict()  # plotly's own checks, on every key and value
    assert json.dumps(validated, sort_keys=True) == json.dumps(built, sort_keys=True)


def test_the_forest_plot_draws_each_interval_around_zero_coloured_by_verdict():
    rows = [{"variant": "a", "difference": 0.02, "low": -0.01, "high": 0.05, "verdict": "no detectable difference",
             "sentence": "a: …"},
            {"variant": "b", "difference": 0.04, "low": 0.02, "high": 0.06, "verdict": "better", "sentence": "b: …"}]
    fig = plots.forest_plot(rows, "accuracy", scale=100, unit=" points")
    by_verdict = {trace.name: trace for trace in fig.data}
    assert set(by_verdict) == {"better", "no detectable difference"}
    better = by_verdict["better"]
    assert list(better.y) == ["b"] and better.marker.color == plots.VERDICT_COLOURS["better"]
    assert better.x[0] - better.error_x.arrayminus[0] == pytest.approx(2.0, rel=1e-6)
    assert better.x[0] + better.error_x.array[0] == pytest.approx(6.0, rel=1e-6)
    assert fig.layout.xaxis.range[0] < 0 < fig.layout.xaxis.range[1]  # zero in view though every interval is above it
    assert any(shape.x0 == 0 == shape.x1 for shape in fig.layout.shapes)
    assert list(fig.layout.yaxis.categoryarray) == ["b", "a"]  # the first row on top
    assert fig.layout.showlegend  # the verdicts' colours are named even when all rows share one


def test_learning_curves_show_a_band_across_runs_where_there_are_several():
    runs = [{"loss": [1.0, 0.6], "val_loss": [1.1, 0.9]}, {"loss": [1.2, 0.5], "val_loss": [1.0, 0.8]}]
    mean = {"loss": [1.1, 0.55], "val_loss": [1.05, 0.85]}
    fig = plots.learning_curves({"a": mean, "b": mean}, bands_by_name={"a": runs}, runs="folds")
    bands = [trace for trace in fig.data if trace.fill == "toself"]
    assert len(bands) == 2 and all(t.name.startswith("a ") for t in bands)  # b has no runs: no band
    assert bands[0].name == "a train: range over 2 folds"
    train = next(t for t in bands if "train" in t.name)
    assert list(train.y) == [1.2, 0.6, 0.5, 1.0]  # highest forward, lowest back
    assert len([t for t in fig.data if t.fill != "toself"]) == 4


def test_the_zoomed_map_holds_every_point_and_the_quadrant_lines_in_a_square():
    song = {**_song("a.mp3", 4), "valence": 0.8, "arousal": 0.75,
            "folds": {"models": 2, "points": [[0.85, 0.8], [0.78, 0.9]], "std": [0.03, 0.05]}}
    x, y = plots.mood_map_range([song])
    assert x[1] - x[0] == pytest.approx(y[1] - y[0], rel=1e-6) and x[1] - x[0] < 1  # square, and zoomed in
    for v, a in [(0.8, 0.75), (0.85, 0.8), (0.78, 0.9), (0.5, 0.5)] + [(w["valence"], w["arousal"]) for w in song["windows"]]:
        assert x[0] <= v <= x[1] and y[0] <= a <= y[1]
    assert 0 <= x[0] and x[1] <= 1 and 0 <= y[0] and y[1] <= 1
    figure = plots.mood_map([song], zoom=True).to_dict()
    assert list(figure["layout"]["xaxis"]["range"]) == x
    assert plots.mood_map([song]).to_dict()["layout"]["xaxis"]["range"] == (0, 1) or \
        list(plots.mood_map([song]).to_dict()["layout"]["xaxis"]["range"]) == [0, 1]
    song_point = figure["data"][-1]
    assert list(song_point["error_x"]["array"]) == [0.03] and list(song_point["error_y"]["array"]) == [0.05]
    # Every quadrant's name is in view, inside its own quadrant.
    names = {a["text"].split()[0]: (a["x"], a["y"]) for a in figure["layout"]["annotations"]}
    assert set(names) == {"Q1", "Q2", "Q3", "Q4"}
    for q, (v, a) in names.items():
        assert x[0] <= v <= x[1] and y[0] <= a <= y[1]
        assert metrics.quadrant(v, a) == int(q[1])


def test_the_live_timeline_has_one_line_per_expression_over_the_last_30_seconds():
    import numpy as np

    from core.face.data import EXPRESSIONS

    times = np.linspace(-30, 0, 61)
    probabilities = np.tile(np.eye(7)[3], (61, 1))
    fig = plots.expression_timeline(times, probabilities, EXPRESSIONS).to_dict()
    assert [t["name"] for t in fig["data"]] == list(EXPRESSIONS)
    assert fig["data"][3]["y"] == [1.0] * 61 and fig["data"][0]["y"] == [0.0] * 61
    assert list(fig["layout"]["xaxis"]["range"]) == [-30.0, 0] and list(fig["layout"]["yaxis"]["range"]) == [0, 1]
    assert all(t["y"] == [] for t in plots.expression_timeline([], np.zeros((0, 7)), EXPRESSIONS).to_dict()["data"])
