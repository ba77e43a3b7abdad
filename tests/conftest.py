"""The whole suite runs with the widget thread check on: a widget made outside the main thread is an error."""

import os

os.environ.setdefault("AE_DEBUG_THREADS", "1")

from explorer.widgets.thread_check import check_widget_threads  # noqa: E402

check_widget_threads(os.environ["AE_DEBUG_THREADS"] == "1")
