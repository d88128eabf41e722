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
