"""What the page does before its first plot: only what the first figure needs, each thing once.

Measured in bench/classroom.py (``first_plot_s``); these tests keep the causes of the slow first plot away:
plotly.js run only when the first figure was rendered (seconds of script on the critical path), and Voila
fetching jupyterlab-plotly's 4.8 MB bundle, which the dashboard never uses, before connecting to its kernel.
"""

from __future__ import annotations

from tests.browser.helpers import open_dashboard, wait_for_figure

# The scripts with a src, in the order they were put into the page (by its HTML or by other scripts).
RECORD_SCRIPTS = """(() => {
  window.__aeScripts = [];
  new MutationObserver((changes) => changes.forEach((c) => c.addedNodes.forEach((node) => {
    if (node.tagName === 'SCRIPT' && node.src) window.__aeScripts.push(node.src);
  }))).observe(document, { childList: true, subtree: true });
})()"""
RESOURCES = """() => performance.getEntriesByType('resource').map(r => r.name)"""


def test_plotly_js_starts_with_the_page_once_and_jupyterlab_plotly_is_not_fetched(dashboard_url, page):
    page.add_init_script(RECORD_SCRIPTS)
    open_dashboard(page, dashboard_url)
    wait_for_figure(page, "ae-weights")
    scripts = page.evaluate("() => window.__aeScripts")
    plotly = [i for i, src in enumerate(scripts) if src.endswith("/voila/templates/explorer/static/plotly.min.js")]
    voila = [i for i, src in enumerate(scripts) if src.endswith("/voila/static/voila.js")]
    assert len(plotly) == 1, scripts  # the figures use the template's load, they do not add their own
    assert voila and plotly[0] < voila[0], scripts  # by the page's head, not when a figure is drawn
    resources = page.evaluate(RESOURCES)
    assert sum(name.endswith("/plotly.min.js") for name in resources) == 1
    assert not [name for name in resources if "/labextensions/jupyterlab-plotly/" in name]
    assert [name for name in resources if "/labextensions/anywidget/" in name]  # the extensions we use still load
    assert page.evaluate("() => typeof window.Plotly.react") == "function"
