"""Whether the page is still there: the page beats every few seconds and says "bye" when it closes.

A kernel whose page is gone stops its long work (``on_gone``), so a training run nobody watches does not keep
the CPU busy, and the idle kernel is then culled like any other. Browsers slow the timers of hidden tabs to once a
minute, so a page counts as gone only after ``GONE_AFTER`` seconds without a beat, or at once when it says bye.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import anywidget
from traitlets import Int

from explorer.threads import home

GONE_AFTER = 150.0  # seconds without a beat; more than a hidden tab's one-minute timers
CHECK_EVERY = 15.0


class PageWatch(anywidget.AnyWidget):
    """Calls ``on_gone()`` (on the home thread) once every page that showed the app has closed or gone quiet."""

    _esm = Path(__file__).with_name("page_watch.js")
    interval = Int(10).tag(sync=True)  # seconds between beats

    def __init__(self, on_gone: Callable[[], None], gone_after: float = GONE_AFTER, **kwargs):
        super().__init__(**kwargs)
        self.on_gone, self.gone_after = on_gone, gone_after
        self.home = home()
        self.views: dict[str, float] = {}  # page view -> time of its last beat
        self.seen = False
        self._checking = False
        self.on_msg(self._on_page_message)

    def _on_page_message(self, _widget, content, _buffers) -> None:
        if not isinstance(content, dict) or "view" not in content:
            return
        view = str(content["view"])[:40]
        if content.get("event") == "beat":
            self.views[view] = time.monotonic()
            self.seen = True
            if not self._checking:
                self._checking = True
                self.home.later(CHECK_EVERY, self.check)
        elif content.get("event") == "bye":
            self.views.pop(view, None)
            self.check()

    def check(self) -> None:
        """Drop views that went quiet; when none is left, the page is gone."""
        now = time.monotonic()
        self.views = {view: last for view, last in self.views.items() if now - last < self.gone_after}
        if self.seen and not self.views:
            self._checking = False
            self.seen = False
            self.on_gone()
            return
        if self._checking:
            self.home.later(CHECK_EVERY, self.check)
