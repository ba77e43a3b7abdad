"""An export bar any panel can show: figures as PNG/SVG (drawn by plotly.js in the browser), data as files.

Figures are named by the CSS class of their widget on screen. Data exports (attention maps as JSON or
npz, a training timeline as GIF or HTML, ...) are functions that return the file's bytes for a format.
"""

from __future__ import annotations

from typing import Callable

import ipywidgets as widgets

from explorer.views import export
from explorer.widgets.common import StatusLine, shows_errors

def maps_export(get_maps: Callable) -> tuple[tuple[str, ...], Callable]:
    """A data export of the current ``AttentionMaps`` (``get_maps()`` returns it, or None before there is one)."""

    def to_bytes(fmt: str) -> bytes:
        record = get_maps()
        if record is None:
            raise ValueError("Nothing to export yet.")
        return export.maps_bytes(record, fmt)

    return export.DATA_FORMATS, to_bytes


class ExportBar(widgets.HBox):
    """Pick what to export and the format, press Export; the browser downloads the file.

    ``figures`` maps a label to the CSS class of a figure widget; ``data`` maps a label to
    ``(formats, to_bytes)`` where ``to_bytes(fmt)`` returns the file (or raises a ValueError saying why not).
    """

    def __init__(self, figures: dict[str, str], data: dict[str, tuple] | None, status: StatusLine,
                 name: str = "attention"):
        self.status, self.name, self.figures, self.data = status, name, dict(figures), dict(data or {})
        self.target = widgets.Dropdown(options=list(self.figures) + list(self.data), layout=widgets.Layout(width="150px"))
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
        options = self.data[self.target.value][0] if self.target.value in self.data else export.IMAGE_FORMATS
        self.format.options = options
        self.format.value = options[0]

    @shows_errors
    def export(self) -> None:
        """Start the download of the chosen target in the chosen format."""
        self._nonce += 1
        fmt, target = self.format.value, self.target.value
        filename = f"{self.name}-{target.replace(' ', '-')}.{fmt}"
        if target in self.data:
            content = self.data[target][1](fmt)
            self.downloads.value = export.download_link(content, filename, fmt, self._nonce)
        else:
            self.downloads.value = export.image_script(self.figures[target], fmt, filename[: -len(fmt) - 1],
                                                       self._nonce)
        self.status.ok(f"Exported {filename}.")

