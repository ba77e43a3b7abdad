"""The dashboard: one tab per panel, built when first opened so the first tab paints fast.

``build_app()`` is all that ``dashboards/explorer.ipynb`` and the lesson notebooks call. Each tab names
its panel as ``"module:Class"``; the module (and whatever heavy library it needs, such as transformers)
is imported in a background thread the first time the tab is selected.
"""

from __future__ import annotations

import html
import importlib
import os
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs

import ipywidgets as widgets

from explorer.widgets.common import guard_widget_registry, unknown_name


@dataclass(frozen=True)
class TabSpec:
    key: str  # short name used in links (?tab=...)
    title: str  # what the tab says
    panel: str  # "module:Class" of the panel widget


TABS = (
    TabSpec("mechanism", "Mechanism", "explorer.widgets.mechanism:MechanismPanel"),
    TabSpec("pretrained", "Pretrained", "explorer.widgets.pretrained:PretrainedPanel"),
    TabSpec("transformer", "Train a Transformer", "explorer.widgets.transformer_lab:TransformerLabPanel"),
    TabSpec("cbam", "CBAM", "explorer.widgets.cbam_lab:CBAMPanel"),
)

APP_CSS = """
<style>
.ae-app .widget-tab > .p-TabBar .p-TabBar-tab, .ae-app .lm-TabBar-tab { min-width: 150px; }
.ae-status { min-height: 1.4em; }
</style>
"""


def find_tab(key: str, tabs=TABS) -> int:
    """The index of the tab called ``key``; a ValueError lists the known tabs."""
    for index, spec in enumerate(tabs):
        if spec.key == key:
            return index
    raise unknown_name("tab", key, [spec.key for spec in tabs])


def make_panel(spec: TabSpec, **options) -> widgets.Widget:
    """Import and build one panel."""
    module_name, class_name = spec.panel.split(":")
    panel_class = getattr(importlib.import_module(module_name), class_name)
    return panel_class(**options)


class ExplorerApp(widgets.VBox):
    """The tabbed dashboard. ``panels`` maps tab keys to the panels built so far."""

    def __init__(self, tab: str | None = None, tabs=TABS, **panel_options):
        guard_widget_registry()  # tabs are built in threads, possibly while the page is loading
        self.tabs = tuple(tabs)
        self.panels: dict[str, widgets.Widget] = {}
        self.panel_options = panel_options
        self.notice = widgets.HTML()
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        placeholders = [widgets.VBox([widgets.HTML(f"<i>Opening {html.escape(s.title)}…</i>")]) for s in self.tabs]
        self.tab = widgets.Tab(children=placeholders, titles=[s.title for s in self.tabs])
        super().__init__([widgets.HTML(APP_CSS), self.notice, self.tab])
        self.add_class("ae-app")
        start = 0
        if tab:
            try:
                start = find_tab(tab, self.tabs)
            except ValueError as error:
                self.notice.value = f'<span style="color:#b42318">{html.escape(str(error))} Showing the first tab.</span>'
        self.tab.observe(self._on_select, "selected_index")
        self.open_tab(self.tabs[start].key, wait=True)
        self.tab.selected_index = start

    def _on_select(self, change) -> None:
        if change["new"] is not None:
            self.open_tab(self.tabs[change["new"]].key)

    def open_tab(self, key: str, wait: bool = False) -> None:
        """Build the panel of tab ``key`` if it is not built yet (in a background thread unless ``wait``)."""
        with self._lock:
            if key in self.panels or key in self._threads:
                return
            thread = threading.Thread(target=self._build, args=(key,), daemon=True)
            self._threads[key] = thread
        thread.start()
        if wait:
            thread.join()

    def _build(self, key: str) -> None:
        index = find_tab(key, self.tabs)
        spec = self.tabs[index]
        try:
            panel = make_panel(spec, **self.panel_options.get(key, {}))
        except Exception as error:  # noqa: BLE001 - shown in the tab instead of a traceback
            panel = widgets.HTML(f'<span style="color:#b42318">The {html.escape(spec.title)} tab could not start: '
                                 f"{html.escape(str(error))}</span>")
        else:
            self.panels[key] = panel
        children = list(self.tab.children)
        children[index] = panel
        selected = self.tab.selected_index
        self.tab.children = children
        self.tab.selected_index = selected
        with self._lock:
            self._threads.pop(key, None)

    def select(self, key: str, preset: str | None = None, timeout: float = 120.0) -> None:
        """Show tab ``key`` (and apply one of its panel's presets, if given); unknown names become a notice.

        Returns once the panel is built and its first drawing is done. In Voila this runs in the notebook's
        last cell, before the page connects: a panel still making widgets in a thread while the page loads
        its widgets can send the page a box whose children it has not received yet, and that part of the
        page never appears ("widget model not found"). A panel's ``wait`` (if it has one) covers the work it
        starts in its own threads, such as the Pretrained tab loading its model and reading the text.
        """
        try:
            index = find_tab(key, self.tabs)
            self.tab.selected_index = index
            panel = self.wait(key, timeout)
            if preset:
                if not hasattr(panel, "apply_preset"):
                    raise ValueError(f"The {self.tabs[index].title} tab has no presets.")
                panel.apply_preset(preset)
            if callable(getattr(panel, "wait", None)):
                panel.wait(timeout)
        except ValueError as error:
            self.notice.value = f'<span style="color:#b42318">{html.escape(str(error))}</span>'

    def apply_link(self, query_string: str | None = None) -> None:
        """Apply ``?tab=...&preset=...`` from the page address (in Voila) or from ``query_string``."""
        if query_string is None:
            query_string = voila_query_string()
        params = {k: v[0] for k, v in parse_qs(query_string or "").items() if v}
        if "tab" in params:
            self.select(params["tab"], params.get("preset"))
        elif "preset" in params:
            self.select(self.tabs[self.tab.selected_index or 0].key, params["preset"])

    def wait(self, key: str, timeout: float = 60.0) -> widgets.Widget:
        """Open tab ``key`` and block until its panel exists (for notebooks and tests)."""
        self.open_tab(key)
        thread = self._threads.get(key)
        if thread is not None:
            thread.join(timeout)
        if key not in self.panels:  # it failed to build (its tab says why) or is still building
            raise ValueError(f"The {self.tabs[find_tab(key, self.tabs)].title} tab is not ready; its tab says why.")
        return self.panels[key]


def voila_query_string() -> str:
    """The visitor's query string in Voila (waiting for the visitor in a preheated kernel); "" elsewhere."""
    if not any(name in os.environ for name in ("VOILA_KERNEL_ID", "QUERY_STRING", "VOILA_PREHEAT")):
        return ""
    from voila.utils import get_query_string

    return get_query_string() or ""


def build_app(tab: str | None = None, **panel_options) -> ExplorerApp:
    """The whole dashboard, opened on ``tab`` (a key of ``TABS``) or the first tab."""
    return ExplorerApp(tab=tab, **panel_options)
