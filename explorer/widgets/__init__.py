"""Thin panels: one per tab, binding controls to a session's settings and drawing its records."""

from explorer.widgets import thread_check  # noqa: F401 - AE_DEBUG_THREADS=1 turns on the widget thread check
