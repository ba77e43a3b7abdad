"""Small building blocks every panel shares: a status line, error catching, throttled redraws, background work.

No maths and no plotting here: only the plumbing that keeps the page responsive and the messages clear.
"""

from __future__ import annotations

import functools
import html
import threading
import time
import traceback
from typing import Callable

import ipywidgets as widgets

STATUS_STYLES = {
    "info": "color:#333",
    "ok": "color:#1a7f37",
    "busy": "color:#0969da",
    "error": "color:#b42318;font-weight:600",
}


class StatusLine(widgets.HTML):
    """One line of text under a panel's controls: progress, results, and errors in plain words."""

    def __init__(self, text: str = "", **kwargs):
        super().__init__(**kwargs)
        self.add_class("ae-status")
        self.kind = "info"
        self.show(text)

    def show(self, text: str, kind: str = "info") -> None:
        self.kind = kind
        self.value = f'<span class="ae-status-{kind}" style="{STATUS_STYLES[kind]}">{html.escape(text)}</span>'

    def error(self, text: str) -> None:
        self.show(text, "error")

    def ok(self, text: str) -> None:
        self.show(text, "ok")

    def busy(self, text: str) -> None:
        self.show(text, "busy")

    @property
    def text(self) -> str:
        """The message without its markup (for tests)."""
        return html.unescape(self.value.split(">", 1)[1].rsplit("<", 1)[0]) if ">" in self.value else self.value


def friendly_error(error: BaseException) -> str:
    """The message a student sees for an exception: ours are already in words; others get a short prefix."""
    if isinstance(error, ValueError):
        return str(error)
    return f"Something went wrong ({type(error).__name__}: {error}). The previous view is kept."


def shows_errors(method: Callable) -> Callable:
    """Decorate a panel method so that any error goes to ``self.status`` instead of a traceback on the page."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - the page must never show a traceback
            if not isinstance(error, ValueError):
                traceback.print_exc()
            self.status.error(friendly_error(error))
            return None

    return wrapper


def unknown_name(kind: str, name: str, known) -> ValueError:
    """The error for a name that is not one of ``known`` (a tab, a preset), the name shortened: it comes from
    a link or an older version, and a page-long name should not bury the list of names that would work."""
    name = str(name)
    shown = name if len(name) <= 40 else name[:37] + "..."
    return ValueError(f"There is no {kind} called '{shown}'. Choose one of: {', '.join(known)}.")


class Throttle:
    """Call ``function`` at most every ``interval`` seconds with the newest arguments; older ones are dropped.

    Calls made in between are collapsed: only the latest waiting call runs, on a timer thread, so a burst of
    slider events or training callbacks gives a few redraws per second, never a queue.
    """

    def __init__(self, function: Callable, interval: float = 0.25):
        self.function, self.interval = function, interval
        self._lock = threading.Lock()
        self._pending: tuple | None = None
        self._timer: threading.Timer | None = None
        self._last = 0.0
        self._calling = threading.RLock()  # held while ``function`` runs, so flush() can wait for a call in flight

    def __call__(self, *args, **kwargs) -> None:
        with self._lock:
            self._pending = (args, kwargs)
            if self._timer is not None:
                return
            wait = max(0.0, self._last + self.interval - time.monotonic())
            self._timer = threading.Timer(wait, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._calling:
            with self._lock:
                pending, self._pending, self._timer = self._pending, None, None
                self._last = time.monotonic()
            if pending is not None:
                args, kwargs = pending
                self.function(*args, **kwargs)

    def flush(self) -> None:
        """Run the waiting call now, or wait for the one already running on the timer thread, so that its
        result is there when this returns (used at the end of training so the last frame is drawn)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._fire()


# ----- widgets made in other threads -------------------------------------------------------------
WIDGET_REGISTRY_LOCK = threading.RLock()


def guard_widget_registry() -> None:
    """Let widgets be made and closed in background threads while a page is loading.

    When a page connects it asks the kernel for every widget's state, and ipywidgets answers by iterating
    over its registry of widgets. A tab or a figure built in a background thread at that moment changes the
    registry mid-iteration: the answer fails ("dictionary changed size during iteration") and the page is
    left with models that point at children it never received ("widget model not found"). This makes that
    answer, and the registering and unregistering of widgets, take turns. Safe to call more than once.
    """
    from ipywidgets.widgets.widget import Widget

    if getattr(Widget, "_ae_guarded", False):
        return

    def guarded(method):
        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            with WIDGET_REGISTRY_LOCK:
                return method(*args, **kwargs)
        return wrapper

    Widget.open = guarded(Widget.open)
    Widget.close = guarded(Widget.close)
    Widget._handle_control_comm_msg = classmethod(guarded(Widget._handle_control_comm_msg.__func__))
    Widget._ae_guarded = True


guard_widget_registry()


class BackgroundTask:
    """Run one piece of long work at a time in a daemon thread, reporting errors to a status line."""

    def __init__(self, status: StatusLine):
        self.status = status
        self.thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, work: Callable, *args, on_done: Callable | None = None) -> bool:
        """Start ``work(*args)``; returns False (and says so) if earlier work is still running."""
        if self.running:
            self.status.show("Still working on the previous request; please wait a moment.", "busy")
            return False

        def run():
            try:
                result = work(*args)
            except Exception as error:  # noqa: BLE001 - shown in the panel
                if not isinstance(error, ValueError):
                    traceback.print_exc()
                self.status.error(friendly_error(error))
                return
            if on_done is not None:
                on_done(result)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return True

    def join(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)


def labelled(description: str, widget: widgets.Widget, width: str = "130px") -> widgets.HBox:
    """A control with its label on the left, aligned with the others in a column."""
    return widgets.HBox([widgets.Label(description, layout=widgets.Layout(width=width)), widget])


def section(title: str, *children: widgets.Widget) -> widgets.VBox:
    """A titled group of widgets."""
    return widgets.VBox([widgets.HTML(f"<b>{html.escape(title)}</b>"), *children],
                        layout=widgets.Layout(margin="0 12px 8px 0"))
