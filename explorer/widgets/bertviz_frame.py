"""bertviz's page in a sandboxed frame, with a line saying what it shows (shared by the tabs that offer it)."""

from __future__ import annotations

import ipywidgets as widgets

from explorer.views import bertviz as bertviz_view
from explorer.widgets.controls import tagged


class BertvizFrame(widgets.VBox):
    """A notice and the frame; ``show`` puts a page built by ``explorer.views.bertviz`` in it."""

    def __init__(self, name: str):
        self.notice = widgets.HTML()
        self.frame = tagged(widgets.HTML(), name)
        super().__init__([self.notice, self.frame])

    def show(self, kind: str, shown: int, n_layers: int, page: str, notice: str) -> str:
        """Show ``page`` (``shown`` tokens, ``n_layers`` layers); returns the status line to say."""
        self.frame.value = bertviz_view.iframe(page, bertviz_view.frame_height(kind, shown, n_layers))
        self.notice.value = f"<small>bertviz {kind} view, offline. {notice}</small>"
        return f"bertviz's {kind} view is below the figures ({len(page) / 1e6:.1f} MB of HTML)."
