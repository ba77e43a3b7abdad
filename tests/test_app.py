"""The tabbed app and the serve command, without a browser."""

from __future__ import annotations

from explorer.app import TABS, build_app
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
