"""A matrix drawn on a canvas in the page: for the maps that change on every click (a head, the entropy map).

plotly.js recomputes and redraws its whole SVG heatmap for any change, even for moving an outline (a shape's
corners are ``calc`` edits): about 60 ms of page time for a head's map and as much again for the entropy
map's outline, per head change. ``HeatmapView`` sends the matrix as float32 bytes and the page repaints one
canvas: title, token labels, colour bar, outlines, hover values, clicks, and PNG/SVG export in the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import anywidget
import numpy as np
import plotly.colors
from traitlets import Bytes, Dict, Float, Int, List, Unicode


def colorscale(name: str) -> list:
    """plotly's named colour scale as ``[[position, "rgb(r,g,b)"], ...]``, so both kinds of figure agree."""
    return [[float(position), "rgb({},{},{})".format(*plotly.colors.hex_to_rgb(color)) if color.startswith("#") else color]
            for position, color in plotly.colors.get_colorscale(name)]


class HeatmapView(anywidget.AnyWidget):
    """One labelled matrix. Set ``matrix`` (rows are ``y``, columns ``x``) and the labels; clicks call back.

    ``outlines`` are rectangles in cell units (``explorer.views.heatmaps.outline``) with the
    cell edges at -0.5, 0.5, ... (as plotly shapes on a categorical heatmap).
    """

    _esm = Path(__file__).with_name("heatmap_view.js")
    _css = """
    .ae-heatmap { position: relative; width: 100%; }
    .ae-heatmap canvas { display: block; cursor: crosshair; }
    .ae-heatmap canvas.ae-heatmap-overlay { position: absolute; left: 0; top: 0; pointer-events: none; }
    .ae-heatmap-tip { position: fixed; display: none; pointer-events: none; background: #fff; color: #2a3f5f;
      border: 1px solid #8a9bb3; border-radius: 3px; padding: 3px 6px; font: 12px "Open Sans", verdana, arial, sans-serif;
      white-space: nowrap; z-index: 1000; }
    """
    name = Unicode("").tag(sync=True)
    z = Bytes(b"").tag(sync=True)
    shape = List(Int(), default_value=[0, 0]).tag(sync=True)
    x = List(Unicode()).tag(sync=True)
    y = List(Unicode()).tag(sync=True)
    title = Unicode("").tag(sync=True)
    x_title = Unicode("").tag(sync=True)
    y_title = Unicode("").tag(sync=True)
    colorbar_title = Unicode("").tag(sync=True)
    zmin = Float(0.0).tag(sync=True)
    zmax = Float(1.0).tag(sync=True)
    colorscale = List(default_value=[]).tag(sync=True)
    outlines = List(Dict()).tag(sync=True)
    hover = Unicode("query {y}<br>key {x}<br>weight {z}").tag(sync=True)
    hover_decimals = Int(3).tag(sync=True)
    tick_size = Int(11).tag(sync=True)
    x_angle = Int(-45).tag(sync=True)
    height = Int(460).tag(sync=True)
    width = Int(0).tag(sync=True)  # 0: as wide as its box
    empty_text = Unicode("").tag(sync=True)  # shown instead of empty axes while there is no matrix
    stale = Unicode("").tag(sync=True)  # when set, the map is greyed with this line (it no longer matches its text)

    def __init__(self, colors: str = "Blues", **traits):
        matrix = traits.pop("matrix", None)
        super().__init__(colorscale=colorscale(colors), **traits)
        self._click_handlers: list[Callable[[int, int], None]] = []
        self.on_msg(self._on_page_message)
        if matrix is not None:
            self.matrix = matrix

    @property
    def matrix(self) -> np.ndarray:
        """The matrix on screen (float32)."""
        return np.frombuffer(self.z, dtype="<f4").reshape(self.shape).copy()

    @matrix.setter
    def matrix(self, values) -> None:
        values = np.asarray(values, dtype="<f4")
        if values.ndim != 2:
            raise ValueError(f"A heatmap needs a 2-D matrix, not one of shape {values.shape}.")
        self.show(matrix=values)

    def show(self, matrix=None, **traits) -> None:
        """Change what is drawn, in one message to the page (only the values that differ are sent)."""
        if matrix is not None:
            matrix = np.ascontiguousarray(matrix, dtype="<f4")
            traits.update(z=matrix.tobytes(), shape=list(matrix.shape))
        with self.hold_sync():
            for name, value in traits.items():
                if getattr(self, name) != value:
                    setattr(self, name, value)

    def draw(self, record) -> None:
        """Draw a ``CanvasMap`` record (``explorer.views.heatmaps``)."""
        self.show(**record.traits())

    def on_click(self, callback: Callable[[int, int], None]) -> None:
        """Call ``callback(row, col)`` when a cell is clicked in the page."""
        self._click_handlers.append(callback)

    def click(self, row: int, col: int) -> None:
        """What a click on cell (``row``, ``col``) does (the page sends these)."""
        for handler in self._click_handlers:
            handler(int(row), int(col))

    def _on_page_message(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("event") == "click":
            self.click(content["row"], content["col"])
