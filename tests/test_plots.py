"""The figures built from plain dicts without plotly's validation are valid: validating them
changes nothing (a misspelt key or a bad value would raise or be rewritten)."""

import json

import plotly.graph_objects as go
import pytest

from core import plots
from core.datasets import EXPRESSIONS


def _song(name: str, windows: int) -> dict:
    return {"file": name, "valence": 0.4, "arousal": 0.7, "mood": "happy / excited",
            "windows": [{"valence": 0.3 + 0.05 * i, "arousal": 0.6, "start_s": 15.0 * i} for i in range(windows)]}


@pytest.mark.parametrize("figure", [
    plots.mood_map([]),
    plots.mood_map([_song("a.mp3", 1), _song("b.mp3", 6)], "Mood map"),
    plots.probability_bars(dict(zip(EXPRESSIONS, [0.1, 0.0, 0.05, 0.6, 0.1, 0.1, 0.05])), "Face 1: happy"),
    plots.probability_bars(dict(zip(EXPRESSIONS, [1 / 7] * 7))),
    plots.confusion_heatmap([[i * 7 + j for j in range(7)] for i in range(7)], EXPRESSIONS, "PublicTest confusion"),
], ids=["empty map", "map", "bars", "bars untitled", "confusion"])
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
    assert better.x[0] - better.error_x.arrayminus[0] == pytest.approx(2.0)
    assert better.x[0] + better.error_x.array[0] == pytest.approx(6.0)
    assert fig.layout.xaxis.range[0] < 0 < fig.layout.xaxis.range[1]  # zero in view though every interval is above it
    assert any(shape.x0 == 0 == shape.x1 for shape in fig.layout.shapes)
    assert list(fig.layout.yaxis.categoryarray) == ["b", "a"]  # the first row on top


def test_learning_curves_show_a_band_across_runs_where_there_are_several():
    runs = [{"loss": [1.0, 0.6], "val_loss": [1.1, 0.9]}, {"loss": [1.2, 0.5], "val_loss": [1.0, 0.8]}]
    mean = {"loss": [1.1, 0.55], "val_loss": [1.05, 0.85]}
    fig = plots.learning_curves({"a": mean, "b": mean}, bands_by_name={"a": runs})
    bands = [trace for trace in fig.data if trace.fill == "toself"]
    assert len(bands) == 2 and all(t.name.startswith("a ") for t in bands)  # b has no runs: no band
    train = next(t for t in bands if "train" in t.name)
    assert list(train.y) == [1.2, 0.6, 0.5, 1.0]  # highest forward, lowest back
    assert len([t for t in fig.data if t.fill != "toself"]) == 4
