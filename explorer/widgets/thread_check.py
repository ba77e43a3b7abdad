"""A debug check that every widget is made on the kernel's (main) thread, never in a worker.

ipywidgets registers a widget and opens its comm in its constructor; a worker doing that while the page asks
for every widget's state can leave the page with a box whose children it never received. The explorer makes
widgets only on the home thread; with ``AE_DEBUG_THREADS=1`` (set by the test suite) a widget made elsewhere
is closed and refused with an error that says where to hand the work over. It uses ipywidgets' public
``Widget.on_widget_constructed`` hook; nothing of ipywidgets is replaced.
"""

from __future__ import annotations

import os
import threading

from ipywidgets import Widget


class WidgetThreadError(RuntimeError):
    """A widget was made outside the main thread."""


def _refuse_off_thread(widget: Widget) -> None:
    if threading.current_thread() is threading.main_thread():
        return
    widget.close()
    raise WidgetThreadError(
        f"A {type(widget).__name__} was made on thread '{threading.current_thread().name}'. Widgets are made on the "
        "kernel's thread only: hand the worker's result over with explorer.threads.Home.call.")


def check_widget_threads(enabled: bool = True) -> None:
    """Refuse (``enabled``) or allow widgets made outside the main thread."""
    Widget.on_widget_constructed(_refuse_off_thread if enabled else None)


if os.environ.get("AE_DEBUG_THREADS") == "1":
    check_widget_threads()
