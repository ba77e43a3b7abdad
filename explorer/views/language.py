"""Figures for the Language model tab: the causal head map (pooled when long), head finder grids, candidates.

Records in, canvas-map records (``CanvasMap``) out (drawn by ``explorer.widgets.heatmap_view.HeatmapView``); the look of each
map is fixed in ``CANVAS_STYLES`` so frames compare.
"""

from __future__ import annotations

import html
from dataclasses import replace

import numpy as np

from explorer.views import pretrained
from explorer.views.heatmaps import CanvasMap, outline
from explorer.views.words import heads_in_words

MAX_CELLS = 500  # a map longer than this is sent pooled to at most MAX_CELLS x MAX_CELLS cells (< 1 MB)
NOTHING = np.zeros((0, 0), dtype=np.float32)  # a canvas map with nothing to draw shows its EMPTY line instead
EMPTY = {
    "head": "The head map appears here once you press Generate: which earlier tokens each token looks at, for the "
            "layer and head you choose.",
    "probe": "Press Find induction heads: this head is then shown on the repeated random tokens it is scored on.",
    "finder": "The head finder appears here after Generate: one cell per head, coloured by a score such as "
              "'previous token'. Click a cell to open that head.",
}
FINDER_ROW_PX = 16  # a head finder's row is at least this tall, so a cell is easy to click
ZOOM = 400  # tokens of a long map shown whole when zoomed in (400 x 400 float32: 640 kB)
SCORE_RANGES = {"previous token": (0.0, 1.0), "attention sink": (0.0, 1.0), "self": (0.0, 1.0),
                "induction": (0.0, 1.0), "entropy": (0.0, None)}


def head_map(maps, layer: int, head: int, token: int | None = None, cells: int = MAX_CELLS, zoom: int = -1,
             window: int = ZOOM) -> CanvasMap:
    """One causal head for a canvas map; a long text is pooled into blocks of tokens (labelled by their span),
    or with ``zoom >= 0`` its ``window`` tokens from ``zoom`` on are shown whole (that region only is sent)."""
    if len(maps.tokens) > cells and zoom >= 0:
        end = min(zoom + window, len(maps.tokens))
        labels = [f"{i}: {t}" for i, t in zip(range(zoom, end), maps.tokens[zoom:end])]
        inside = None if token is None or not zoom <= token < end else token - zoom
        title = f"layer {layer}, head {head}, tokens {zoom} to {end - 1} of {len(maps.tokens)} (click: pick a token)"
        region = maps.rows(layer, [head], slice(zoom, end))[0, :, zoom:end]  # only the rows on screen are worked out
        update = pretrained.matrix_update(region, labels, labels, title, inside, zmax=1.0)
    elif len(maps.tokens) <= cells:
        update = replace(pretrained.head_update(maps, layer, head, token), zmax=1.0)
    else:
        matrix, spans = maps.pooled_head(layer, head, cells)  # worked out in blocks of rows, never T x T at once
        matrix = matrix.numpy()
        labels = [f"{a}-{b - 1}" for a, b in spans]
        block = None if token is None else next(i for i, (a, b) in enumerate(spans) if a <= token < b)
        lower = matrix[np.tril_indices(len(spans))]
        top = max(float(np.quantile(lower, 0.995)), 1e-3)  # a block's mean is small: show where the weight is
        title = (f"layer {layer}, head {head} (mean over blocks of {spans[0][1]} tokens; colour to {top:.3f}; "
                 "click a block to zoom in)")
        # block means sit near 1/T: keep DECIMALS significant digits below the colour top, not DECIMALS places
        decimals = pretrained.DECIMALS - int(np.floor(np.log10(top)))
        update = pretrained.matrix_update(matrix, labels, labels, title, block, zmax=top, decimals=decimals)
    kv = maps.meta.kv_heads
    if kv and len(set(kv)) < len(kv):
        update = replace(update, title=f"{update.title}, shares key/value head {kv[head]}")
    return update


def score_grid(scores, name: str, layer: int, head: int) -> CanvasMap:
    """A head finder score ``[layers, heads]`` as a grid with the head on screen outlined."""
    matrix = np.round(np.asarray(scores, dtype=float), 3)
    n_layers, n_heads = matrix.shape
    low, high = SCORE_RANGES.get(name, (0.0, None))
    return CanvasMap(matrix, [f"H{h}" for h in range(n_heads)], [f"L{l}" for l in range(n_layers)],
                     (outline(head - 0.5, head + 0.5, layer - 0.5, layer + 0.5, width=3, color=pretrained.HIGHLIGHT),),
                     f"{name} score (click a head)", zmin=low, zmax=float(matrix.max()) if high is None else high,
                     height=max(300, FINDER_ROW_PX * n_layers + 130))


def candidates_html(tokens, position: int, candidates) -> str:
    """The picked position's likeliest next tokens with their probabilities, as a small table."""
    if not candidates:
        return ""
    shown = position if position >= 0 else len(tokens) - 1
    rows = "".join(f"<tr><td><code>{html.escape(repr(text))}</code></td><td>{p:.1%}</td></tr>" for text, p in candidates)
    return (f"<b>after '{html.escape(tokens[shown])}' (position {shown}) the model expects</b>"
            f"<table>{rows}</table>")


def probe_html(probe: dict | None) -> str:
    """The induction probe's ablation effect as numbers."""
    if probe is None:
        return "<i>Press Find induction heads to score every head on a repeated random sequence.</i>"
    top = heads_in_words(probe["top"])
    text = (f"Second-copy loss {probe['loss']:.3f}; with the top induction heads ({top}) ablated "
            f"{probe['ablated_loss']:.3f} (+{probe['ablated_loss'] - probe['loss']:.3f}).")
    if probe["chosen"]:
        text += f" With your ablated heads ({heads_in_words(probe['chosen'])}): {probe['chosen_loss']:.3f}."
    return html.escape(text)


CANVAS_STYLES = {
    "head": pretrained.CANVAS_STYLES["head"],
    "finder": dict(colors="Viridis", x_title="head", y_title="layer", colorbar_title="score", height=300, width=430,
                   x_angle=-90, hover_decimals=3, hover="layer {y}, head {x}<br>score {z}<br>click to open"),
}
