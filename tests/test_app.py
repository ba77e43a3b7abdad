"""The tabbed app, its links and its threads, without a browser."""

from __future__ import annotations

import threading
from pathlib import Path

import ipywidgets as widgets
import pytest

from explorer import links
from explorer.app import TABS, ExplorerApp, TabSpec, build_app
from explorer.cli import pool_size, voila_command
from explorer.sessions.base import Session
from explorer.sessions.mechanism import MechanismSession
from explorer.widgets.thread_check import WidgetThreadError


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
    command = voila_command(Path("dash.ipynb"), 9000, open_browser=False, students=5)
    assert "--preheat_kernel=True" in command and "--pool_size=5" in command
    assert "--port=9000" in command and "--no-browser" in command and "--template=explorer" in command
    assert pool_size(0) == 1


def test_a_tab_that_cannot_start_is_explained_in_the_tab_and_the_link_notice():
    tabs = (TABS[0], TabSpec("broken", "Broken", "explorer.no_such_module:Session", "explorer.no_such_module:Panel"))
    app = ExplorerApp(tabs=tabs)
    app.apply_link("tab=broken&preset=x")
    assert "could not start" in app.tab.children[1].value
    assert "not ready" in app.notice.value


class SlowSession(Session):
    """A session that takes a while to make, as one that loads a model does."""

    key = "slow"

    def __init__(self, owner=None):
        import time

        time.sleep(0.5)
        super().__init__(owner)
        self.made_on = threading.current_thread()


class SlowPanel(widgets.VBox):
    def __init__(self, session):
        super().__init__([widgets.HTML("controls")])
        self.session, self.made_on = session, threading.current_thread()


def test_a_slow_tab_shows_its_placeholder_then_its_panel_made_on_the_home_thread():
    tabs = (TABS[0], TabSpec("slow", "Slow", f"{__name__}:SlowSession", f"{__name__}:SlowPanel"))
    app = ExplorerApp(tabs=tabs)
    app.open_tab("slow")
    assert "Opening Slow" in app.tab.children[1].value  # the page can draw this while the session is made
    panel = app.wait("slow")
    assert app.tab.children[1] is panel
    assert panel.made_on is threading.main_thread() and panel.session.made_on is not threading.main_thread()


def test_a_widget_made_in_a_worker_thread_is_refused_in_debug_mode():
    errors = []

    def make():
        try:
            widgets.Button(description="from a worker")
        except WidgetThreadError as error:
            errors.append(str(error))

    worker = threading.Thread(target=make, name="worker")
    worker.start()
    worker.join()
    assert errors and "worker" in errors[0] and "kernel's thread" in errors[0]


def test_every_tab_links_to_its_view():
    app = build_app()
    session = app.sessions["mechanism"]
    session.update(preset="a distractor", score="additive", temperature=0.25, mask="custom", blocked=[[0, 1]])
    query = app.link()
    assert query.startswith("?tab=mechanism&state=1.")
    other = build_app()
    other.apply_link(query)
    assert other.sessions["mechanism"].settings() == session.settings()


@pytest.mark.parametrize("state, words", [
    ("garbage", "not one the explorer made"), ("1.eNpNjU", "damaged or cut short"),
    ("9." + links.encode({"a": 1}).split(".")[1], "newer version"), ("1." + "A" * 100_000, "characters long"),
])
def test_a_bad_state_gives_a_notice_and_the_defaults(state, words):
    app = build_app()
    app.apply_link(f"tab=mechanism&state={state}")
    assert words in app.notice.value
    assert app.sessions["mechanism"].settings() == MechanismSession().settings()


def test_unknown_and_refused_fields_of_a_state_are_dropped_and_named_the_rest_applied():
    state = links.encode({"score": "additive", "temperature": -3, "colour": "blue"})
    app = build_app()
    app.apply_link(f"tab=mechanism&state={state}")
    session = app.sessions["mechanism"]
    assert session.score == "additive" and session.temperature == 1.0
    assert "colour" in app.notice.value and "temperature" in app.notice.value


def test_an_error_inside_an_update_handler_leaves_the_panel_answering():
    app = build_app()
    panel, session = app.panels["mechanism"], app.sessions["mechanism"]

    def broken(change):
        raise RuntimeError("a bug in a handler")

    session.observe(broken, "score")
    with pytest.raises(RuntimeError):
        session.update(score="dot")
    session.unobserve(broken, "score")
    panel.score.value = "additive"  # the control still reaches the session, which still redraws
    assert session.score == "additive" and panel.weight_fig.figure.layout.meta == "ae-weights"
    panel.temperature_text.value = "0.5"
    assert session.temperature == 0.5 and session.status_kind == "ok"


def test_present_in_a_link_turns_present_mode_on_and_links_carry_it():
    app = build_app()
    assert not app.present.on and "ae-present" not in app._dom_classes
    app.apply_link("tab=mechanism&present=1")
    assert app.present.on and "ae-present" in app._dom_classes
    assert links.parse(app.link())["present"] == "1"
    app.present.on = False  # the switch on the page
    assert "ae-present" not in app._dom_classes and "present" not in links.parse(app.link())
