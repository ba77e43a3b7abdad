"""An export bar any panel can show: a figure as PNG/SVG (drawn by plotly.js in the browser), maps as JSON/npz."""

from __future__ import annotations

from typing import Callable

import ipywidgets as widgets

from explorer.views import export
from explorer.widgets.common import StatusLine, shows_errors


class ExportBar(widgets.HBox):
    """Pick what to export and the format, press Export; the browser downloads the file.

    ``figures`` maps a label to the CSS class of the figure widget on screen; ``maps`` returns the current
    record (an ``AttentionMaps``) or None when there is nothing to export yet.
    """

    def __init__(self, figures: dict[str, str], maps: Callable | None, status: StatusLine, name: str = "attention"):
        self.status, self.maps, self.name, self.figures = status, maps, name, dict(figures)
        targets = list(self.figures) + (["attention maps"] if maps is not None else [])
        self.target = widgets.Dropdown(options=targets, layout=widgets.Layout(width="150px"))
        self.format = widgets.Dropdown(layout=widgets.Layout(width="80px"))
        self.button = widgets.Button(description="Export", icon="download", layout=widgets.Layout(width="90px"))
        self.button.add_class("ae-export")
        self.downloads = widgets.HTML(layout=widgets.Layout(width="0px", height="0px"))
        self._nonce = 0
        super().__init__([self.target, self.format, self.button, self.downloads])
        self.target.observe(lambda _: self._sync_formats(), "value")
        self.button.on_click(lambda _: self.export())
        self._sync_formats()

    def _sync_formats(self) -> None:
        is_maps = self.target.value == "attention maps"
        options = export.DATA_FORMATS if is_maps else export.IMAGE_FORMATS
        self.format.options = options
        self.format.value = options[0]

    @shows_errors
    def export(self) -> None:
        """Start the download of the chosen target in the chosen format."""
        self._nonce += 1
        fmt = self.format.value
        if self.target.value == "attention maps":
            record = self.maps()
            if record is None:
                raise ValueError("Nothing to export yet.")
            filename = f"{self.name}-maps.{fmt}"
            self.downloads.value = export.download_link(export.maps_bytes(record, fmt), filename, fmt, self._nonce)
        else:
            filename = f"{self.name}-{self.target.value.replace(' ', '-')}"
            self.downloads.value = export.image_script(self.figures[self.target.value], fmt, filename, self._nonce)
            filename += f".{fmt}"
        self.status.ok(f"Exported {filename}.")
