"""Plotly figures for the pages: results in, figures out (no Streamlit here)."""

from __future__ import annotations

import plotly.graph_objects as go

from core.metrics import QUADRANT_NAMES, QUADRANT_THRESHOLD

# Quadrant corners on the 0..1 mood map, and their tints.
_QUADRANTS = {1: ((0.5, 1), (0.5, 1), "rgba(255, 200, 60, 0.13)"),
              2: ((0, 0.5), (0.5, 1), "rgba(230, 70, 60, 0.10)"),
              3: ((0, 0.5), (0, 0.5), "rgba(70, 110, 220, 0.10)"),
              4: ((0.5, 1), (0, 0.5), "rgba(70, 180, 120, 0.12)")}
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f")


def mood_map(results: list[dict], title: str = "Mood map (Russell's circumplex)") -> go.Figure:
    """Each song a labelled point at its mean (valence, arousal) and a line through its windows.

    results: dicts as `core.predict.predict_song` returns them.
    """
    fig = go.Figure()
    for q, ((x0, x1), (y0, y1), colour) in _QUADRANTS.items():
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, fillcolor=colour, line_width=0,
                      layer="below")
        fig.add_annotation(x=(x0 + x1) / 2, y=y1 - 0.03, text=f"Q{q} {QUADRANT_NAMES[q]}",
                           showarrow=False, font=dict(size=13, color="#555"))
    for i, result in enumerate(results):
        colour = PALETTE[i % len(PALETTE)]
        windows = result["windows"]
        if len(windows) > 1:
            fig.add_trace(go.Scatter(
                x=[w["valence"] for w in windows], y=[w["arousal"] for w in windows],
                mode="lines+markers", line=dict(color=colour, width=1.5), marker=dict(size=6),
                opacity=0.6, name=f"{result['file']} (path)", legendgroup=result["file"],
                customdata=[w["start_s"] for w in windows],
                hovertemplate="%{customdata:.0f} s: valence %{x:.2f}, arousal %{y:.2f}"
                              "<extra>" + result["file"] + "</extra>"))
        fig.add_trace(go.Scatter(
            x=[result["valence"]], y=[result["arousal"]], mode="markers+text",
            marker=dict(size=15, color=colour, line=dict(color="white", width=2)),
            text=[result["file"]], textposition="top center", name=result["file"],
            legendgroup=result["file"],
            hovertemplate=f"{result['file']}<br>whole song: valence %{{x:.2f}}, arousal %{{y:.2f}}"
                          f"<br>{result['mood']}<extra></extra>"))
    fig.update_layout(
        title=title, height=560, margin=dict(l=40, r=20, t=50, b=40),
        xaxis=dict(title="valence (negative → positive)", range=[0, 1], zeroline=False,
                   constrain="domain"),
        yaxis=dict(title="arousal (calm → energetic)", range=[0, 1], zeroline=False,
                   scaleanchor="x", scaleratio=1),
        legend=dict(orientation="h", y=-0.15))
    for axis in ("x", "y"):
        line = dict(color="#999", width=1, dash="dot")
        fig.add_shape(type="line", line=line, **({"x0": QUADRANT_THRESHOLD, "x1": QUADRANT_THRESHOLD,
                                                  "y0": 0, "y1": 1} if axis == "x" else
                                                 {"y0": QUADRANT_THRESHOLD, "y1": QUADRANT_THRESHOLD,
                                                  "x0": 0, "x1": 1}))
    return fig


def probability_bars(probabilities: dict[str, float], title: str = "") -> go.Figure:
    """The seven expression probabilities of one face, the top one highlighted."""
    names, values = list(probabilities), list(probabilities.values())
    top = max(range(len(values)), key=values.__getitem__)
    fig = go.Figure(go.Bar(
        x=values, y=names, orientation="h", text=[f"{v:.0%}" for v in values],
        textposition="outside",
        marker_color=["#d62728" if i == top else "#8fa8c8" for i in range(len(values))]))
    fig.update_layout(title=title, height=300, margin=dict(l=10, r=30, t=40 if title else 10, b=10),
                      xaxis=dict(range=[0, 1.15], tickformat=".0%"),
                      yaxis=dict(autorange="reversed"))
    return fig


def confusion_heatmap(confusion: list[list[int]], names: tuple[str, ...], title: str = "") -> go.Figure:
    """Rows: true class; columns: predicted; each row's share shown as colour and text."""
    shares = [[v / max(sum(row), 1) for v in row] for row in confusion]
    fig = go.Figure(go.Heatmap(
        z=shares, x=list(names), y=list(names), colorscale="Blues", zmin=0, zmax=1,
        text=[[f"{v}" for v in row] for row in confusion], texttemplate="%{text}",
        hovertemplate="true %{y}, predicted %{x}: %{text} (%{z:.0%} of the row)<extra></extra>"))
    fig.update_layout(title=title, height=420, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      xaxis_title="predicted", yaxis=dict(title="true", autorange="reversed"))
    return fig


def learning_curves(curves_by_name: dict[str, dict[str, list[float]]], title: str = "Learning curves") -> go.Figure:
    """Train (solid) and validation (dashed) loss per epoch of one or more models."""
    fig = go.Figure()
    for i, (name, curves) in enumerate(curves_by_name.items()):
        colour = PALETTE[i % len(PALETTE)]
        for key, dash in (("loss", "solid"), ("val_loss", "dash")):
            if key in curves:
                fig.add_trace(go.Scatter(
                    x=list(range(1, len(curves[key]) + 1)), y=curves[key], mode="lines",
                    line=dict(color=colour, dash=dash),
                    name=f"{name} {'train' if key == 'loss' else 'validation'}"))
    fig.update_layout(title=title, height=380, xaxis_title="epoch", yaxis_title="loss",
                      margin=dict(l=40, r=10, t=40, b=40))
    return fig
