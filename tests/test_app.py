"""The tabbed app and the serve command, without a browser."""

from __future__ import annotations

import ipywidgets as widgets

from explorer.app import TABS, ExplorerApp, build_app
from explorer.cli import pool_size, voila_command


def test_first_tab_is_the_mechanism_and_is_built_at_once():
    app = build_app()
    assert TABS[0].key == "mechanism"
    assert "mechanism" in app.panels and app.tab.selected_index == 0


def test_unknown_tab_in_a_link_falls_back_with_a_notice():
    app = build_app()
    app.apply_link("tab=nonsense")
    assert "no tab called" in app.notice.value and "nonsense" in app.notice.value
    assert app.tab.selected_index == 0


def test_a_page_long_name_in_a_link_is_shortened_in_the_notice():
    app = build_app()
    app.apply_link("tab=mechanism&preset=" + "x" * 5000)
    notice = app.notice.value
    assert "no preset called &#x27;xxx" in notice and "a distractor" in notice and len(notice) < 600
    assert app.tab.selected_index == 0


def test_link_applies_a_mechanism_preset():
    app = build_app()
    app.apply_link("tab=mechanism&preset=a%20distractor")
    assert app.panels["mechanism"].preset.value == "a distractor"


def test_serve_command_keeps_warm_kernels():
    command = voila_command(__import__("pathlib").Path("dash.ipynb"), 9000, open_browser=False, students=5)
    assert "--preheat_kernel=True" in command and "--pool_size=5" in command
    assert "--port=9000" in command and "--no-browser" in command and "--template=explorer" in command
    assert pool_size(0) == 1


def test_a_tab_that_cannot_start_is_explained_in_the_tab_and_the_link_notice():
    from explorer.app import ExplorerApp, TabSpec

    tabs = (TabSpec("mechanism", "Mechanism", "explorer.widgets.mechanism:MechanismPanel"),
            TabSpec("broken", "Broken", "explorer.no_such_module:Panel"))
    app = ExplorerApp(tabs=tabs)
    app.apply_link("tab=broken&preset=x")
    assert "could not start" in app.tab.children[1].value
    assert "not ready" in app.notice.value


class RecordingComm:
    """Stands in for the page's control comm: keeps what the kernel answers."""

    def __init__(self):
        self.sent = []

    def send(self, data, buffers=None):
        self.sent.append(data)


def test_page_gets_a_whole_widget_state_while_a_tab_is_built_in_a_thread(monkeypatch):
    """A page that connects while a tab is being built gets every widget its models refer to (CI once saw
    'widget model not found' when a link opened the CBAM tab: the state request failed mid-build)."""
    import json
    import re
    import threading

    from ipywidgets.widgets.widget import Widget

    ExplorerApp(tabs=TABS[:1])  # the app installs the guard
    monkeypatch.setattr(Widget, "_control_comm", RecordingComm())
    parent = widgets.VBox()

    def build():
        for i in range(200):
            parent.children = (*parent.children, widgets.VBox([widgets.Button(description=str(i)) for _ in range(5)]))

    builder = threading.Thread(target=build)
    builder.start()
    answers = 0
    while builder.is_alive() or not answers:
        Widget._handle_control_comm_msg({"content": {"data": {"method": "request_states"}}})  # raises if unguarded
        states = Widget._control_comm.sent[-1]["states"]
        referred = set(re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(states)))
        assert referred <= set(states), "the page would get models whose children it never received"
        answers += 1
    builder.join()
    for box in parent.children:
        box.close()


class SlowPanel(widgets.VBox):
    """A panel that takes a while to build and then makes more widgets in its own thread (as the Pretrained
    tab does when it loads its model and draws the first reading)."""

    def __init__(self):
        import threading
        import time

        time.sleep(0.5)
        super().__init__([widgets.HTML("controls")])
        self._drawing = threading.Thread(target=self._draw, daemon=True)
        self._drawing.start()

    def _draw(self):
        import time

        time.sleep(0.5)
        self.children = (*self.children, widgets.HTML("figure"))

    def wait(self, timeout=60.0):
        self._drawing.join(timeout)


def test_a_link_returns_only_when_its_tab_is_built_and_drawn():
    """In Voila the link is applied in the last cell, before the page connects; a tab still building in a
    thread while the page loads its widgets sends boxes whose children the page has not received (CI saw
    'widget model not found' and an empty CBAM tab after ?tab=cbam). So the link waits for the tab."""
    from explorer.app import TabSpec

    tabs = (TABS[0], TabSpec("slow", "Slow", f"{__name__}:SlowPanel"))
    app = ExplorerApp(tabs=tabs)
    app.apply_link("tab=slow")
    panel = app.panels["slow"]
    assert app.tab.children[1] is panel and app.tab.selected_index == 1
    assert [child.value for child in panel.children] == ["controls", "figure"]
