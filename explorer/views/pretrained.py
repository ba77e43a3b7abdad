"""Figures for the Pretrained tab: records in, plotly figures out.

Each figure comes in two parts: ``*_update(...)`` gives what changes from frame to frame (trace data,
title, outlines) as a plain dict, and ``*_figure(...)`` builds the whole figure once from that update.
The panel builds a figure the first time and afterwards copies only the update into the FigureWidget on
screen (``apply_update``), which skips rebuilding and re-validating the static parts. Weights are sent
rounded to 3 decimals (what the hover shows) and only for the layer on screen.

An update is ``{"structure": ..., "data": [per-trace dict], "layout": dict, "annotations": [texts]}``;
two updates with the same ``structure`` fit the same figure.
"""

from __future__ import annotations

import base64
import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.views.heatmaps import SCORE_COLORS, WEIGHT_COLORS, head_grid, heatmap, outline, unique_labels

DECIMALS = 3
HIGHLIGHT = "#d62728"
GRID_LABELS_UP_TO = 24  # small multiples show token labels up to this many tokens
TICKS = dict(type="category", tickangle=-60, tickfont=dict(size=9))


def _z(matrix) -> np.ndarray:
    return np.round(np.asarray(matrix, dtype=float), DECIMALS)


def packed(values):
    """A matrix as plotly.js's typed-array spec (float32, base64): far less to encode and send than nested lists."""
    if not isinstance(values, np.ndarray) or values.ndim != 2:
        return values
    data = np.ascontiguousarray(values, dtype=np.float32)
    return {"dtype": "f4", "bdata": base64.b64encode(data.tobytes()).decode("ascii"),
            "shape": f"{data.shape[0]}, {data.shape[1]}"}


def unpacked(values) -> np.ndarray:
    """The matrix behind a typed-array spec (or the values themselves)."""
    if isinstance(values, dict) and "bdata" in values:
        shape = tuple(int(n) for n in values["shape"].split(","))
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.float32).reshape(shape)
    return np.asarray(values)


def apply_update(fig, update: dict) -> None:
    """Copy an update into a figure built for the same ``structure`` (a FigureWidget sends only the changes)."""
    with fig.batch_update():
        for trace, values in zip(fig.data, update["data"]):
            trace.update({name: packed(value) for name, value in values.items()})
        fig.layout.update(update.get("layout", {}))
        for annotation, text in zip(fig.layout.annotations, update.get("annotations", ())):
            annotation.text = text


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


def matrix_update(kind: str, matrix, keys, queries, title: str, token: int | None = None) -> dict:
    """One labelled matrix, with the selected token's row and column outlined."""
    return {"structure": (kind,), "data": [dict(z=_z(matrix), x=unique_labels(keys), y=unique_labels(queries))],
            "layout": dict(title=dict(text=title), shapes=highlight_shapes(len(queries), len(keys), token))}


def matrix_figure(update: dict, **style) -> go.Figure:
    trace = update["data"][0]
    fig = heatmap(trace["z"], trace["x"], trace["y"], title=update["layout"]["title"]["text"], height=460, **style)
    fig.update_layout(shapes=update["layout"]["shapes"])
    return fig


def ablated_heads(maps, layer: int) -> set[int]:
    """Heads of ``layer`` whose output was zeroed when ``maps`` were made (their own weights are unchanged)."""
    return {h for l, h in maps.meta.get("ablated", ()) if l == layer}


def head_update(maps, layer: int, head: int, token: int | None = None) -> dict:
    title = f"layer {layer}, head {head}"
    if head in ablated_heads(maps, layer):
        title += " (output zeroed: later layers feel it)"
    return matrix_update("head", maps.head(layer, head), maps.keys, maps.tokens, title, token)


def head_figure(maps, layer: int, head: int, token: int | None = None) -> go.Figure:
    """One head as a heatmap, queries down and keys across, with the selected token's row and column outlined."""
    return matrix_figure(head_update(maps, layer, head, token))


def mean_update(maps, layer: int, token: int | None = None) -> dict:
    return matrix_update("mean", maps.mean_over_heads(layer), maps.keys, maps.tokens,
                         f"layer {layer}: mean over {maps.n_heads} heads", token)


def mean_figure(maps, layer: int, token: int | None = None) -> go.Figure:
    """The average of one layer's heads."""
    return matrix_figure(mean_update(maps, layer, token))


def rollout_update(rollout_layer, tokens, layer: int, token: int | None = None) -> dict:
    return matrix_update("rollout", rollout_layer, tokens, tokens, f"attention rollout through layer {layer}", token)


def rollout_figure(rollout_layer, tokens, layer: int, token: int | None = None) -> go.Figure:
    """Attention rollout up to ``layer``: how much each token draws on each input token."""
    return matrix_figure(rollout_update(rollout_layer, tokens, layer, token), x_title="input token",
                         y_title="token at this layer", colorbar_title="share")


def layer_update(maps, layer: int) -> dict:
    keys, queries = unique_labels(maps.keys), unique_labels(maps.tokens)
    weights = _z(maps.layer(layer))
    ablated = ablated_heads(maps, layer)
    return {"structure": ("layer", maps.n_heads, len(maps.tokens) <= GRID_LABELS_UP_TO),
            "data": [dict(z=w, x=keys, y=queries) for w in weights],
            "layout": dict(title=dict(text=f"layer {layer}: every head")),
            "annotations": [f"head {h}" + (" (ablated)" if h in ablated else "") for h in range(maps.n_heads)]}


def layer_figure(maps, layer: int) -> go.Figure:
    """All heads of one layer as small multiples on one colour scale."""
    update = layer_update(maps, layer)
    show_labels = update["structure"][2]
    return head_grid([t["z"] for t in update["data"]], maps.keys, maps.tokens, titles=update["annotations"],
                     title=update["layout"]["title"]["text"], panel_height=200 if show_labels else 170,
                     show_labels=show_labels)


def entropy_update(entropy, n_keys: int, layer: int, head: int) -> dict:
    """Mean row entropy of every head as a share of the most spread-out ``log K``; the head on screen marked."""
    entropy = np.asarray(entropy, dtype=float)
    share = entropy / math.log(n_keys) if n_keys > 1 else np.zeros_like(entropy)
    # The head on screen is outlined by a shape, not a marker trace: moving a shape is a relayout, which
    # plotly.js draws without recomputing the heatmap's traces (a little less page time per head change).
    outline = dict(type="rect", xref="x", yref="y", x0=head - 0.5, x1=head + 0.5, y0=layer - 0.5, y1=layer + 0.5,
                   line=dict(width=3, color=HIGHLIGHT))
    return {"structure": ("entropy",) + entropy.shape, "data": [dict(z=_z(share))], "layout": dict(shapes=[outline])}


def entropy_figure(entropy, n_keys: int, layer: int, head: int) -> go.Figure:
    """Head entropy ``[layers, heads]``: low (dark) heads focus on few tokens; clicking a cell opens that head."""
    update = entropy_update(entropy, n_keys, layer, head)
    n_layers, n_heads = update["structure"][1:]
    share = update["data"][0]
    return go.Figure([
        go.Heatmap(z=share["z"], x=[f"H{h}" for h in range(n_heads)], y=[f"L{l}" for l in range(n_layers)],
                   zmin=0.0, zmax=1.0, colorscale="Viridis", colorbar=dict(title=dict(text="entropy / log K"), thickness=10),
                   hovertemplate="layer %{y}, head %{x}<br>entropy %{z:.2f} of the maximum<br>click to open<extra></extra>"),
    ], layout=dict(title=dict(text="head entropy (click a head)"), height=260, width=430, shapes=update["layout"]["shapes"],
                   margin=dict(l=40, r=10, t=40, b=30), xaxis=dict(type="category", title_text="head"),
                   yaxis=dict(type="category", autorange="reversed", title_text="layer")))


def focus_update(maps, layer: int, head: int, token: int | None) -> dict:
    """The selected token's row (the weights it gives) and column (the weights it receives)."""
    labels = unique_labels(maps.tokens)
    weights = maps.head(layer, head)
    gives = _z(weights[token]) if token is not None else np.zeros(len(labels))
    receives = _z(weights[:, token]) if token is not None else np.zeros(len(labels))
    title = ("pick a token (click a row) to see its row and column" if token is None else
             f"'{labels[token]}' attends to (left) and is attended by (right)")
    return {"structure": ("focus",), "data": [dict(x=unique_labels(maps.keys), y=gives), dict(x=labels, y=receives)],
            "layout": dict(title=dict(text=title))}


def token_focus_figure(maps, layer: int, head: int, token: int | None) -> go.Figure:
    """Bars of what the selected token attends to (left) and of who attends to it (right)."""
    gives, receives = (update := focus_update(maps, layer, head, token))["data"]
    return go.Figure([
        go.Bar(marker_color="#1f77b4", name="attends to", hovertemplate="key %{x}: %{y:.3f}<extra></extra>", **gives),
        go.Bar(marker_color="#ff7f0e", name="attended by", xaxis="x2", yaxis="y2",
               hovertemplate="query %{x}: %{y:.3f}<extra></extra>", **receives),
    ], layout=dict(xaxis=dict(TICKS, domain=[0, 0.46]), xaxis2=dict(TICKS, domain=[0.54, 1], anchor="y2"),
                   yaxis=dict(range=[0, 1], title_text="weight"), yaxis2=dict(range=[0, 1], anchor="x2"),
                   title=dict(update["layout"]["title"], font=dict(size=13)), height=260, width=520,
                   showlegend=False, margin=dict(l=50, r=10, t=40, b=70)))


def compare_update(maps_a, maps_b, difference, layer: int, head: int) -> dict:
    data = [dict(z=_z(m.head(layer, head)), x=unique_labels(m.keys), y=unique_labels(m.tokens))
            for m in (maps_a, maps_b, difference)]
    return {"structure": ("compare",), "data": data,
            "layout": dict(title=dict(text=f"layer {layer}, head {head}: two texts")),
            "annotations": ["text A", "text B", f"B - A on {len(difference.tokens)} shared tokens"]}


def compare_figure(maps_a, maps_b, difference, layer: int, head: int) -> go.Figure:
    """Text A and text B side by side for one head, and B - A on the tokens they share."""
    update = compare_update(maps_a, maps_b, difference, layer, head)
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07, subplot_titles=update["annotations"])
    styles = [dict(zmin=0.0, zmax=1.0, colorscale=WEIGHT_COLORS, showscale=True, name="weight",
                   colorbar=dict(title=dict(text="weight"), thickness=10, x=1.02)),
              dict(zmin=0.0, zmax=1.0, colorscale=WEIGHT_COLORS, showscale=False, name="weight"),
              dict(zmin=-1.0, zmax=1.0, colorscale=SCORE_COLORS, name="B - A",
                   colorbar=dict(title=dict(text="B - A"), thickness=10, x=1.12))]
    for col, (data, style) in enumerate(zip(update["data"], styles), start=1):
        fig.add_trace(go.Heatmap(hovertemplate="query %{y}<br>key %{x}<br>%{fullData.name} %{z:.3f}<extra></extra>",
                                 **data, **style), row=1, col=col)
    fig.update_xaxes(TICKS, tickfont=dict(size=8))
    fig.update_yaxes(type="category", autorange="reversed", tickfont=dict(size=8))
    fig.update_layout(update["layout"], height=440, margin=dict(l=60, r=110, t=70, b=60))
    return fig


def ablation_update(change, cosine: float | None, ablated) -> dict:
    change = np.asarray(change, dtype=float)
    names = ", ".join(f"L{l}H{h}" for l, h in ablated) or "none"
    title = f"ablated: {names}" + ("" if cosine is None else f" | embedding cosine before/after {cosine:.4f}")
    return {"structure": ("ablation",), "data": [dict(x=[f"L{l}" for l in range(len(change))], y=_z(change))],
            "layout": dict(title=dict(text=title))}


def ablation_figure(change, cosine: float | None, ablated) -> go.Figure:
    """The largest weight change per layer caused by the ablated heads, and the embedding's cosine similarity."""
    update = ablation_update(change, cosine, ablated)
    bars = go.Bar(marker_color="#9467bd", hovertemplate="layer %{x}: largest weight change %{y:.3f}<extra></extra>",
                  **update["data"][0])
    return go.Figure(bars, layout=dict(
        title=dict(update["layout"]["title"], font=dict(size=12)), height=220, margin=dict(l=50, r=10, t=40, b=30),
        yaxis=dict(range=[0, 1], title_text="max |change|"), xaxis=dict(type="category", title_text="layer")))


# ----- canvas maps ---------------------------------------------------------------------------------------
# The maps that change on every click (one head, the mean, rollout, the entropy map) are drawn on a canvas by
# ``explorer.widgets.heatmap_view.HeatmapView``: plotly.js recomputes and redraws its whole SVG heatmap for any
# change, even for moving an outline. Their look, by view:
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


def canvas_update(key: str, update: dict) -> dict:
    """What a canvas map shows for ``update`` (one of the ``*_update`` dicts above): matrix, labels, title, outlines."""
    trace, layout = update["data"][0], update["layout"]
    matrix = np.asarray(trace["z"], dtype=float)
    rows, cols = matrix.shape
    if "x" in trace:
        shown = dict(x=list(trace["x"]), y=list(trace["y"]), title=layout["title"]["text"], x_angle=-45 if cols > 6 else 0)
    else:  # the entropy map: heads across, layers down
        shown = dict(x=[f"H{h}" for h in range(cols)], y=[f"L{l}" for l in range(rows)])
    shown["outlines"] = [outline(shape["x0"], shape["x1"], shape["y0"], shape["y1"], dash=shape["line"].get("dash") == "dot",
                                 width=shape["line"].get("width", 2), color=shape["line"].get("color", HIGHLIGHT))
                         for shape in layout.get("shapes", ())]
    return dict(matrix=matrix, **shown)
