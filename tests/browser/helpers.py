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


# A figure in the page: a plotly graph div, or a canvas map (HeatmapView), which carries the same `layout`
# (meta, title, shapes) and `data` (x, y, z) fields for what it draws.
FIND_PLOT = """(name) => {
    const inClass = document.querySelector(`.${name} .js-plotly-plot`) || document.querySelector(`.js-plotly-plot.${name}`);
    if (inClass) return inClass;
    return [...document.querySelectorAll('.js-plotly-plot, .ae-heatmap')].find(
        p => (p.layout && p.layout.meta === name) || (p._fullLayout && p._fullLayout.meta === name)) || null;
}"""


def figure_data(page, name: str) -> list | None:
    """The trace data (as plotly holds it in the page) of the figure tagged ``name``.

    A figure is found by a CSS class on the figure widget (``fig.add_class(name)``) or on an ancestor.
    """
    return json.loads(page.evaluate(
        f"""(name) => {{
            const plot = ({FIND_PLOT})(name);
            if (!plot) return 'null';
            return JSON.stringify(plot.data.map(t => ({{z: t.z, x: t.x, y: t.y, name: t.name, text: t.text}})));
        }}""",
        name,
    ))


def wait_for_figure(page, name: str, timeout: float = 60_000) -> None:
    """Wait until the plotly figure tagged ``name`` is drawn."""
    page.wait_for_function(f"(name) => {{ const p = ({FIND_PLOT})(name); return p && p.data && p.data.length > 0; }}",
                           arg=name, timeout=timeout)


def wait_for_change(page, name: str, before, timeout: float = 60_000) -> list:
    """Wait until the first trace's z of figure ``name`` differs from ``before``; returns the new data."""
    page.wait_for_function(
        f"([name, before]) => {{ const p = ({FIND_PLOT})(name); return p && JSON.stringify(p.data[0].z) !== before; }}",
        arg=[name, json.dumps(before, separators=(",", ":"))], timeout=timeout)
    return figure_data(page, name)


def wait_for_data(page, name: str, predicate, timeout: float = 60.0) -> list:
    """Poll the figure tagged ``name`` until ``predicate(data)`` is true; returns that data."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        data = figure_data(page, name)
        if data is not None and predicate(data):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"figure {name} did not reach the expected state; last data: {str(data)[:300]}")
        page.wait_for_timeout(200)
