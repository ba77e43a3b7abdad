"""Figures of an encoder-decoder: the alignment picture of Bahdanau et al. (2015), drawn from cross-attention.

Source tokens stand in a row at the top, the tokens the decoder writes in a row at the bottom, and a line joins
each written token to each source token, as thick and dark as the weight that step gave it. Lines under
``MIN_WEIGHT`` are left out; the others fall in ``LEVELS`` bands (one trace each, so an update keeps the same
traces). Labels are escaped: plotly reads ``<b>``-like tags in text and turns ``&lt;`` back into ``<``.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from explorer.views.heatmaps import FigureUpdate, unique_labels

HIGHLIGHT = "#d62728"
MIN_WEIGHT = 0.05
LEVELS = (0.05, 0.15, 0.3, 0.5, 0.75)  # lower bound of each band of weights
WIDTHS = (0.8, 1.6, 2.6, 4.0, 6.0)
OPACITIES = (0.25, 0.4, 0.55, 0.75, 0.9)
SOURCE_Y, TARGET_Y = 1.0, 0.0


def label_text(labels) -> list[str]:
    """Token labels as plotly shows text: unique, with ``& < >`` escaped so no label is read as markup."""
    return [html.escape(label, quote=False) for label in unique_labels(labels)]


def positions(n: int) -> np.ndarray:
    """``n`` points spread evenly over [0, 1] (one in the middle for a single token)."""
    return np.array([0.5]) if n == 1 else np.linspace(0.0, 1.0, n)


def cross_weights(cross, layer: int, head: int | None) -> np.ndarray:
    """One head's cross-attention ``[written, source]``, or the mean over the layer's heads (``head=None``)."""
    layer = min(layer, cross.n_layers - 1)
    matrix = cross.mean_over_heads(layer) if head is None else cross.head(layer, head)
    return matrix.numpy().astype(float)


def _segments(pairs, xs, xt) -> tuple[list, list]:
    x, y = [], []
    for i, j in pairs:
        x += [float(xs[j]), float(xt[i]), None]
        y += [SOURCE_Y, TARGET_Y, None]
    return x, y


def alignment_update(cross, written, layer: int, head: int | None, token: int | None = None) -> FigureUpdate:
    """The lines of each written token to the source tokens, banded by weight; the selected token's lines in red."""
    weights = cross_weights(cross, layer, head)  # [written, source]
    n_written, n_source = weights.shape
    xs, xt = positions(n_source), positions(n_written)
    bands = np.digitize(weights, LEVELS) - 1  # -1: under MIN_WEIGHT
    data = []
    for band in range(len(LEVELS)):
        pairs = [(i, j) for i, j in zip(*np.nonzero(bands == band)) if i != token]
        x, y = _segments(pairs, xs, xt)
        data.append(dict(x=x, y=y))
    chosen = [] if token is None else [(token, j) for j in range(n_source) if weights[token, j] >= MIN_WEIGHT]
    x, y = _segments(chosen, xs, xt)
    data.append(dict(x=x, y=y))
    source_labels, written_labels = label_text(cross.keys), label_text(written)
    top = np.argsort(-weights, axis=1)[:, :3]
    hover = [f"writes {written_labels[i]} looking at " + ", ".join(f"{source_labels[j]} {weights[i, j]:.2f}" for j in top[i])
             for i in range(n_written)]
    data.append(dict(x=xs.tolist(), y=[SOURCE_Y] * n_source, text=source_labels))
    data.append(dict(x=xt.tolist(), y=[TARGET_Y] * n_written, text=written_labels, hovertext=hover))
    which = "mean over heads" if head is None else f"head {head}"
    title = f"alignment: cross-attention of layer {min(layer, cross.n_layers - 1)}, {which}"
    if token is not None and token < n_written:
        title += f" (red: the step that writes '{written_labels[token]}')"
    width = int(np.clip(48 * max(n_source, n_written), 520, 1100))  # room for each label as the tokens grow
    return FigureUpdate(("alignment",), tuple(data), dict(title=dict(text=title), width=width))


def alignment_figure(cross, written, layer: int, head: int | None, token: int | None = None) -> go.Figure:
    """Bahdanau's picture: source above, written tokens below, a line per pair weighted by cross-attention."""
    update = alignment_update(cross, written, layer, head, token)
    traces = [go.Scatter(mode="lines", hoverinfo="skip", showlegend=False, line=dict(color="#1f4e99", width=width),
                         opacity=opacity, **band) for band, width, opacity in zip(update.data, WIDTHS, OPACITIES)]
    traces.append(go.Scatter(mode="lines", hoverinfo="skip", showlegend=False, line=dict(color=HIGHLIGHT, width=2.5),
                             **update.data[len(LEVELS)]))
    source, target = update.data[-2:]
    traces.append(go.Scatter(mode="markers+text", textposition="top center", marker=dict(size=6, color="#444"),
                             hovertemplate="source %{text}<extra></extra>", showlegend=False, **source))
    traces.append(go.Scatter(mode="markers+text", textposition="bottom center", marker=dict(size=6, color="#444"),
                             hovertemplate="%{hovertext}<extra></extra>", showlegend=False, **target))
    axis = dict(visible=False, fixedrange=True)
    return go.Figure(traces, layout=dict(
        update.layout, height=300, margin=dict(l=30, r=30, t=50, b=40), plot_bgcolor="white",
        xaxis=dict(axis, range=[-0.06, 1.06]), yaxis=dict(axis, range=[-0.35, 1.35]),
        annotations=[dict(text="source", x=-0.05, y=SOURCE_Y, xanchor="right", showarrow=False, font=dict(size=10)),
                     dict(text="written", x=-0.05, y=TARGET_Y, xanchor="right", showarrow=False, font=dict(size=10))]))


def translation_html(source: str, target: str, translated: bool, notice: str) -> str:
    """The source and the target the maps are about, as escaped text."""
    said = "the model's greedy translation" if translated else "the target you typed"
    extra = f"<br><small>{html.escape(notice)}</small>" if notice else ""
    return (f"<div class='ae-seq2seq-translation'><b>source</b> {html.escape(source)}<br>"
            f"<b>target</b> {html.escape(target)} <small>({said})</small>{extra}</div>")
