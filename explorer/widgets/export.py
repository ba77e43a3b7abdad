"""An export bar any panel can show, and "Copy link": figures as PNG/SVG (drawn in the browser), data as files.

Figures are named by the CSS class of their widget on screen (plotly.js or the canvas map draws the image).
Data exports (attention maps as JSON or npz, a training timeline as GIF or HTML, ...) are functions that return
the file's bytes for a format; the bytes travel once over the comm and the browser saves them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import anywidget
import ipywidgets as widgets
from traitlets import Unicode

from explorer.sessions.base import Session
from explorer.views import export
from explorer.widgets.controls import shows_errors, tagged

TOOLS_JS = Path(__file__).with_name("page_tools.js")
MIME = {"json": "application/json", "npz": "application/octet-stream", "gif": "image/gif", "html": "text/html"}


class PageTool(anywidget.AnyWidget):
    """A page-side helper: ``tool`` "download" saves files and figure images, "copy-link" copies a view's link."""

    _esm = TOOLS_JS
    tool = Unicode("download").tag(sync=True)


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

    def __init__(self, session: Session, figures: dict[str, str], data: dict[str, tuple] | None = None,
                 name: str = "attention"):
        self.session, self.name, self.figures, self.data = session, name, dict(figures), dict(data or {})
        self.target = tagged(widgets.Dropdown(options=list(self.figures) + list(self.data),
                                              layout=widgets.Layout(width="11.5em")), f"ae-{name}-export-target")
        self.format = tagged(widgets.Dropdown(layout=widgets.Layout(width="6em")), f"ae-{name}-export-format")
        self.button = tagged(widgets.Button(description="Export", icon="download",
                                            layout=widgets.Layout(min_width="90px", width="auto")),
                             "ae-export")
        self.downloader = PageTool(tool="download")
        super().__init__([self.target, self.format, self.button, self.downloader],
                         layout=widgets.Layout(flex_flow="row wrap"))
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
        fmt, target = self.format.value, self.target.value
        filename = f"{self.name}-{target.replace(' ', '-')}.{fmt}"
        if target in self.data:
            content = self.data[target][1](fmt)
            self.last_file = (filename, content)
            self.downloader.send({"event": "file", "filename": filename, "mime": MIME.get(fmt)}, [content])
            self.session.say(f"Exported {filename} ({len(content) / 1e6:.2f} MB).", "ok")
        else:
            if fmt not in export.IMAGE_FORMATS:
                raise ValueError(f"Figures export as {' or '.join(export.IMAGE_FORMATS)}, not '{fmt}'.")
            self.downloader.send({"event": "image", "target": self.figures[target], "format": fmt,
                                  "filename": filename[: -len(fmt) - 1]})
            self.session.say(f"Exported {filename} (your browser saves the figure on screen).", "ok")


class CopyLink(PageTool):
    """A "Copy link" button: asks ``link()`` for the query string of the view on screen and copies the whole URL."""

    def __init__(self, link: Callable[[], str]):
        super().__init__(tool="copy-link")
        self.link = link
        self.add_class("ae-copy-link")
        self.on_msg(self._on_page_message)

    def _on_page_message(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("event") == "link":
            self.send({"event": "link", "query": self.link()})
