"""Figures and text for the Mechanism tab: 2-D vectors as arrows, and the steps written out with numbers.

Queries, keys and values are small 2-D vectors so they can be drawn: the left plot shows the chosen query
against the keys (the score compares them), the right plot shows the values scaled by their weights and
the context vector, which is their sum.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.views.heatmaps import SCORE_COLORS, heatmap, unique_labels

KEY_COLOR, QUERY_COLOR, VALUE_COLOR, CONTEXT_COLOR = "#1f77b4", "#d62728", "#2ca02c", "#111111"
AXIS_RANGE = (-3.2, 3.2)
SCORE_RANGE = 6.0  # scores are drawn on a fixed -6..6 scale so frames compare


def _arrow(x, y, color, name, width=3.0, dash=None, show_legend=False, legend_group=None, label=None, opacity=1.0,
           side="right"):
    """One arrow from the origin to (x, y), with its label at the tip (above, to the ``side`` of it: a query
    and a key that point the same way, or a value and the context, keep their labels apart)."""
    return go.Scatter(opacity=opacity,
        x=[0.0, float(x)], y=[0.0, float(y)], mode="lines+markers+text", name=name,
        text=["", label or ""], textposition=f"top {side}", textfont=dict(color=color),
        line=dict(color=color, width=width, dash=dash),
        marker=dict(symbol="arrow", angleref="previous", size=[0, 14], color=color),
        legendgroup=legend_group or name, showlegend=show_legend, hovertemplate=f"{name}: (%{{x:.2f}}, %{{y:.2f}})<extra></extra>",
    )


def vector_figure(tokens, queries, keys, values, weights, context, query_index: int) -> go.Figure:
    """Left: the chosen query and all keys. Right: values scaled by the query's weights, and the context.

    ``queries``/``keys``/``values`` ``[N, 2]``, ``weights`` ``[N, N]``, ``context`` ``[N, 2]``.
    Trace order is fixed (keys, query, values, scaled values, context) so a widget can update it in place.
    """
    queries, keys, values = (np.asarray(a, dtype=float) for a in (queries, keys, values))
    weights, context = np.asarray(weights, dtype=float), np.asarray(context, dtype=float)
    row = weights[query_index]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
        f"query '{tokens[query_index]}' against the keys", f"context = Σ weight × value"))
    for j, token in enumerate(tokens):
        fig.add_trace(_arrow(*keys[j], KEY_COLOR, f"key {token}", show_legend=j == 0, legend_group="keys",
                             label=f"k:{token}"), row=1, col=1)
    fig.add_trace(_arrow(*queries[query_index], QUERY_COLOR, f"query {tokens[query_index]}", width=4,
                         show_legend=True, label=f"q:{tokens[query_index]}", side="left"), row=1, col=1)
    for j, token in enumerate(tokens):  # the values themselves, faint, so the scaled copies can be compared
        fig.add_trace(_arrow(*values[j], VALUE_COLOR, f"value {token}", width=1.5, show_legend=j == 0,
                             legend_group="raw values", label=f"v:{token}", opacity=0.35), row=1, col=2)
    for j, token in enumerate(tokens):
        fig.add_trace(_arrow(*(row[j] * values[j]), VALUE_COLOR, f"{row[j]:.2f} × value {token}", dash="dot",
                             show_legend=j == 0, legend_group="values"), row=1, col=2)
    fig.add_trace(_arrow(*context[query_index], CONTEXT_COLOR, "context vector", width=4, show_legend=True,
                         label="context", side="left"), row=1, col=2)
    n = len(tokens)
    fig.data[0].name, fig.data[n + 1].name, fig.data[2 * n + 1].name = "keys", "values", "weight × value"
    for col in (1, 2):
        fig.update_xaxes(range=AXIS_RANGE, zeroline=True, title_text="dimension 1", row=1, col=col)
        fig.update_yaxes(range=AXIS_RANGE, zeroline=True, title_text="dimension 2", scaleanchor=f"x{col if col > 1 else ''}",
                         row=1, col=col)
    fig.update_layout(height=380, width=900, margin=dict(l=50, r=20, t=50, b=50),
                      legend=dict(orientation="h", y=-0.18))
    return fig


def score_figure(scores, tokens, title="scores e_ij (before softmax)") -> go.Figure:
    """The raw score matrix on a fixed diverging scale, with the numbers in the cells."""
    return heatmap(scores, tokens, tokens, title=title, zmin=-SCORE_RANGE, zmax=SCORE_RANGE,
                   colorscale=SCORE_COLORS, colorbar_title="score", text_values=True, height=330, width=440)


def weight_figure(weights, tokens, mask=None, title="weights a_ij = softmax(e_ij / T)") -> go.Figure:
    """The softmax weights (0..1), with masked cells marked by a cross."""
    fig = heatmap(weights, tokens, tokens, title=title, text_values=True, height=330, width=440)
    fig.add_trace(mask_trace(mask, tokens))
    return fig


def mask_trace(mask, tokens) -> go.Scatter:
    """Crosses on the masked cells (query may not attend to key); an empty trace when nothing is masked."""
    labels = unique_labels(tokens)
    xs, ys = [], []
    if mask is not None:
        for i, j in zip(*np.nonzero(~np.asarray(mask, dtype=bool))):
            xs.append(labels[j])
            ys.append(labels[i])
    return go.Scatter(x=xs, y=ys, mode="markers", marker=dict(symbol="x-thin", size=16, line=dict(width=2, color="#b42318")),
                      name="masked", hoverinfo="skip", showlegend=False)


def _vec(v) -> str:
    return r"\begin{pmatrix}" + r"\\".join(f"{x:.2f}" for x in v) + r"\end{pmatrix}"


def steps_latex(formula: str, tokens, scores_row, weights_row, context_vector, temperature: float,
                query_token: str, masked=None) -> str:
    """The three steps for one query, written out with its numbers (for an HTMLMath widget)."""
    masked = np.zeros(len(tokens), dtype=bool) if masked is None else np.asarray(masked, dtype=bool)
    shown = [f"{s:.2f}" if not m else r"\text{masked}" for s, m in zip(scores_row, masked)]
    weights_text = " + ".join(f"{w:.2f}\\,v_{{\\text{{{t}}}}}" for w, t in zip(weights_row, tokens))
    return (
        f"<b>1. Score</b> each key against the query '{query_token}': $${formula}$$"
        f"$$e = ({', '.join(shown)})$$"
        f"<b>2. Softmax</b> with temperature $T = {temperature:.3g}$: "
        r"$$a_{j} = \frac{\exp(e_{j}/T)}{\sum_{j'} \exp(e_{j'}/T)} = (" + ", ".join(f"{w:.2f}" for w in weights_row) + ")$$"
        "<b>3. Weighted sum</b> of the values gives the context vector: "
        f"$$c = {weights_text} = {_vec(context_vector)}$$"
    )
