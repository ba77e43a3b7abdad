"""Figures for the Pretrained tab: records in, plotly figures out.

Every builder keeps a fixed trace order for its kind of figure, so the panel can copy the new data into
the FigureWidget on screen instead of rebuilding it. Weights are sent rounded to 3 decimals (what the
hover shows) and only for the layer on screen.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.views.heatmaps import SCORE_COLORS, WEIGHT_COLORS, head_grid, heatmap, unique_labels

DECIMALS = 3
HIGHLIGHT = "#d62728"
GRID_LABELS_UP_TO = 24  # small multiples show token labels up to this many tokens


def _z(matrix) -> np.ndarray:
    return np.round(np.asarray(matrix, dtype=float), DECIMALS)


def highlight_shapes(n_queries: int, n_keys: int, token: int | None) -> list[dict]:
    """Outlines of the selected token's row (what it attends to) and column (what attends to it)."""
    if token is None:
        return []
    line = dict(color=HIGHLIGHT, width=2)
    shapes = []
    if token < n_queries:
        shapes.append(dict(type="rect", xref="x", yref="y", x0=-0.5, x1=n_keys - 0.5, y0=token - 0.5,
                           y1=token + 0.5, line=line))
    if token < n_keys:
        shapes.append(dict(type="rect", xref="x", yref="y", x0=token - 0.5, x1=token + 0.5, y0=-0.5,
                           y1=n_queries - 0.5, line=dict(line, dash="dot")))
    return shapes


def head_figure(maps, layer: int, head: int, token: int | None = None, height: int = 460) -> go.Figure:
    """One head as a heatmap, queries down and keys across, with the selected token's row and column outlined."""
    fig = heatmap(_z(maps.head(layer, head)), maps.keys, maps.tokens, title=f"layer {layer}, head {head}",
                  height=height)
    fig.update_layout(shapes=highlight_shapes(len(maps.tokens), len(maps.keys), token))
    return fig


def layer_figure(maps, layer: int) -> go.Figure:
    """All heads of one layer as small multiples on one colour scale."""
    show_labels = len(maps.tokens) <= GRID_LABELS_UP_TO
    return head_grid(_z(maps.layer(layer)), maps.keys, maps.tokens, title=f"layer {layer}: every head",
                     panel_height=200 if show_labels else 170, show_labels=show_labels)


def mean_figure(maps, layer: int, token: int | None = None) -> go.Figure:
    """The average of one layer's heads."""
    fig = heatmap(_z(maps.mean_over_heads(layer)), maps.keys, maps.tokens,
                  title=f"layer {layer}: mean over {maps.n_heads} heads", height=460)
    fig.update_layout(shapes=highlight_shapes(len(maps.tokens), len(maps.keys), token))
    return fig


def rollout_figure(rollout_layer, tokens, layer: int, token: int | None = None) -> go.Figure:
    """Attention rollout up to ``layer``: how much each token draws on each input token."""
    fig = heatmap(_z(rollout_layer), tokens, tokens, title=f"attention rollout through layer {layer}",
                  x_title="input token", y_title="token at this layer", colorbar_title="share", height=460)
    fig.update_layout(shapes=highlight_shapes(len(tokens), len(tokens), token))
    return fig


def entropy_figure(entropy, n_keys: int, layer: int, head: int) -> go.Figure:
    """Mean row entropy of every head, ``[layers, heads]``, as a share of the most spread-out ``log K``.

    Low (dark) heads focus on few tokens. Trace 1 marks the head on screen; clicking a cell opens that head.
    """
    entropy = np.asarray(entropy, dtype=float)
    n_layers, n_heads = entropy.shape
    share = entropy / math.log(n_keys) if n_keys > 1 else np.zeros_like(entropy)
    heads = [f"H{h}" for h in range(n_heads)]
    layers = [f"L{l}" for l in range(n_layers)]
    fig = go.Figure(go.Heatmap(
        z=_z(share), x=heads, y=layers, zmin=0.0, zmax=1.0, colorscale="Viridis",
        colorbar=dict(title=dict(text="entropy / log K"), thickness=10),
        hovertemplate="layer %{y}, head %{x}<br>entropy %{z:.2f} of the maximum<br>click to open<extra></extra>"))
    fig.add_trace(go.Scatter(x=[heads[head]], y=[layers[layer]], mode="markers", hoverinfo="skip", showlegend=False,
                             marker=dict(symbol="square-open", size=22, line=dict(width=3, color=HIGHLIGHT))))
    fig.update_layout(title=dict(text="head entropy (click a head)"), height=260, width=430,
                      margin=dict(l=40, r=10, t=40, b=30))
    fig.update_xaxes(type="category", title_text="head")
    fig.update_yaxes(type="category", autorange="reversed", title_text="layer")
    return fig


def token_focus_figure(maps, layer: int, head: int, token: int | None) -> go.Figure:
    """For the selected token: the weights it gives (its row) and the weights it receives (its column)."""
    labels = unique_labels(maps.tokens)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08, subplot_titles=(
        "pick a token (click a row)" if token is None else f"'{labels[token]}' attends to",
        "to see its row and column" if token is None else f"who attends to '{labels[token]}'"))
    weights = maps.head(layer, head)
    gives = _z(weights[token]) if token is not None else np.zeros(len(labels))
    receives = _z(weights[:, token]) if token is not None else np.zeros(len(labels))
    fig.add_trace(go.Bar(x=unique_labels(maps.keys), y=gives, marker_color="#1f77b4", name="attends to",
                         hovertemplate="key %{x}: %{y:.3f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=labels, y=receives, marker_color="#ff7f0e", name="attended by",
                         hovertemplate="query %{x}: %{y:.3f}<extra></extra>"), row=1, col=2)
    fig.update_yaxes(range=[0, 1], title_text="weight", row=1, col=1)
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    fig.update_xaxes(type="category", tickangle=-60, tickfont=dict(size=9))
    fig.update_layout(height=260, width=520, showlegend=False, margin=dict(l=50, r=10, t=40, b=70))
    return fig


def compare_figure(maps_a, maps_b, difference, layer: int, head: int) -> go.Figure:
    """Text A and text B side by side for one head, and B - A on the tokens they share."""
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07, subplot_titles=(
        "text A", "text B", f"B - A on {len(difference.tokens)} shared tokens"))
    for col, maps in ((1, maps_a), (2, maps_b)):
        fig.add_trace(go.Heatmap(z=_z(maps.head(layer, head)), x=unique_labels(maps.keys), y=unique_labels(maps.tokens),
                                 zmin=0.0, zmax=1.0, colorscale=WEIGHT_COLORS, showscale=col == 1,
                                 colorbar=dict(title=dict(text="weight"), thickness=10, x=-0.12),
                                 hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.3f}<extra></extra>"), row=1, col=col)
    fig.add_trace(go.Heatmap(z=_z(difference.head(layer, head)), x=unique_labels(difference.keys),
                             y=unique_labels(difference.tokens), zmin=-1.0, zmax=1.0, colorscale=SCORE_COLORS,
                             colorbar=dict(title=dict(text="B - A"), thickness=10),
                             hovertemplate="query %{y}<br>key %{x}<br>B - A %{z:.3f}<extra></extra>"), row=1, col=3)
    fig.update_xaxes(type="category", tickangle=-60, tickfont=dict(size=8))
    fig.update_yaxes(type="category", autorange="reversed", tickfont=dict(size=8))
    fig.update_layout(title=dict(text=f"layer {layer}, head {head}: two texts"), height=440,
                      margin=dict(l=60, r=20, t=70, b=60))
    return fig


def ablation_figure(change, cosine: float | None, ablated) -> go.Figure:
    """The largest weight change per layer caused by the ablated heads, and the embedding's cosine similarity."""
    change = np.asarray(change, dtype=float)
    names = ", ".join(f"L{l}H{h}" for l, h in ablated) or "none"
    title = f"ablated: {names}" + ("" if cosine is None else f" | embedding cosine before/after {cosine:.4f}")
    fig = go.Figure(go.Bar(x=[f"L{l}" for l in range(len(change))], y=_z(change), marker_color="#9467bd",
                           hovertemplate="layer %{x}: largest weight change %{y:.3f}<extra></extra>"))
    fig.update_layout(title=dict(text=title, font=dict(size=12)), height=220, margin=dict(l=50, r=10, t=40, b=30))
    fig.update_yaxes(range=[0, 1], title_text="max |change|")
    fig.update_xaxes(type="category", title_text="layer")
    return fig
