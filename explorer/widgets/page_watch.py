"""Whether the page is still there: the page beats every few seconds and says "bye" when it closes, and in Voila
the server says how many pages are connected to this kernel.

A kernel whose page is gone stops its long work (``on_gone``), so a training run nobody watches does not keep
the CPU busy, and the idle kernel is then culled like any other. A page that closes normally says bye. One that
cannot (the browser killed, the laptop shut, the network gone) is noticed by the Voila server, which drops its
connection (its websocket pings time out within a minute); the kernel asks the server every ``CHECK_EVERY``
seconds through its REST API (``/api/kernels/<id>``, the ``connections`` field). Outside Voila (JupyterLab), a page
counts as gone after ``GONE_AFTER`` seconds without a beat: browsers slow the timers of hidden tabs to once a minute.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Callable

import anywidget
from traitlets import Int

from explorer.threads import Worker, home

GONE_AFTER = 150.0  # seconds without a beat; more than a hidden tab's one-minute timers
CHECK_EVERY = 10.0
QUIET_ANSWERS = 2  # the server must say "no page" this many times in a row: a page reconnecting is not gone


def page_connections(timeout: float = 3.0) -> int | None:
    """How many pages the Voila server has connected to this kernel; None outside Voila or when it cannot tell."""
    kernel = os.environ.get("VOILA_KERNEL_ID")
    port = os.environ.get("VOILA_APP_PORT")
    if not kernel or not port:
        return None
    scheme = "https" if os.environ.get("VOILA_WS_PROTOCOL") == "wss" else "http"
    host = os.environ.get("VOILA_APP_IP", "127.0.0.1")
    base = os.environ.get("VOILA_SERVER_URL", "/").rstrip("/")
    try:
        with urllib.request.urlopen(f"{scheme}://{host}:{port}{base}/api/kernels/{kernel}", timeout=timeout) as answer:
            return int(json.loads(answer.read())["connections"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class PageWatch(anywidget.AnyWidget):
    """Calls ``on_gone()`` (on the home thread) once every page that showed the app has closed or gone quiet."""

    _esm = Path(__file__).with_name("page_watch.js")
    interval = Int(10).tag(sync=True)  # seconds between beats

    def __init__(self, on_gone: Callable[[], None], gone_after: float = GONE_AFTER,
                 connections: Callable[[], int | None] = page_connections, check_every: float = CHECK_EVERY, **kwargs):
        super().__init__(**kwargs)
        self.on_gone, self.gone_after, self.check_every = on_gone, gone_after, check_every
        self.connections = connections
        self.home = home()
        self.asking = Worker(self.home, name="page-watch")  # the server's answer comes in a thread
        self.views: dict[str, float] = {}  # page view -> time of its last beat
        self.seen = False
        self.quiet_answers = 0
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
                self.home.later(self.check_every, self.check)
        elif content.get("event") == "bye":
            self.views.pop(view, None)
            self.check()

    def check(self) -> None:
        """Drop views that went quiet; when none is left, the page is gone. Then ask the server (in a thread)."""
        now = time.monotonic()
        self.views = {view: last for view, last in self.views.items() if now - last < self.gone_after}
        if self.seen and not self.views:
            self._gone()
            return
        if self._checking:
            self.asking.submit(self.connections, done=self._server_says)
            self.home.later(self.check_every, self.check)

    def _server_says(self, connected: int | None) -> None:
        """A page has beaten (so it was connected: a warm kernel waiting for its visitor never is); none is left."""
        if connected is None or not self.seen:
            return
        self.quiet_answers = 0 if connected > 0 else self.quiet_answers + 1
        if self.quiet_answers >= QUIET_ANSWERS:
            self._gone()

    def _gone(self) -> None:
        self._checking = self.seen = False
        self.views, self.quiet_answers = {}, 0
        self.on_gone()
