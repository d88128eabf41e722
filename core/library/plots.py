"""The library's mood map: every song a WebGL point (tens of thousands draw in the browser), on the
Song page's map (core.plots' quadrants, lines and axes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.plots import mood_map_layout
from core.text import plotly_text

QUADRANT_COLOURS = {"Q1": "#e6a817", "Q2": "#d62728", "Q3": "#1f77b4", "Q4": "#2ca02c"}


def library_map(songs: pd.DataFrame, shown: np.ndarray, highlight: np.ndarray | None = None,
                path: np.ndarray | None = None, title: str = "Your library on the mood map") -> go.Figure:
    """The songs at indices `shown` as points coloured by quadrant (one Scattergl trace a quadrant,
    each point's customdata its row index, for selections); `highlight` (songs like this, a
    lasso's songs) drawn ringed on top; `path` (a mood-path playlist) as a numbered line.

    Paths are shown as text in the hover (escaped: Plotly reads HTML in it) and passed as data,
    never inside the template. Built from plain dicts without plotly's validation, as core.plots."""
    traces = []
    shown = np.asarray(shown, int)
    quadrants = songs["quadrant"].to_numpy()[shown]
    for quadrant, colour in QUADRANT_COLOURS.items():
        rows = shown[quadrants == quadrant]
        traces.append(_points(songs, rows, name=f"{quadrant} ({len(rows):,})",
                              marker=dict(size=5 if len(shown) > 5000 else 7, color=colour, opacity=0.6)))
    if highlight is not None and len(highlight):
        traces.append(_points(songs, np.asarray(highlight, int), name="selected",
                              marker=dict(size=11, color="rgba(0,0,0,0)", line=dict(color="black", width=2))))
    if path is not None and len(path):
        path = np.asarray(path, int)
        trace = _points(songs, path, name="mood path", marker=dict(size=9, color="black"))
        trace.update(mode="lines+markers+text", text=[str(i + 1) for i in range(len(path))],
                     textposition="top center", line=dict(color="black", width=1.5), type="scatter")
        traces.append(trace)
    layout = mood_map_layout(title)
    layout.update(height=620, dragmode="lasso", clickmode="event+select", uirevision="library")
    return go.Figure(dict(data=traces, layout=layout), _validate=False)


def _points(songs: pd.DataFrame, rows: np.ndarray, name: str, marker: dict) -> dict:
    subset = songs.iloc[rows]
    paths = [plotly_text(p) for p in subset["path"]]
    return dict(type="scattergl", mode="markers", name=name, x=subset["valence"].to_numpy(),
                y=subset["arousal"].to_numpy(), marker=marker,
                customdata=np.column_stack([rows, paths, subset["mood"].astype(str).to_numpy()]),
                hovertemplate="%{customdata[1]}<br>%{customdata[2]}<br>valence %{x:.2f}, arousal %{y:.2f}"
                              "<extra></extra>")
