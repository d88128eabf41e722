"""Plotly figures for the pages: results in, figures out (no Streamlit here)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import sequential

from core.text import plotly_text
from core.metrics import QUADRANT_NAMES, QUADRANT_THRESHOLD

# Quadrant corners on the 0..1 mood map, and their tints.
_QUADRANTS = {1: ((0.5, 1), (0.5, 1), "rgba(255, 200, 60, 0.13)"),
              2: ((0, 0.5), (0.5, 1), "rgba(230, 70, 60, 0.10)"),
              3: ((0, 0.5), (0, 0.5), "rgba(70, 110, 220, 0.10)"),
              4: ((0.5, 1), (0, 0.5), "rgba(70, 180, 120, 0.12)")}
# plotly's "Blues" spelled out, as its validator does to a named colour scale.
_BLUES = [[i / (len(sequential.Blues) - 1), colour] for i, colour in enumerate(sequential.Blues)]
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f")


def mood_map_layout(title: str) -> dict:
    """The map without songs: quadrant tints and names, the threshold lines, the axes."""
    shapes = [dict(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, fillcolor=colour, line=dict(width=0), layer="below")
              for (x0, x1), (y0, y1), colour in _QUADRANTS.values()]
    line = dict(color="#999", width=1, dash="dot")
    shapes += [dict(type="line", line=line, x0=QUADRANT_THRESHOLD, x1=QUADRANT_THRESHOLD, y0=0, y1=1),
               dict(type="line", line=line, y0=QUADRANT_THRESHOLD, y1=QUADRANT_THRESHOLD, x0=0, x1=1)]
    return dict(
        annotations=_quadrant_names_in([0, 1], [0, 1]),
        shapes=shapes, title=dict(text=title), height=560, margin=dict(l=40, r=20, t=50, b=40),
        xaxis=dict(title=dict(text="valence (negative → positive)"), range=[0, 1], zeroline=False,
                   constrain="domain"),
        yaxis=dict(title=dict(text="arousal (calm → energetic)"), range=[0, 1], zeroline=False,
                   scaleanchor="x", scaleratio=1),
        legend=dict(orientation="h", y=-0.15))


def mood_map_range(results: list[dict], margin: float = 0.06, min_span: float = 0.3) -> tuple[list, list]:
    """The square part of the map that holds every song's point, path and fold points, with a
    margin, and always the quadrant lines (0.5 on both axes) -> ([x0, x1], [y0, y1]) within 0..1."""
    xs, ys = [QUADRANT_THRESHOLD], [QUADRANT_THRESHOLD]
    for result in results:
        points = [(result["valence"], result["arousal"])] + [(w["valence"], w["arousal"]) for w in result["windows"]]
        points += [tuple(p) for p in result.get("folds", {}).get("points", [])]
        xs += [p[0] for p in points]
        ys += [p[1] for p in points]
    span = max(max(xs) - min(xs), max(ys) - min(ys), min_span) + 2 * margin
    span = min(span, 1.0)

    def axis(values):
        centre = (max(values) + min(values)) / 2
        low = min(max(centre - span / 2, 0.0), 1.0 - span)
        return [round(low, 4), round(low + span, 4)]

    return axis(xs), axis(ys)


def mood_map(results: list[dict], title: str = "Mood map (Russell's circumplex)", zoom: bool = False) -> go.Figure:
    """Each song a labelled point at its mean (valence, arousal) and a line through its windows;
    where a result has "folds" (core.predict.fold_spread), each fold model's point and the spread
    (± 1 sd over the fold models) as error bars on the song's point.

    results: dicts as `core.song.predict.predict_song` returns them. zoom: show the part of the map
    where the songs are (`mood_map_range`, the quadrant lines always in view) instead of the
    whole square. Built from plain dicts without plotly's property validation (a tenth of the
    time; the page builds it on every rerun), so every key here is spelled in full, as plotly's
    own JSON has it.
    """
    traces = []
    for i, result in enumerate(results):
        # A person's file name: shown as text (its tags as entities), and put into the hover
        # templates as data (meta), never into the template itself.
        colour, name = PALETTE[i % len(PALETTE)], plotly_text(result["file"])
        windows = result["windows"]
        if len(windows) > 1:
            traces.append(dict(
                type="scatter", x=[w["valence"] for w in windows], y=[w["arousal"] for w in windows],
                mode="lines+markers", line=dict(color=colour, width=1.5), marker=dict(size=6),
                opacity=0.6, name=f"{name} (path)", legendgroup=f"song {i}", meta=name,
                customdata=[w["start_s"] for w in windows],
                hovertemplate="%{customdata:.0f} s: valence %{x:.2f}, arousal %{y:.2f}<extra>%{meta}</extra>"))
        folds = result.get("folds")
        spread = {}
        if folds:
            traces.append(dict(
                type="scatter", x=[p[0] for p in folds["points"]], y=[p[1] for p in folds["points"]],
                mode="markers", marker=dict(size=8, color=colour, symbol="diamond-open"), opacity=0.7,
                name=f"{name} ({folds['models']} fold models)", legendgroup=f"song {i}", meta=name,
                hovertemplate="one fold model: valence %{x:.2f}, arousal %{y:.2f}<extra>%{meta}</extra>"))
            spread = dict(error_x=dict(type="data", array=[folds["std"][0]], color=colour, thickness=1.5),
                          error_y=dict(type="data", array=[folds["std"][1]], color=colour, thickness=1.5))
        traces.append(dict(
            type="scatter", x=[result["valence"]], y=[result["arousal"]], mode="markers+text",
            marker=dict(size=15, color=colour, line=dict(color="white", width=2)),
            text=[name], textposition="top center", name=name, legendgroup=f"song {i}", meta=name,
            hovertemplate="%{meta}<br>whole song: valence %{x:.2f}, arousal %{y:.2f}"
                          f"<br>{result['mood']}<extra></extra>", **spread))
    layout = mood_map_layout(title)
    if zoom and results:
        x_range, y_range = layout["xaxis"]["range"], layout["yaxis"]["range"] = mood_map_range(results)
        layout["annotations"] = _quadrant_names_in(x_range, y_range)
    return go.Figure(dict(data=traces, layout=layout), _validate=False)


def _quadrant_names_in(x_range: list, y_range: list) -> list[dict]:
    """Each quadrant's name at the top of the part of it that is in view: the whole square, or a
    zoomed map's part (which always shows the quadrant lines, so every quadrant has such a part)."""
    names = []
    for q, ((x0, x1), (y0, y1), _) in _QUADRANTS.items():
        left, right = max(x0, x_range[0]), min(x1, x_range[1])
        top = min(y1, y_range[1])
        names.append(dict(x=(left + right) / 2, y=top - 0.03 * (y_range[1] - y_range[0]),
                          text=f"Q{q} {QUADRANT_NAMES[q]}", showarrow=False, font=dict(size=13, color="#555")))
    return names


def mood_over_time(results: list[dict], title: str = "Valence and arousal through each song") -> go.Figure:
    """Each song's windows over time: valence (solid) and arousal (dashed) at each 30-s window's
    start, in the colours of `mood_map`; the 0.5 line is the quadrant threshold."""
    traces = []
    for i, result in enumerate(results):
        colour, name = PALETTE[i % len(PALETTE)], plotly_text(result["file"])
        times = [w["start_s"] for w in result["windows"]]
        for key, dash in (("valence", "solid"), ("arousal", "dash")):
            traces.append(dict(
                type="scatter", x=times, y=[w[key] for w in result["windows"]], mode="lines+markers",
                line=dict(color=colour, dash=dash, width=2), marker=dict(size=5), name=f"{name}: {key}",
                legendgroup=f"song {i}", meta=name,
                hovertemplate=f"%{{meta}}, window from %{{x:.0f}} s: {key} %{{y:.2f}}<extra></extra>"))
    layout = dict(title=dict(text=title), height=320, margin=dict(l=40, r=20, t=50, b=40),
                  xaxis=dict(title=dict(text="window start (s)"), rangemode="tozero"),
                  yaxis=dict(title=dict(text="value (0..1)"), range=[0, 1]),
                  shapes=[dict(type="line", xref="paper", x0=0, x1=1, y0=QUADRANT_THRESHOLD, y1=QUADRANT_THRESHOLD,
                               line=dict(color="#999", width=1, dash="dot"))],
                  legend=dict(orientation="h", y=-0.25))
    return go.Figure(dict(data=traces, layout=layout), _validate=False)


def probability_bars(probabilities: dict[str, float], title: str = "") -> go.Figure:
    """The seven expression probabilities of one face, the top one highlighted. Plain dicts, no
    validation (the face page draws one per face on every rerun), keys spelled in full."""
    names, values = list(probabilities), list(probabilities.values())
    top = max(range(len(values)), key=values.__getitem__)
    bar = dict(type="bar", x=values, y=names, orientation="h", text=[f"{v:.0%}" for v in values],
               textposition="outside",
               marker=dict(color=["#d62728" if i == top else "#8fa8c8" for i in range(len(values))]))
    layout = dict(title=dict(text=title), height=300, margin=dict(l=10, r=30, t=40 if title else 10, b=10),
                  xaxis=dict(range=[0, 1.15], tickformat=".0%"), yaxis=dict(autorange="reversed"))
    return go.Figure(dict(data=[bar], layout=layout), _validate=False)


def confusion_heatmap(confusion: list[list[int]], names: tuple[str, ...], title: str = "") -> go.Figure:
    """Rows: true class; columns: predicted; each row's share shown as colour and text. Plain
    dicts, no validation (the face page shows the model's on every rerun)."""
    shares = [[v / max(sum(row), 1) for v in row] for row in confusion]
    heatmap = dict(type="heatmap", z=shares, x=list(names), y=list(names), colorscale=_BLUES, zmin=0, zmax=1,
                   text=[[f"{v}" for v in row] for row in confusion], texttemplate="%{text}",
                   hovertemplate="true %{y}, predicted %{x}: %{text} (%{z:.0%} of the row)<extra></extra>")
    layout = dict(title=dict(text=title), height=420, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                  xaxis=dict(title=dict(text="predicted")), yaxis=dict(title=dict(text="true"), autorange="reversed"))
    return go.Figure(dict(data=[heatmap], layout=layout), _validate=False)


def learning_curves(curves_by_name: dict[str, dict[str, list[float]]], title: str = "Learning curves",
                    bands_by_name: dict[str, list[dict[str, list[float]]]] | None = None,
                    runs: str = "runs") -> go.Figure:
    """Train (solid) and validation (dashed) loss per epoch of one or more models.

    bands_by_name: {name: [curves of each fold or seed]}: where given, each loss is drawn with a
    band from the lowest to the highest of those runs at every epoch (the line stays `curves`);
    runs names them in the legend ("folds", "seeds").
    """
    fig = go.Figure()
    for i, (name, curves) in enumerate(curves_by_name.items()):
        colour = PALETTE[i % len(PALETTE)]
        banded = (bands_by_name or {}).get(name) or []
        for key, dash in (("loss", "solid"), ("val_loss", "dash")):
            if key not in curves:
                continue
            label = f"{name} {'train' if key == 'loss' else 'validation'}"
            per_run = [run[key] for run in banded if key in run]
            if len(per_run) > 1:
                epochs = min(len(run) for run in per_run)
                low = [min(run[e] for run in per_run) for e in range(epochs)]
                high = [max(run[e] for run in per_run) for e in range(epochs)]
                x = list(range(1, epochs + 1))
                fig.add_trace(go.Scatter(x=x + x[::-1], y=high + low[::-1], fill="toself", mode="lines",
                                         line=dict(width=0), fillcolor=colour, opacity=0.15, hoverinfo="skip",
                                         legendgroup=label, name=f"{label}: range over {len(per_run)} {runs}"))
            fig.add_trace(go.Scatter(
                x=list(range(1, len(curves[key]) + 1)), y=curves[key], mode="lines",
                line=dict(color=colour, dash=dash), legendgroup=label, name=label))
    fig.update_layout(title=title, height=380, xaxis_title="epoch", yaxis_title="loss",
                      margin=dict(l=40, r=10, t=40, b=40))
    return fig


# --- comparing variants -----------------------------------------------------------------------

VERDICT_COLOURS = {"better": "#2ca02c", "worse": "#d62728", "no detectable difference": "#7f7f7f"}


def forest_plot(rows: list[dict], metric: str, scale: float = 1.0, unit: str = "",
                title: str | None = None) -> go.Figure:
    """Each variant's difference from the default with its interval, as in a meta-analysis: one
    row a variant (top to bottom in the given order), a line at zero, coloured by verdict.

    rows: as core.variants.verdicts.forest_rows gives them ({"variant", "difference", "low", "high",
    "verdict", "sentence"}); scale=100 and unit=" points" show shares as percentage points.
    """
    fig = go.Figure()
    order = [r["variant"] for r in rows]
    for verdict, colour in VERDICT_COLOURS.items():
        group = [r for r in rows if r["verdict"] == verdict]
        if not group:
            continue
        fig.add_trace(go.Scatter(
            x=[r["difference"] * scale for r in group], y=[r["variant"] for r in group], mode="markers",
            marker=dict(color=colour, size=12, symbol="square"), name=verdict,
            error_x=dict(type="data", symmetric=False, color=colour, thickness=2.5, width=7,
                         array=[(r["high"] - r["difference"]) * scale for r in group],
                         arrayminus=[(r["difference"] - r["low"]) * scale for r in group]),
            customdata=[r["sentence"] for r in group], hovertemplate="%{customdata}<extra></extra>"))
    ends = [0.0] + [r[k] * scale for r in rows for k in ("low", "high")]
    pad = 0.08 * (max(ends) - min(ends) or 1.0)
    fig.add_vline(x=0, line=dict(color="#333", width=1.5))
    fig.update_layout(
        title=dict(text=title or f"{metric}: each variant minus the default (95% interval)"),
        height=140 + 42 * max(len(rows), 1), margin=dict(l=10, r=20, t=70, b=50),
        xaxis=dict(title=dict(text=f"difference in {metric}{unit and ' (' + unit.strip() + ')'}"),
                   range=[min(ends) - pad, max(ends) + pad], zeroline=False),
        yaxis=dict(categoryorder="array", categoryarray=order[::-1], automargin=True),
        showlegend=True,  # also when every variant has the same verdict
        legend=dict(orientation="h", x=1, xanchor="right", y=1.0, yanchor="bottom", title=dict(text="verdict: ")))
    return fig


def predicted_vs_true(cards_by_name: dict[str, dict]) -> go.Figure:
    """Validation songs: predicted against true valence (left) and arousal (right), per variant."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("valence", "arousal"), horizontal_spacing=0.08)
    for i, (name, card) in enumerate(cards_by_name.items()):
        if "validation_targets" not in card:
            continue
        true, pred = card["validation_targets"], card["validation_predictions"]
        for col in (0, 1):
            fig.add_trace(go.Scatter(
                x=[t[col] for t in true], y=[p[col] for p in pred], mode="markers", name=name,
                legendgroup=name, showlegend=col == 0, opacity=0.65,
                marker=dict(size=6, color=PALETTE[i % len(PALETTE)]),
                hovertemplate=f"{name}<br>true %{{x:.2f}}, predicted %{{y:.2f}}<extra></extra>"),
                row=1, col=col + 1)
    for col in (1, 2):
        fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line=dict(color="#999", dash="dot"),
                      row=1, col=col)
        fig.update_xaxes(title_text="true", range=[0, 1], row=1, col=col)
        fig.update_yaxes(title_text="predicted", range=[0, 1], row=1, col=col)
    fig.update_layout(title="Validation songs: predicted vs true", height=420,
                      margin=dict(l=40, r=10, t=70, b=40), legend=dict(orientation="h", y=-0.2))
    return fig


def _ellipse(points: list[list[float]], scale: float = 2.0, n: int = 60) -> tuple[list[float], list[float]]:
    """The `scale`-standard-deviation ellipse of 2-D points (their covariance), as a closed path."""
    import numpy as np

    xy = np.asarray(points, dtype=float)
    centre = xy.mean(axis=0)
    cov = np.cov(xy.T) if len(xy) > 1 else np.zeros((2, 2))
    values, vectors = np.linalg.eigh(cov + 1e-12 * np.eye(2))
    angle = np.linspace(0, 2 * np.pi, n)
    path = centre + (vectors @ (scale * np.sqrt(np.maximum(values, 0))[:, None] * [np.cos(angle), np.sin(angle)])).T
    return path[:, 0].tolist(), path[:, 1].tolist()


def variants_mood_map(results: dict[str, dict], title: str = "Your song through each variant") -> go.Figure:
    """The mood map with one colour a variant: its point, its path through the song, each fold
    model's point where the result has "folds" (drawn by `mood_map`) and, when the result has
    Monte Carlo samples ("mc"), their cloud and 2-standard-deviation ellipse."""
    fig = mood_map(list(results.values()), title)
    for i, result in enumerate(results.values()):
        colour, name = PALETTE[i % len(PALETTE)], result["file"]
        mc = result.get("mc")
        if not mc:
            continue
        fig.add_trace(go.Scatter(
            x=[p[0] for p in mc["points"]], y=[p[1] for p in mc["points"]], mode="markers",
            marker=dict(size=4, color=colour), opacity=0.35, legendgroup=name, showlegend=False,
            hovertemplate=f"{name}, one dropout pass: valence %{{x:.2f}}, arousal %{{y:.2f}}<extra></extra>"))
        x, y = _ellipse(mc["points"])
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=colour, width=1), fill="toself",
                                 opacity=0.25, legendgroup=name, name=f"{name} (±2 sd, {mc['passes']} passes)",
                                 hoverinfo="skip"))
    return fig


def variants_probabilities(results: dict[str, list[dict]], face: int, title: str = "") -> go.Figure:
    """One face's seven probabilities from each variant, side by side, with the Monte Carlo
    dropout standard deviation as error bars where the results have it."""
    fig = go.Figure()
    for i, (name, faces_) in enumerate(results.items()):
        result = faces_[face]
        names = list(result["probabilities"])
        spread = result.get("mc_std")
        fig.add_trace(go.Bar(
            x=names, y=list(result["probabilities"].values()), name=name,
            marker_color=PALETTE[i % len(PALETTE)],
            error_y=dict(type="data", array=[spread[e] for e in names], visible=True) if spread else None,
            hovertemplate=f"{name}: %{{x}} %{{y:.0%}}<extra></extra>"))
    fig.update_layout(title=title, barmode="group", height=360, yaxis=dict(range=[0, 1], tickformat=".0%"),
                      margin=dict(l=40, r=10, t=40 if title else 10, b=40), legend=dict(orientation="h", y=-0.2))
    return fig


def activations(before, after, title: str = "", channels: int = 6) -> go.Figure:
    """Activations just before and after a downsampling layer, side by side.

    before/after: (time, channels) for a song (time across, channel up) or (h, w, channels) for a
    face (the first `channels` feature maps in a row each).
    """
    from plotly.subplots import make_subplots

    if before.ndim == 2:
        fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.06, subplot_titles=(
            f"before: {before.shape[0]} steps × {before.shape[1]} channels",
            f"after: {after.shape[0]} steps × {after.shape[1]} channels"))
        for col, values in ((1, before), (2, after)):
            fig.add_trace(go.Heatmap(z=values.T, colorscale="Viridis", showscale=False,
                                     hovertemplate="step %{x}, channel %{y}: %{z:.2f}<extra></extra>"), row=1, col=col)
            fig.update_xaxes(title_text="time step", row=1, col=col)
        fig.update_yaxes(title_text="channel", row=1, col=1)
        fig.update_layout(height=320)
    else:
        k = min(channels, before.shape[-1])
        fig = make_subplots(rows=2, cols=k, vertical_spacing=0.12, horizontal_spacing=0.02, row_titles=(
            f"before {before.shape[0]}×{before.shape[1]}", f"after {after.shape[0]}×{after.shape[1]}"))
        for row, values in ((1, before), (2, after)):
            for c in range(k):
                fig.add_trace(go.Heatmap(z=values[:, :, c], colorscale="Viridis", showscale=False,
                                         hovertemplate=f"map {c + 1}: %{{z:.2f}}<extra></extra>"), row=row, col=c + 1)
                axis = (row - 1) * k + c + 1  # each map square on its own axes
                fig.update_yaxes(scaleanchor=f"x{axis if axis > 1 else ''}", row=row, col=c + 1)
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False, autorange="reversed")
        fig.update_layout(height=330)
    fig.update_layout(title=title, margin=dict(l=40, r=30, t=60 if title else 30, b=30))
    return fig


def expression_timeline(times_s, probabilities, names: tuple[str, ...], window_s: float = 30.0) -> go.Figure:
    """Live video: face 1's smoothed probabilities over the last `window_s` seconds.
    times_s (n,) seconds relative to now (<= 0); probabilities (n, len(names)); names: the classes."""
    x = [float(t) for t in times_s]
    traces = [dict(type="scatter", mode="lines", name=name, x=x,
                   y=[float(row[i]) for row in probabilities], line=dict(width=2))
              for i, name in enumerate(names)]
    layout = dict(title=dict(text="Face 1, last 30 s"), height=280, margin=dict(l=10, r=10, t=40, b=10),
                  xaxis=dict(title="seconds ago", range=[-window_s, 0]),
                  yaxis=dict(title="probability", range=[0, 1], tickformat=".0%"),
                  legend=dict(orientation="h", y=-0.25))
    return go.Figure(dict(data=traces, layout=layout), _validate=False)
