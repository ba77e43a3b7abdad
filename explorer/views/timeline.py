"""A training timeline as a file to keep: an animated GIF or a self-contained HTML page.

Both take the snapshots a Trainer records (``Snapshot``s of ``AttentionMaps``), and draw every head of one
layer at each step, on the fixed 0..1 weight scale so frames compare.
"""

from __future__ import annotations

import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from explorer.views.heatmaps import grid_shape, head_grid

CELL = 18  # pixels per attention weight in the GIF
GAP = 10
CAPTION = 22
# The "Blues" scale of the on-screen heatmaps, from weight 0 (light) to 1 (dark).
BLUES = np.array([[247, 251, 255], [222, 235, 247], [198, 219, 239], [158, 202, 225], [107, 174, 214],
                  [66, 146, 198], [33, 113, 181], [8, 81, 156], [8, 48, 107]], dtype=float)


def _check(snapshots, layer: int):
    if not snapshots:
        raise ValueError("There is no timeline yet: train for a few steps first.")
    maps = snapshots[-1].maps
    if not 0 <= layer < maps.n_layers:
        raise ValueError(f"Layer {layer} does not exist: the model has layers 0 to {maps.n_layers - 1}.")


def colour(weights: np.ndarray) -> np.ndarray:
    """Weights in [0, 1] ``[Q, K]`` to RGB ``[Q, K, 3]`` on the Blues scale."""
    position = np.clip(weights, 0.0, 1.0) * (len(BLUES) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(BLUES) - 1)
    t = (position - low)[..., None]
    return ((1 - t) * BLUES[low] + t * BLUES[high]).astype(np.uint8)


def frame_image(maps, layer: int, step: int) -> Image.Image:
    """One frame: the heads of ``layer`` side by side (rows of four), with the step written above."""
    heads = maps.layer(layer).numpy()
    n_rows, n_cols = grid_shape(len(heads))
    q, k = heads.shape[1:]
    width = n_cols * (k * CELL + GAP) + GAP
    height = CAPTION + n_rows * (q * CELL + GAP) + GAP
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((GAP, 5), f"layer {layer}, step {step}", fill="black")
    for h, weights in enumerate(heads):
        tile = Image.fromarray(colour(weights)).resize((k * CELL, q * CELL), Image.NEAREST)
        x = GAP + (h % n_cols) * (k * CELL + GAP)
        y = CAPTION + (h // n_cols) * (q * CELL + GAP)
        image.paste(tile, (x, y))
        draw.text((x + 2, y + 2), f"h{h}", fill="black")
    return image


def timeline_gif(snapshots, layer: int = 0, seconds_per_frame: float = 0.4, max_frames: int = 60) -> bytes:
    """The heads of ``layer`` over training as an animated GIF (at most ``max_frames`` evenly spaced frames)."""
    _check(snapshots, layer)
    chosen = np.unique(np.linspace(0, len(snapshots) - 1, min(max_frames, len(snapshots))).round().astype(int))
    frames = [frame_image(snapshots[i].maps, layer, snapshots[i].step) for i in chosen]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:],
                   duration=int(seconds_per_frame * 1000), loop=0)
    return buffer.getvalue()


def timeline_figure(snapshots, layer: int = 0, max_frames: int = 60) -> go.Figure:
    """The heads of ``layer`` over training as a plotly animation with a step slider and a Play button."""
    _check(snapshots, layer)
    chosen = np.unique(np.linspace(0, len(snapshots) - 1, min(max_frames, len(snapshots))).round().astype(int))
    first = snapshots[chosen[0]].maps
    fig = head_grid(first.layer(layer), first.keys, first.tokens, title=f"layer {layer}: attention while training")
    fig.frames = [go.Frame(data=[go.Heatmap(z=w) for w in snapshots[i].maps.layer(layer).numpy()],
                           name=str(snapshots[i].step)) for i in chosen]
    steps = [dict(method="animate", label=frame.name,
                  args=[[frame.name], dict(mode="immediate", frame=dict(duration=0, redraw=True))])
             for frame in fig.frames]
    fig.update_layout(
        sliders=[dict(steps=steps, currentvalue=dict(prefix="step "), pad=dict(t=40))],
        updatemenus=[dict(type="buttons", x=0, y=-0.08, xanchor="left", buttons=[dict(
            label="Play", method="animate",
            args=[None, dict(frame=dict(duration=300, redraw=True), fromcurrent=True)])])],
    )
    return fig


def timeline_html(snapshots, layer: int = 0, max_frames: int = 60) -> bytes:
    """A self-contained HTML page (plotly.js inlined, so it opens offline) with the animated timeline."""
    figure = timeline_figure(snapshots, layer, max_frames)
    return figure.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")
