"""Heatmaps of attention weights: one matrix, or the heads of a layer as small multiples; and the two records that
views hand to panels: ``CanvasMap`` (a matrix for a canvas map) and ``FigureUpdate`` (a plotly figure's new frame).

Weights are drawn on a fixed colour scale (0 to 1 unless told otherwise) so frames can be compared.
Rows are queries (top to bottom, in reading order), columns are keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

WEIGHT_COLORS = "Blues"
SCORE_COLORS = "RdBu_r"
GRID_GAP_PX = 70  # between rows of small multiples with token labels


@dataclass(frozen=True)
class CanvasMap:
    """One labelled matrix for a canvas map (``explorer.widgets.heatmap_view.HeatmapView``). Fields left ``None``
    keep the view's fixed style (``CANVAS_STYLES`` of each view module)."""

    matrix: np.ndarray  # [rows, columns]
    x: list[str]  # column labels
    y: list[str]  # row labels
    outlines: tuple[dict, ...] = ()  # rectangles in cell units (``outline``)
    title: str | None = None
    x_angle: int | None = None
    zmin: float | None = None
    zmax: float | None = None
    x_title: str | None = None
    y_title: str | None = None
    height: int | None = None  # pixels, for a map whose rows must stay tall enough to click

    def traits(self) -> dict:
        """What the map sets on a ``HeatmapView``."""
        given = dict(matrix=self.matrix, x=list(self.x), y=list(self.y), outlines=list(self.outlines), title=self.title,
                     x_angle=self.x_angle, zmin=self.zmin, zmax=self.zmax, x_title=self.x_title, y_title=self.y_title,
                     height=self.height)
        return {name: value for name, value in given.items() if value is not None}


@dataclass(frozen=True)
class FigureUpdate:
    """What changes between two frames of one plotly figure: each trace's data, the layout, the subplot titles.
    Two updates with the same ``structure`` fit the same figure, so a panel copies the newer into the figure on
    screen instead of building it again."""

    structure: tuple
    data: tuple[dict, ...]  # per trace, in the figure's order: property -> values
    layout: dict = field(default_factory=dict)
    annotations: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return self.layout.get("title", {}).get("text", "")


def unique_labels(labels) -> list[str]:
    """Token labels made unique for a categorical axis ("the", "the" -> "the", "the·2") and kept readable."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        label = str(label)
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}\u00b7{seen[label]}")
    return out


def heatmap(
    matrix,
    x_labels,
    y_labels,
    title: str = "",
    zmin: float | None = 0.0,
    zmax: float | None = 1.0,
    colorscale: str = WEIGHT_COLORS,
    x_title: str = "key (attended to)",
    y_title: str = "query (attending)",
    colorbar_title: str = "weight",
    text_values: bool = False,
    height: int = 360,
    width: int | None = None,
) -> go.Figure:
    """One matrix as a labelled heatmap; ``text_values`` writes each number in its cell."""
    z = np.asarray(matrix, dtype=float)
    trace = go.Heatmap(
        z=z, x=unique_labels(x_labels), y=unique_labels(y_labels), zmin=zmin, zmax=zmax, colorscale=colorscale,
        colorbar=dict(title=dict(text=colorbar_title), thickness=12),
        hovertemplate="query %{y}<br>key %{x}<br>" + colorbar_title + " %{z:.3f}<extra></extra>",
    )
    if text_values:
        trace.update(text=np.round(z, 2), texttemplate="%{text}")
    fig = go.Figure(trace)
    fig.update_layout(title=dict(text=title), height=height, width=width, margin=dict(l=60, r=20, t=40, b=60))
    fig.update_xaxes(title_text=x_title, side="bottom", tickangle=-45 if len(z[0]) > 6 else 0, type="category")
    fig.update_yaxes(title_text=y_title, autorange="reversed", type="category")
    return fig


def outline(x0: float, x1: float, y0: float, y1: float, dash: bool = False, width: int = 2,
            color: str = "#d62728") -> dict:
    """A rectangle over cells of a canvas map (``HeatmapView.outlines``): edges in cell units, at half-integers."""
    return {"x0": x0, "x1": x1, "y0": y0, "y1": y1, "color": color, "width": width, "dash": "dot" if dash else ""}


def grid_shape(n_panels: int, max_cols: int = 4) -> tuple[int, int]:
    """Rows and columns for ``n_panels`` small multiples."""
    n_cols = min(max_cols, n_panels)
    return math.ceil(n_panels / n_cols), n_cols


def head_grid(
    weights,
    x_labels,
    y_labels,
    titles=None,
    title: str = "",
    max_cols: int = 4,
    zmin: float = 0.0,
    zmax: float = 1.0,
    panel_height: int = 220,
    show_labels: bool = True,
) -> go.Figure:
    """Small multiples, one heatmap per head: ``weights`` ``[heads, queries, keys]``; one shared colour bar."""
    weights = np.asarray(weights, dtype=float)
    n_heads = weights.shape[0]
    titles = list(titles) if titles is not None else [f"head {h}" for h in range(n_heads)]
    n_rows, n_cols = grid_shape(n_heads, max_cols)
    # Room between rows, in pixels: a row's turned tick labels and the next row's titles, also at the larger
    # fonts of present mode (which keeps these proportions).
    gap = GRID_GAP_PX if show_labels else 30
    plot_height = panel_height * n_rows + gap * (n_rows - 1)
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=titles, horizontal_spacing=0.04,
                        vertical_spacing=gap / plot_height if n_rows > 1 else 0.0)
    x, y = unique_labels(x_labels), unique_labels(y_labels)
    for h in range(n_heads):
        fig.add_trace(
            go.Heatmap(z=weights[h], x=x, y=y, zmin=zmin, zmax=zmax, colorscale=WEIGHT_COLORS, showscale=h == 0,
                       colorbar=dict(title=dict(text="weight"), thickness=12),
                       hovertemplate=f"{titles[h]}<br>query %{{y}}<br>key %{{x}}<br>weight %{{z:.3f}}<extra></extra>"),
            row=h // n_cols + 1, col=h % n_cols + 1,
        )
    fig.update_yaxes(autorange="reversed", type="category", showticklabels=show_labels, tickfont=dict(size=10))
    fig.update_xaxes(type="category", showticklabels=show_labels, tickfont=dict(size=10), tickangle=-60)
    fig.update_annotations(font_size=11)  # the heads' titles: narrow panels, and present mode makes them larger
    fig.update_layout(title=dict(text=title), height=plot_height + 120, margin=dict(l=60, r=20, t=60, b=60))
    return fig
