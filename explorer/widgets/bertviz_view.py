"""bertviz's head view and model view as a sub-view of the Pretrained tab, working offline.

The page is built in a background thread (bertviz writes every weight into it) and shown in an iframe;
its scripts come from ``explorer/static/bertviz`` instead of a CDN (see ``explorer.views.bertviz``).
"""

from __future__ import annotations

from typing import Callable

import ipywidgets as widgets

from explorer.views import bertviz as bertviz_view
from explorer.widgets.common import BackgroundTask, StatusLine, section

KINDS = (("head view", "head"), ("model view", "model"))


class BertvizView:
    """The controls (view kind, render button) and the output (notice, iframe) of the bertviz sub-view.

    ``source()`` returns the ``(maps, layer)`` to draw, or raises a ValueError saying why there is nothing yet.
    """

    def __init__(self, status: StatusLine, source: Callable):
        self.status, self.source = status, source
        self.task = BackgroundTask(status)
        self.kind = widgets.ToggleButtons(options=KINDS, style=dict(button_width="100px"))
        self.button = widgets.Button(description="Render bertviz")
        self.button.add_class("ae-pretrained-bertviz-render")
        self.notice = widgets.HTML()
        self.frame = widgets.HTML()
        self.frame.add_class("ae-pretrained-bertviz")
        self.controls = section("bertviz (offline)", self.kind, self.button)
        self.output = widgets.VBox([self.notice, self.frame])
        self.button.on_click(lambda _: self.render(self.kind.value))

    def render(self, kind: str = "head") -> None:
        """Build bertviz's ``kind`` view of the current maps in the background and show it."""
        try:
            maps, layer = self.source()
        except ValueError as error:
            self.status.error(str(error))
            return
        self.status.busy(f"Building bertviz's {kind} view…")
        self.task.start(bertviz_view.bertviz_page, maps, kind, layer,
                        on_done=lambda result: self._show(maps, kind, *result))

    def _show(self, maps, kind: str, page: str, notice: str) -> None:
        shown = min(len(maps.tokens), bertviz_view.MAX_TOKENS)
        self.frame.value = bertviz_view.iframe(page, bertviz_view.frame_height(kind, shown, maps.n_layers))
        self.notice.value = f"<small>bertviz {kind} view, offline. {notice}</small>"
        self.status.ok(f"bertviz's {kind} view is below the figures ({len(page) / 1e6:.1f} MB of HTML).")

    def join(self, timeout: float | None = None) -> None:
        self.task.join(timeout)
