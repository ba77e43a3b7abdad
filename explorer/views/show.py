"""Figures that ``explorer.show()`` adds to the Pretrained tab's views: every layer and head at once (bertviz's
model view, drawn as small multiples), the labels of layers and heads kept from the model, and a page that
holds the figures offline (the bertviz drop-ins' ``html_action="return"``).
"""

from __future__ import annotations

import html
import re
from dataclasses import replace

import numpy as np
import plotly.graph_objects as go

from explorer.views.heatmaps import CanvasMap, FigureUpdate, head_grid

MODEL_CELLS = 32  # each small multiple of the model view is averaged down to at most this many cells a side


def shrink(matrix: np.ndarray, cells: int = MODEL_CELLS) -> np.ndarray:
    """A ``[Q, K]`` matrix averaged over blocks so each side has at most ``cells``."""
    for axis in (0, 1):
        n = matrix.shape[axis]
        size = -(-n // cells)  # rounded up
        blocks = [np.take(matrix, range(start, min(start + size, n)), axis=axis).mean(axis=axis)
                  for start in range(0, n, size)]
        matrix = np.stack(blocks, axis=axis)
    return matrix


def model_update(maps, layer_names, head_names) -> FigureUpdate:
    """Every layer (rows) and head (columns), for small multiples; each map pooled to ``MODEL_CELLS`` a side."""
    weights = np.asarray(maps.weights, dtype=float)
    labelled = len(maps.tokens) <= MODEL_CELLS and len(maps.keys) <= MODEL_CELLS
    panels = [np.round(shrink(weights[l, h]), 3) for l in range(maps.n_layers) for h in range(maps.n_heads)]
    titles = [f"L{layer_names[l] if layer_names[l].isdigit() else l} H{head_names[h]}"  # a module path is too long
              for l in range(maps.n_layers) for h in range(maps.n_heads)]
    title = f"every layer (rows) and head (columns): {maps.n_layers} x {maps.n_heads}; click a map to open it"
    return FigureUpdate(("model", maps.n_layers, maps.n_heads, labelled), tuple(dict(z=z) for z in panels),
                        dict(title=dict(text=title)), tuple(titles))


def model_figure(maps, layer_names, head_names) -> go.Figure:
    """bertviz's model view as small multiples on one colour scale: a row per layer, a column per head."""
    update = model_update(maps, layer_names, head_names)
    labelled = update.structure[3]
    keys = maps.keys if labelled else range(update.data[0]["z"].shape[1])
    queries = maps.tokens if labelled else range(update.data[0]["z"].shape[0])
    panel = max(56, min(150, 760 // maps.n_heads))
    fig = head_grid([d["z"] for d in update.data], keys, queries, titles=list(update.annotations), title=update.title,
                    max_cols=maps.n_heads, panel_height=panel, show_labels=False)
    fig.update_annotations(font=dict(size=9))
    fig.update_layout(margin=dict(l=20, r=20, t=60, b=20), title=dict(font=dict(size=13)))
    return fig


def named(update, layer: int, layer_name: str, head: int | None = None, head_name: str | None = None):
    """A ``CanvasMap`` or ``FigureUpdate`` whose title says the model's own layer and head numbers (a record cut to
    some layers keeps them)."""
    def rename(text: str) -> str:
        if layer_name.isdigit():
            text = re.sub(rf"\blayer {layer}\b", f"layer {layer_name}", text)
        if head is not None and head_name is not None:
            text = re.sub(rf"\bhead {head}\b", f"head {head_name}", text)
        return text

    if isinstance(update, CanvasMap):
        return replace(update, title=rename(update.title)) if update.title else update
    return titled(update, rename(update.title))


def titled(update: FigureUpdate, title: str) -> FigureUpdate:
    """The same update under another title."""
    return replace(update, layout=dict(update.layout, title=dict(update.layout.get("title", {}), text=title)))


def page(figures: list[go.Figure], title: str, plotly_js: str) -> str:
    """A whole HTML page holding ``figures`` with plotly.js inlined: it opens offline, from a file or a notebook."""
    parts = [figure.to_html(full_html=False, include_plotlyjs=False) for figure in figures]
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<script>{plotly_js}</script></head><body><h3 style=\"font-family:sans-serif\">{html.escape(title)}</h3>"
            + "".join(parts) + "</body></html>")
