"""Small steps shared by the browser tests: open the dashboard, pick a tab, read a plotted figure."""

from __future__ import annotations

import json

WIDGETS_READY = ".ae-app .lm-TabBar-tab, .ae-app .p-TabBar-tab"


def open_dashboard(page, url: str, query: str = ""):
    """Load the dashboard (optionally with ``?tab=...``) and wait until the tab bar is drawn."""
    page.goto(url + (f"?{query}" if query else ""), wait_until="domcontentloaded")
    page.wait_for_selector(WIDGETS_READY, timeout=90_000)
    return page


def select_tab(page, title: str) -> None:
    """Click the tab whose title is ``title``."""
    page.locator(WIDGETS_READY).filter(has_text=title).first.click()


def figure_data(page, css_class: str) -> list:
    """The trace data (as plotly holds it in the page) of the figure inside the element with ``css_class``.

    Figures are tagged by ``layout.meta``; ``css_class`` may also be an ancestor's class.
    """
    return json.loads(page.evaluate(
        """(meta) => {
            const plots = [...document.querySelectorAll('.js-plotly-plot')];
            const plot = plots.find(p => p.layout && p.layout.meta === meta);
            if (!plot) return 'null';
            return JSON.stringify(plot.data.map(t => ({z: t.z, x: t.x, y: t.y, name: t.name})));
        }""",
        css_class,
    ))


def wait_for_figure(page, meta: str, timeout: float = 60_000) -> None:
    """Wait until the plotly figure tagged ``layout.meta == meta`` is drawn."""
    page.wait_for_function(
        "(meta) => [...document.querySelectorAll('.js-plotly-plot')].some(p => p.layout && p.layout.meta === meta)",
        arg=meta, timeout=timeout)
