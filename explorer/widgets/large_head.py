"""One head of a grid of small multiples, opened large below it: what a click on a small head does.

``LargeHead.show_head(maps, layer, head, title)`` draws that head on a canvas map as large as the panel, with its tokens
readable; ``hide()`` hides it (``open`` and ``close`` are a widget's own). The panel that owns the grid opens it again when its maps change (a new snapshot,
a new translation), so the large head follows what the grid shows.
"""

from __future__ import annotations

import ipywidgets as widgets

from explorer.views import pretrained as map_view
from explorer.widgets.controls import button
from explorer.widgets.heatmap_view import HeatmapView


class LargeHead(widgets.VBox):
    """A canvas map of one head and a close button; hidden until a head is opened. ``shown`` is the open
    ``(layer, head)`` (and the owner's ``key``, such as which run), or None."""

    def __init__(self, name: str):
        self.map = HeatmapView(name=name, **map_view.CANVAS_STYLES["head"])
        self.shown: tuple | None = None
        close = button("close", self.hide, f"{name}-close", icon="times", width="80px")
        super().__init__([self.map, close], layout=widgets.Layout(display="none", width="100%"))

    def show_head(self, maps, layer: int, head: int, title: str, key=None) -> None:
        """Draw head ``head`` of ``layer`` of ``maps`` large, titled ``title``."""
        self.shown = (layer, head, key)
        self.map.draw(map_view.matrix_update(maps.head(layer, head), maps.keys, maps.tokens, title))
        self.layout.display = None

    def hide(self) -> None:
        self.shown = None
        self.layout.display = "none"
