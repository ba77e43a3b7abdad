"""Figures of a training run: loss and accuracy curves, every head of every layer, prediction against target.

Pure functions: histories (lists of dicts) and ``AttentionMaps`` in, plotly figures or HTML out. The
``*_data`` helpers give just the arrays, so a panel can update an on-screen figure in place.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.maps import AttentionMaps, Snapshot
from explorer.views.heatmaps import head_grid

RUN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
MAX_POINTS = 400  # curves are thinned to this many points: enough for the eye, little to send


def curve_data(history, key: str, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of ``key`` (``loss`` or ``accuracy``) of ``HistoryRow``s, thinned evenly to at most
    ``max_points``."""
    if not history:
        return np.zeros(0), np.zeros(0)
    stride = max(1, -(-len(history) // max_points))
    picked = list(history[::stride])
    if picked[-1] is not history[-1]:
        picked.append(history[-1])
    return np.array([r.step for r in picked]), np.array([getattr(r, key) for r in picked], dtype=float)


def curves_figure(histories: dict, height: int = 260) -> go.Figure:
    """Loss (log scale) and training accuracy against step, one colour per named run.

    Traces come in pairs per run, in order: ``[loss run 0, accuracy run 0, loss run 1, ...]``.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss (cross-entropy)", "accuracy on the batch"),
                        horizontal_spacing=0.12)
    for i, (name, history) in enumerate(histories.items()):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        for col, key in ((1, "loss"), (2, "accuracy")):
            steps, values = curve_data(history, key)
            fig.add_trace(go.Scatter(x=steps, y=values, mode="lines", name=name, legendgroup=name, showlegend=col == 1,
                                     line=dict(color=color, width=2),
                                     hovertemplate=f"%{{fullData.name}}<br>step %{{x}}<br>{key} %{{y:.4f}}<extra></extra>"),
                          row=1, col=col)
    fig.update_xaxes(title_text="step", rangemode="tozero")
    fig.update_yaxes(type="log", dtick=1, exponentformat="power", row=1, col=1)  # ticks at powers of ten only
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=height, margin=dict(l=50, r=20, t=60, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=1.16, x=0))
    return fig


def step_marks(step: int) -> list[dict]:
    """A dotted line at ``step`` on both plots of ``curves_figure``: the step whose snapshot is on screen."""
    return [dict(type="line", xref=x, yref=f"{y} domain", x0=step, x1=step, y0=0, y1=1,
                 line=dict(color="#57606a", dash="dot", width=1.5),
                 label=dict(text=f"step {step}", textposition="end", font=dict(size=11, color="#57606a")))
            for x, y in (("x", "y"), ("x2", "y2"))]


def run_header(name: str, shown: int, newest: int, history) -> str:
    """What a run's header says: the step on screen and its loss; when scrubbed back, where training is."""
    loss = next((row.loss for row in reversed(history) if row.step <= shown), None)
    text = f"{html.escape(name)}: step {shown}" + (f", loss {loss:.4f}" if loss is not None else "")
    return text + (f" <span style='color:#57606a'>(scrubbed back; training is at step {newest})</span>"
                   if shown < newest else "")


def head_titles(maps: AttentionMaps) -> list[str]:
    return [f"layer {layer} · head {head}" for layer in range(maps.n_layers) for head in range(maps.n_heads)]


def all_heads_figure(maps: AttentionMaps, title: str = "", panel_size: int = 210) -> go.Figure:
    """Every head of every layer as small multiples, up to four heads a row (a layer of eight takes two rows).

    The figure is as wide as its box and each small heatmap ``panel_size`` pixels tall, so that a head's tokens
    can be read from the back of a room (it was about 110 px, with labels of about 5 px).
    """
    n_cols = min(maps.n_heads, 4)
    return head_grid(all_heads_data(maps), maps.keys, maps.tokens, titles=head_titles(maps), title=title,
                     max_cols=n_cols, panel_height=panel_size)


def all_heads_data(maps: AttentionMaps) -> np.ndarray:
    """The weights in the order of ``all_heads_figure``'s traces, ``[layers * heads, queries, keys]``."""
    weights = maps.weights.numpy()
    return weights.reshape(-1, *weights.shape[2:])


def grid_matches(maps: AttentionMaps, fig) -> bool:
    """True when ``fig`` (from ``all_heads_figure``) has one trace per head of ``maps`` with the same labels."""
    return len(fig.data) == maps.n_layers * maps.n_heads and len(fig.data[0].y or ()) == len(maps.tokens) \
        and len(fig.data[0].x or ()) == len(maps.keys)


def prediction_html(snapshot: Snapshot, title: str = "") -> str:
    """The probe input, the target and the model's prediction, each wrong token marked in red."""
    maps, step, target, prediction = snapshot.maps, snapshot.step, snapshot.target, snapshot.prediction
    if target is None or prediction is None:
        return ""
    source = maps.keys if maps.key_tokens is not None else maps.tokens  # cross-attention: the keys are the input
    rows = [("input", [t for t in source if t != "[CLS]"], None)]
    rows += [("target", _as_list(target), None), ("prediction", _as_list(prediction), _as_list(target))]
    cells = []
    for name, tokens, expected in rows:
        spans = "".join(_token_span(token, expected[i] if expected and i < len(expected) else None)
                        for i, token in enumerate(tokens))
        cells.append(f"<tr><td style='padding-right:8px;color:#555'>{name}</td><td>{spans}</td></tr>")
    if snapshot.pooling is not None:  # attention pooling: how much each token counts for the class
        shades = "".join(_weight_span(f"{100 * w:.0f}", w) for w in snapshot.pooling)
        cells.insert(1, f"<tr><td style='padding-right:8px;color:#555'>pooling %</td><td>{shades}</td></tr>")
    correct = sum(p == t for p, t in zip(_as_list(prediction), _as_list(target)))
    summary = f"{correct} of {len(_as_list(target))} correct at step {step}"
    heading = f"<b>{html.escape(title)}</b> " if title else ""
    return (f"<div class='ae-prediction'>{heading}<span style='color:#555'>probe: {summary}</span>"
            f"<table style='font-family:monospace'>{''.join(cells)}</table></div>")


def _as_list(value) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _weight_span(text: str, weight: float) -> str:
    alpha = min(max(float(weight), 0.0), 1.0)
    return (f"<span style='display:inline-block;width:2.3em;text-align:center;margin:1px;"
            f"background:rgba(8,81,156,{alpha:.2f});color:{'white' if alpha > 0.5 else 'black'}'>{text}</span>")


def _token_span(token: str, expected: str | None) -> str:
    color = "" if expected is None else ("background:#dafbe1" if token == expected else "background:#ffd7d5")
    return f"<span style='display:inline-block;width:2.3em;text-align:center;margin:1px;{color}'>{html.escape(token)}</span>"
