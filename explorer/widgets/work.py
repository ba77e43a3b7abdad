"""Progress of a session's long work, shown under its status line: a bar, the seconds so far, and Stop.

It follows the session's ``busy``, ``progress`` and ``stoppable``; the page counts the seconds itself, so the
kernel sends nothing while the work runs. An ``estimate`` in seconds (a long prompt's, before it starts) is
shown beside them.
"""

from __future__ import annotations

from pathlib import Path

import anywidget
from traitlets import Bool, Float, Unicode

from explorer.sessions.base import Session


class WorkLine(anywidget.AnyWidget):
    """The running work of ``session``; its Stop calls ``session.stop_work()``."""

    _esm = Path(__file__).with_name("work.js")
    _css = """
    .ae-work { display: none; align-items: center; gap: 8px; margin: 4px 0; }
    .ae-work-bar { width: 140px; height: 10px; background: #d0d7de; border-radius: 5px; overflow: hidden; }
    .ae-work-fill { height: 100%; background: #0969da; }
    .ae-work-fill.ae-work-unknown { animation: ae-work-slide 1.2s linear infinite; }
    @keyframes ae-work-slide { from { margin-left: -30%; } to { margin-left: 100%; } }
    .ae-work-words { color: #0969da; font-size: 13px; }
    .ae-present .ae-work-words { font-size: 18px; }
    .ae-present .ae-work-bar { width: 200px; height: 14px; }
    """
    busy = Bool(False).tag(sync=True)
    progress = Float(0.0).tag(sync=True)
    stoppable = Bool(False).tag(sync=True)
    estimate = Float(0.0).tag(sync=True)  # seconds the work is expected to take, 0 when unknown
    label = Unicode("working").tag(sync=True)

    def __init__(self, session: Session, **kwargs):
        super().__init__(**kwargs)
        self.add_class("ae-work")
        self.session = session
        session.observe(lambda _: self.refresh(), ["busy", "progress", "stoppable"])
        self.on_msg(self._on_page_message)
        self.refresh()

    def refresh(self) -> None:
        s = self.session
        with self.hold_sync():
            self.busy, self.progress, self.stoppable = s.busy, s.progress, s.stoppable
            if not s.busy:
                self.estimate = 0.0

    def _on_page_message(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("event") == "stop":
            self.session.stop_work()
