"""The dashboard: one tab per session and panel, each built when first opened, and links to any view.

``build_app()`` is all that ``dashboards/explorer.ipynb`` and the lesson notebooks call. A tab names its session
and its panel as ``"module:Class"``. Opening a tab imports both modules and makes the session in a worker (a
session may load data or a model); the panel, like every widget, is then made on the home thread (the kernel's),
where the tab first showed a placeholder. ``link()`` gives ``?tab=...&state=...`` for the view on screen and
``apply_link()`` opens one. The "present" switch (``present=1`` in a link) draws everything larger for a projector.
"""

from __future__ import annotations

import html
import importlib
import os
import threading
from dataclasses import dataclass

import ipywidgets as widgets

from explorer import links
from explorer.sessions.base import friendly_error, unknown_name
from explorer.threads import Worker, home
from explorer.widgets.page_watch import PageWatch
from explorer.widgets.present import PresentSwitch, presentable


@dataclass(frozen=True)
class TabSpec:
    key: str  # short name used in links (?tab=...)
    title: str  # what the tab says
    session: str  # "module:Class" of the tab's state
    panel: str  # "module:Class" of the panel widget, made with the session


TABS = (
    TabSpec("mechanism", "Mechanism", "explorer.sessions.mechanism:MechanismSession",
            "explorer.widgets.mechanism:MechanismPanel"),
    TabSpec("pretrained", "Pretrained", "explorer.sessions.pretrained:PretrainedSession",
            "explorer.widgets.pretrained:PretrainedPanel"),
    TabSpec("llm", "Language model", "explorer.sessions.language:LanguageSession",
            "explorer.widgets.language:LanguagePanel"),
    TabSpec("speech", "Speech", "explorer.sessions.speech:SpeechSession", "explorer.widgets.speech:SpeechPanel"),
    TabSpec("transformer", "Train a Transformer", "explorer.sessions.transformer_lab:TransformerLabSession",
            "explorer.widgets.transformer_lab:TransformerLabPanel"),
    TabSpec("vision", "Vision", "explorer.sessions.vision:VisionSession", "explorer.widgets.vision:VisionPanel"),
)
ALIASES: dict[str, str] = {"cbam": "vision"}  # older tab names in links -> the tab that shows them now

APP_CSS = """
<style>
.ae-app .widget-tab > .p-TabBar .p-TabBar-tab, .ae-app .lm-TabBar-tab { min-width: 150px; }
.ae-status { min-height: 1.4em; }
.ae-app { max-width: 100%; }
</style>
"""
TRUE = ("1", "true", "yes", "on")


def find_tab(key: str, tabs=TABS) -> int:
    """The index of the tab called ``key`` (or an older name of it); a ValueError lists the known tabs."""
    key = ALIASES.get(key, key) if isinstance(key, str) else key
    for index, spec in enumerate(tabs):
        if spec.key == key:
            return index
    raise unknown_name("tab", key, [spec.key for spec in tabs])


def _import(spec: str):
    module_name, name = spec.split(":")
    return getattr(importlib.import_module(module_name), name)


class ExplorerApp(widgets.VBox):
    """The tabbed dashboard. ``sessions`` and ``panels`` map tab keys to those built so far."""

    def __init__(self, tab: str | None = None, tabs=TABS, **session_options):
        self.home = home()
        self.tabs = tuple(tabs)
        self.sessions: dict = {}
        self.panels: dict[str, widgets.Widget] = {}
        self.failed: dict[str, str] = {}
        self.session_options = session_options
        self._building: dict[str, Worker] = {}
        self._then: dict[str, list] = {}
        self.notice = widgets.HTML(layout=widgets.Layout(flex="1 1 auto"))
        self.notice.add_class("ae-notice")
        self.present = PresentSwitch()
        placeholders = [widgets.HTML(f"<i>Opening {html.escape(s.title)}…</i>") for s in self.tabs]
        self.tab = widgets.Tab(children=placeholders, titles=[s.title for s in self.tabs])
        self.watch = PageWatch(on_gone=self.stop_work)
        header = widgets.HBox([self.notice, self.present], layout=widgets.Layout(align_items="center"))
        super().__init__([widgets.HTML(APP_CSS), header, self.tab, self.watch])
        self.add_class("ae-app")
        presentable(self, self.present)
        start = 0
        if tab:
            try:
                start = find_tab(tab, self.tabs)
            except ValueError as error:
                self.say(f"{error} Showing the first tab.")
        self.open_tab(self.tabs[start].key, now=True)
        self.tab.selected_index = start
        self.tab.observe(self._on_select, "selected_index")

    def say(self, text: str) -> None:
        """A notice above the tabs (a link that could not be applied in full): amber, the page still works."""
        self.notice.value = f'<span class="ae-status-warning" style="color:#9a6700">{html.escape(text)}</span>' if text else ""

    # ----- building tabs -----------------------------------------------------------------------------------------
    def _on_select(self, change) -> None:
        if change["new"] is not None:
            self.open_tab(self.tabs[change["new"]].key)

    def open_tab(self, key: str, now: bool = False, then=None) -> None:
        """Build tab ``key`` if it is not built yet: its session in a worker (here if ``now``), its panel here.

        ``then(key)`` runs on the home thread once the tab is built (or has failed to build).
        """
        spec = self.tabs[find_tab(key, self.tabs)]
        key = spec.key  # an older name of the tab opens the same tab
        if then is not None:
            self._then.setdefault(key, []).append(then)
        if key in self.panels or key in self.failed:
            self._done(key)
            return
        if key in self._building:
            return
        options = self.session_options.get(key, {})
        if now:
            try:
                self._place(spec, self._make_session(spec, options))
            except Exception as error:  # noqa: BLE001 - shown in the tab instead of a traceback
                self._failed(spec, error)
            return
        worker = self._building[key] = Worker(self.home, name=f"open-{key}")
        worker.submit(self._make_session, spec, options, done=lambda session: self._place(spec, session),
                      failed=lambda error: self._failed(spec, error))

    def _make_session(self, spec: TabSpec, options: dict):
        _import(spec.panel)  # import the panel's heavy modules here, not on the home thread
        return _import(spec.session)(owner=self.home, **options)

    def _place(self, spec: TabSpec, session) -> None:
        try:
            panel = _import(spec.panel)(session)
        except Exception as error:  # noqa: BLE001 - shown in the tab instead of a traceback
            self._failed(spec, error)
            return
        self.sessions[spec.key], self.panels[spec.key] = session, panel
        self._show(spec, panel)

    def _failed(self, spec: TabSpec, error: BaseException) -> None:
        self.failed[spec.key] = friendly_error(error)
        self._show(spec, widgets.HTML(f'<span style="color:#b42318">The {html.escape(spec.title)} tab could not '
                                      f"start: {html.escape(self.failed[spec.key])}</span>"))

    def _show(self, spec: TabSpec, widget: widgets.Widget) -> None:
        index = self.tabs.index(spec)
        children = list(self.tab.children)
        old, children[index] = children[index], widget
        selected = self.tab.selected_index
        self.tab.children = children
        self.tab.selected_index = selected
        old.close()
        self._building.pop(spec.key, None)
        self._done(spec.key)

    def _done(self, key: str) -> None:
        for then in self._then.pop(key, []):
            then(key)

    def wait(self, key: str, timeout: float = 120.0):
        """Open tab ``key`` and block (on the home thread) until its panel exists and its session is idle."""
        key = self.tabs[find_tab(key, self.tabs)].key
        self.open_tab(key)
        self.home.wait_until(lambda: key in self.panels or key in self.failed, timeout)
        if key not in self.panels:
            title = self.tabs[find_tab(key, self.tabs)].title
            raise ValueError(f"The {title} tab is not ready: {self.failed.get(key, 'it is still opening')}")
        self.sessions[key].wait(timeout)
        return self.panels[key]

    # ----- links -------------------------------------------------------------------------------------------------
    def link(self, tab: str | None = None) -> str:
        """``?tab=...&state=...`` for the view of tab ``tab`` (the tab on screen by default)."""
        key = tab or self.tabs[self.tab.selected_index or 0].key
        key = self.tabs[find_tab(key, self.tabs)].key
        present = "1" if self.present.on else None
        if key not in self.sessions:
            return links.query(key, present=present)
        return links.query(key, self.sessions[key].state(), present=present)

    def select(self, key: str, preset: str | None = None, state: str | None = None) -> None:
        """Show tab ``key`` and, once it is built, apply a preset or a link's state; problems become a notice."""
        try:
            index = find_tab(key, self.tabs)
        except ValueError as error:
            self.say(f"{error} Showing the first tab.")
            return
        spec = self.tabs[index]
        self.tab.selected_index = index
        self.open_tab(spec.key, then=lambda _: self._apply_settings(spec, preset, state))

    def _apply_settings(self, spec: TabSpec, preset: str | None, state: str | None) -> None:
        if spec.key not in self.sessions:
            self.say(f"The {spec.title} tab is not ready: {self.failed.get(spec.key, '')}")
            return
        session, notices = self.sessions[spec.key], []
        try:
            if state:
                notices = session.load_state(state)
            elif preset:
                session.apply_preset(preset)
        except ValueError as error:
            notices = [str(error)]
        self.say(" ".join(notices))

    def apply_link(self, query_string: str | None = None, timeout: float = 120.0) -> None:
        """Apply ``?tab=...&state=...`` (or ``&preset=...``), given here or from the page's address in Voila.

        Given a query string it waits until the tab is built and its session idle (for notebooks and tests).
        In Voila it returns at once: a preheated kernel learns its visitor's address later, in a thread, and the
        link is then applied on the home thread, so a kernel waiting for its visitor runs no cell.
        """
        if query_string is not None:
            key = self._apply_query(query_string)
            if key is not None:
                self.home.wait_until(lambda: key in self.panels or key in self.failed, timeout)
                if key in self.sessions:
                    self.sessions[key].wait(timeout)
            return
        if "VOILA_KERNEL_ID" not in os.environ and "QUERY_STRING" not in os.environ:
            return
        if os.environ.get("VOILA_PREHEAT", "False") == "False":
            self._apply_query(os.environ.get("QUERY_STRING", ""))
            return
        threading.Thread(target=self._wait_for_visitor, daemon=True, name="visitor").start()

    def _wait_for_visitor(self) -> None:
        from voila.utils import wait_for_request

        wait_for_request()
        self.home.call(self._apply_query, os.environ.get("QUERY_STRING", ""))

    def _apply_query(self, query_string: str) -> str | None:
        params = links.parse(query_string)
        if params.get("present", "").lower() in TRUE:
            self.present.on = True
        key = params.get("tab") or (self.tabs[self.tab.selected_index or 0].key if params else None)
        if key is None:
            return None
        self.select(key, params.get("preset"), params.get("state"))
        try:
            return self.tabs[find_tab(key, self.tabs)].key
        except ValueError:
            return None

    # ----- the page -------------------------------------------------------------------------------------------------
    def stop_work(self) -> None:
        """The page is gone: stop every tab's long work (training, loading, generation), so the kernel goes idle."""
        for session in self.sessions.values():
            session.stop_work()


def build_app(tab: str | None = None, **session_options) -> ExplorerApp:
    """The whole dashboard, opened on ``tab`` (a key of ``TABS``) or the first tab."""
    return ExplorerApp(tab=tab, **session_options)
