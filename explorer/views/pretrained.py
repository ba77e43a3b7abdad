"""Figures for the Pretrained tab: records in, plotly figures or canvas maps out.

The maps that change on every click (one head, the mean over heads, rollout, the entropy map) are
``CanvasMap`` records for a canvas map (``explorer.widgets.heatmap_view.HeatmapView``): ``*_update(...)`` gives
the matrix, its labels, title and outlines, and ``CANVAS_STYLES`` their fixed look. plotly.js recomputes and
redraws a whole SVG heatmap for any change, even for moving an outline; a canvas map repaints.

The other figures (the layer's heads, A vs B, the token bars, the ablation effect) come in two parts:
``*_update(...)`` gives what changes from frame to frame (trace data, title) as a ``FigureUpdate``, and
``*_figure(...)`` builds the whole figure once from that update. The panel builds a figure the first time and
afterwards copies only the update into the FigureWidget on screen (``apply_update``), which skips rebuilding
and re-validating the static parts; two updates with the same ``structure`` fit the same figure.
Weights are sent rounded to 3 decimals (what the hover shows) and only for the layer on screen.
"""

from __future__ import annotations

import base64
import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.views.heatmaps import (SCORE_COLORS, WEIGHT_COLORS, CanvasMap, FigureUpdate, head_grid, outline,
                                    unique_labels)

DECIMALS = 3
HIGHLIGHT = "#d62728"
GRID_LABELS_UP_TO = 24  # small multiples show token labels up to this many tokens
TICKS = dict(type="category", tickangle=-60, tickfont=dict(size=9))


def _z(matrix, decimals: int = DECIMALS) -> np.ndarray:
    return np.round(np.asarray(matrix, dtype=float), decimals)


def packed(values):
    """A matrix as plotly.js's typed-array spec (float32, base64): far less to encode and send than nested lists."""
    if not isinstance(values, np.ndarray) or values.ndim != 2:
        return values
    data = np.ascontiguousarray(values, dtype=np.float32)
    return {"dtype": "f4", "bdata": base64.b64encode(data.tobytes()).decode("ascii"),
            "shape": f"{data.shape[0]}, {data.shape[1]}"}


def apply_update(fig, update: FigureUpdate) -> None:
    """Copy an update into a figure built for the same ``structure`` (a FigureWidget sends only the changes)."""
    with fig.batch_update():
        for trace, values in zip(fig.data, update.data):
            trace.update({name: packed(value) for name, value in values.items()})
        fig.layout.update(update.layout)
        for annotation, text in zip(fig.layout.annotations, update.annotations):
            annotation.text = text


def highlight_outlines(n_queries: int, n_keys: int, token: int | None) -> tuple[dict, ...]:
    """Outlines of the selected token's row (what it attends to) and, dotted, its column (what attends to it)."""
    if token is None:
        return ()
    outlines = []
    if token < n_queries:
        outlines.append(outline(-0.5, n_keys - 0.5, token - 0.5, token + 0.5, color=HIGHLIGHT))
    if token < n_keys:
        outlines.append(outline(token - 0.5, token + 0.5, -0.5, n_queries - 0.5, dash=True, color=HIGHLIGHT))
    return tuple(outlines)


def matrix_update(matrix, keys, queries, title: str, token: int | None = None, zmax: float | None = None,
                  decimals: int = DECIMALS) -> CanvasMap:
    """One labelled matrix for a canvas map, with the selected token's row and column outlined."""
    return CanvasMap(_z(matrix, decimals), unique_labels(keys), unique_labels(queries),
                     highlight_outlines(len(queries), len(keys), token), title, -45 if len(keys) > 6 else 0, zmax=zmax)


def ablated_heads(maps, layer: int) -> set[int]:
    """Heads of ``layer`` whose output was zeroed when ``maps`` were made (their own weights are unchanged)."""
    return {h for l, h in maps.meta.ablated if l == layer}


def head_update(maps, layer: int, head: int, token: int | None = None) -> CanvasMap:
    """One head, queries down and keys across, with the selected token's row and column outlined."""
    title = f"layer {layer}, head {head}"
    if head in ablated_heads(maps, layer):
        title += " (output zeroed: later layers feel it)"
    return matrix_update(maps.head(layer, head), maps.keys, maps.tokens, title, token)


def mean_update(maps, layer: int, token: int | None = None) -> CanvasMap:
    """The average of one layer's heads."""
    return matrix_update(maps.mean_over_heads(layer), maps.keys, maps.tokens,
                         f"layer {layer}: mean over {maps.n_heads} heads", token)


def rollout_update(rollout_layer, tokens, layer: int, token: int | None = None) -> CanvasMap:
    """Attention rollout up to ``layer``: how much each token draws on each input token."""
    return matrix_update(rollout_layer, tokens, tokens, f"attention rollout through layer {layer}", token)


def layer_update(maps, layer: int) -> FigureUpdate:
    keys, queries = unique_labels(maps.keys), unique_labels(maps.tokens)
    weights = _z(maps.layer(layer))
    ablated = ablated_heads(maps, layer)
    return FigureUpdate(("layer", maps.n_heads, len(maps.tokens) <= GRID_LABELS_UP_TO),
                        tuple(dict(z=w, x=keys, y=queries) for w in weights),
                        dict(title=dict(text=f"layer {layer}: every head")),
                        tuple(f"head {h}" + (" (ablated)" if h in ablated else "") for h in range(maps.n_heads)))


def layer_figure(maps, layer: int) -> go.Figure:
    """All heads of one layer as small multiples on one colour scale."""
    update = layer_update(maps, layer)
    show_labels = update.structure[2]
    return head_grid([t["z"] for t in update.data], maps.keys, maps.tokens, titles=list(update.annotations),
                     title=update.title, panel_height=200 if show_labels else 170, show_labels=show_labels)


def entropy_update(entropy, n_keys: int, layer: int, head: int) -> CanvasMap:
    """Mean row entropy of every head as a share of the most spread-out ``log K``, heads across and layers
    down, for a canvas map; the head on screen outlined."""
    entropy = np.asarray(entropy, dtype=float)
    share = entropy / math.log(n_keys) if n_keys > 1 else np.zeros_like(entropy)
    n_layers, n_heads = share.shape
    return CanvasMap(_z(share), [f"H{h}" for h in range(n_heads)], [f"L{l}" for l in range(n_layers)],
                     (outline(head - 0.5, head + 0.5, layer - 0.5, layer + 0.5, width=3, color=HIGHLIGHT),))


def focus_update(matrix, keys, queries, token: int, where: str) -> FigureUpdate:
    """The selected token's row (the weights it gives) and column (the weights it receives) in ``matrix``, the map
    the main view shows; ``where`` names it ("layer 3, head 1", "layer 3, mean over 12 heads", ...)."""
    matrix = np.asarray(matrix, dtype=float)
    labels, key_labels = unique_labels(queries), unique_labels(keys)
    gives = _z(matrix[token]) if token < len(labels) else np.zeros(len(key_labels))
    receives = _z(matrix[:, token]) if token < len(key_labels) else np.zeros(len(labels))
    name = labels[token]
    return FigureUpdate(("focus",), (dict(x=key_labels, y=gives), dict(x=labels, y=receives)),
                        dict(title=dict(text=f"'{name}' in {where}"), xaxis=dict(title_text=f"what '{name}' attends to"),
                             xaxis2=dict(title_text=f"what attends to '{name}'")))


def token_focus_figure(update: FigureUpdate) -> go.Figure:
    """Bars of what the selected token attends to (left) and of who attends to it (right), from ``focus_update``."""
    gives, receives = update.data
    return go.Figure([
        go.Bar(marker_color="#1f77b4", name="attends to", hovertemplate="key %{x}: %{y:.3f}<extra></extra>", **gives),
        go.Bar(marker_color="#ff7f0e", name="attended by", xaxis="x2", yaxis="y2",
               hovertemplate="query %{x}: %{y:.3f}<extra></extra>", **receives),
    ], layout=dict(xaxis=dict(TICKS, domain=[0, 0.46], **update.layout["xaxis"]),
                   xaxis2=dict(TICKS, domain=[0.54, 1], anchor="y2", **update.layout["xaxis2"]),
                   yaxis=dict(range=[0, 1], title_text="weight"), yaxis2=dict(range=[0, 1], anchor="x2"),
                   title=dict(text=update.title, font=dict(size=14)), height=300,
                   showlegend=False, margin=dict(l=50, r=10, t=50, b=90)))


def compare_update(maps_a, maps_b, difference, layer: int, head: int) -> FigureUpdate:
    data = tuple(dict(z=_z(m.head(layer, head)), x=unique_labels(m.keys), y=unique_labels(m.tokens))
                 for m in (maps_a, maps_b, difference))
    return FigureUpdate(("compare",), data, dict(title=dict(text=f"layer {layer}, head {head}: two texts")),
                        ("text A", "text B", f"B - A on {len(difference.tokens)} shared tokens"))


def compare_figure(maps_a, maps_b, difference, layer: int, head: int) -> go.Figure:
    """Text A and text B side by side for one head, and B - A on the tokens they share."""
    update = compare_update(maps_a, maps_b, difference, layer, head)
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07, subplot_titles=update.annotations)
    styles = [dict(zmin=0.0, zmax=1.0, colorscale=WEIGHT_COLORS, showscale=True, name="weight",
                   colorbar=dict(title=dict(text="weight"), thickness=10, x=1.02)),
              dict(zmin=0.0, zmax=1.0, colorscale=WEIGHT_COLORS, showscale=False, name="weight"),
              dict(zmin=-1.0, zmax=1.0, colorscale=SCORE_COLORS, name="B - A",
                   colorbar=dict(title=dict(text="B - A"), thickness=10, x=1.12))]
    for col, (data, style) in enumerate(zip(update.data, styles), start=1):
        fig.add_trace(go.Heatmap(hovertemplate="query %{y}<br>key %{x}<br>%{fullData.name} %{z:.3f}<extra></extra>",
                                 **data, **style), row=1, col=col)
    fig.update_xaxes(TICKS, tickfont=dict(size=8))
    fig.update_yaxes(type="category", autorange="reversed", tickfont=dict(size=8))
    fig.update_layout(update.layout, height=440, margin=dict(l=60, r=110, t=70, b=60))
    return fig


def ablation_update(change, cosine: float | None, ablated) -> FigureUpdate:
    """The largest weight change per layer; the axis follows the largest change, and each bar says its number (a
    change of 0.0003 must not vanish on a 0-1 axis)."""
    change = np.asarray(change, dtype=float)
    names = ", ".join(f"L{l}H{h}" for l, h in ablated) or "none"
    title = f"ablated: {names}" + ("" if cosine is None else f" | embedding cosine before/after {cosine:.4f}")
    top = float(change.max()) if change.size else 0.0
    return FigureUpdate(("ablation",), (dict(x=[f"L{l}" for l in range(len(change))], y=np.round(change, 6),
                                             text=[f"{v:.2g}" if v else "0" for v in change]),),
                        dict(title=dict(text=title), yaxis=dict(range=[0, top * 1.3 if top > 0 else 1e-3])))


def ablation_figure(change, cosine: float | None, ablated) -> go.Figure:
    """The largest weight change per layer caused by the ablated heads, and the embedding's cosine similarity."""
    update = ablation_update(change, cosine, ablated)
    bars = go.Bar(marker_color="#9467bd", textposition="outside", cliponaxis=False,
                  hovertemplate="layer %{x}: largest weight change %{y:.4g}<extra></extra>", **update.data[0])
    return go.Figure(bars, layout=dict(
        title=dict(text=update.title, font=dict(size=13)), height=240, margin=dict(l=60, r=10, t=50, b=40),
        yaxis=dict(update.layout["yaxis"], title_text="max |change|", tickformat=".2g"),
        xaxis=dict(type="category", title_text="layer")))


# ----- canvas maps: their fixed look, by view (the records come from the *_update functions above) ----------
_WEIGHTS = dict(colors=WEIGHT_COLORS, x_title="key (attended to)", y_title="query (attending)",
                colorbar_title="weight", hover="query {y}<br>key {x}<br>weight {z}", height=460)
CANVAS_STYLES = {
    "head": _WEIGHTS,
    "mean": _WEIGHTS,
    "rollout": dict(_WEIGHTS, x_title="input token", y_title="token at this layer", colorbar_title="share",
                    hover="token {y}<br>input {x}<br>share {z}"),
    "entropy": dict(colors="Viridis", x_title="head", y_title="layer", colorbar_title="entropy / log K", height=260,
                    width=430, x_angle=-90, title="head entropy (click a head)", hover_decimals=2,
                    hover="layer {y}, head {x}<br>entropy {z} of the maximum<br>click to open"),
}
