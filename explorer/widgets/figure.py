"""The on-screen figure: plotly's FigureWidget, loading plotly's 5 MB widget bundle once per page.

plotly's FigureWidget is an anywidget whose JavaScript (about 5 MB) travels inside every widget's state,
so a tab with six figures would send 30 MB through the kernel's websocket and evaluate plotly six times.
Under ``attention-explorer serve`` the bundle is a static file of our Voila template instead: each figure
sends a three-line module that imports it, and the browser fetches and caches it once. In JupyterLab
(no such server route) the figure falls back to plotly's own inline bundle.
"""

from __future__ import annotations

import os
import shutil
from copy import deepcopy
from pathlib import Path

import plotly
import plotly.graph_objects as go
from plotly.basewidget import BaseFigureWidget
from plotly.serializers import custom_serializers
from traitlets import Dict

# Where the static bundle lives, relative to the Voila server URL (set by explorer.cli.voila_env).
BUNDLE_ENV = "AE_FIGURE_BUNDLE"
PLOTLY_BUNDLE = Path(plotly.__file__).parent / "package_data" / "widgetbundle.js"


def bundle_file_name() -> str:
    """The served name; fixed, because our Voila template preloads it by this name (see index.html.j2)."""
    return "figurewidget.js"


def install_bundle(static_dir: Path) -> Path:
    """Copy plotly's widget bundle into ``static_dir`` (done once by the serve command)."""
    static_dir.mkdir(parents=True, exist_ok=True)
    target = static_dir / bundle_file_name()
    if not target.exists() or target.read_bytes() != PLOTLY_BUNDLE.read_bytes():
        # Copy under a private name, then rename: a server starting at the same time never sees half a file.
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.copyfile(PLOTLY_BUNDLE, partial)
        os.replace(partial, target)
    return target


# After every update from Python, plotly.js deep-merges the whole drawn figure and sends Python what differs
# from what it was sent ("trace deltas", ~27 kB for one heatmap, and a layout delta that plotly 6 names so that
# Python never reads it): about 50 kB from the page per head change, which the page computes, Voila relays and
# the kernel parses and applies, only to learn plotly.js's defaults, which nothing here reads. (The cost: a
# FigureWidget's on_edit_completed callbacks never run; nothing here uses them.)
# Clicks and zooms are still reported.
QUIET_VIEW = """if (bundle.FigureView) {
  bundle.FigureView.prototype._sendTraceDeltas = function () {};
  bundle.FigureView.prototype._sendLayoutDelta = function () {};
}
"""


def proxy_module(bundle_path: str, server_url: str) -> str:
    """A tiny ES module that re-exports plotly's widget from the served bundle, its views kept quiet."""
    path = server_url.rstrip("/") + "/" + bundle_path.lstrip("/")
    return (f"const bundle = await import(new URL({path!r}, window.location.href).href);\n"
            f"{QUIET_VIEW}"
            "export default bundle.default;\n")


def _esm_source():
    bundle_path = os.environ.get(BUNDLE_ENV)
    if bundle_path and "VOILA_SERVER_URL" in os.environ:
        return proxy_module(bundle_path, os.environ["VOILA_SERVER_URL"])
    return PLOTLY_BUNDLE


def _page_message() -> Dict:
    """A message trait from the page to Python, as plotly declares it, but not echoed back to the page."""
    return Dict(allow_none=True).tag(sync=True, echo_update=False, **custom_serializers)


class Figure(go.FigureWidget):
    """A FigureWidget; use it exactly like ``go.FigureWidget(figure)``.

    plotly sends in-place updates as messages to the views already on the page, and gives a page that
    connects later the figure as it was when created. Under Voila's warm kernels a visitor's page connects
    after the dashboard was built and perhaps changed (a preset from the link, a model that finished
    loading), so a full state request is answered with the figure as it is now.
    """

    _esm = _esm_source()

    # Messages from the page to Python. ipywidgets 8 echoes every value a page sends straight back to it; for
    # these that was the whole redrawn trace (about 30 kB for one heatmap) parsed again by the page after
    # every update, for nothing: the page never reads them. Not echoing them halves the traffic of an update.
    _js2py_traceDeltas = _page_message()
    _js2py_layoutDelta = _page_message()
    _js2py_restyle = _page_message()
    _js2py_relayout = _page_message()
    _js2py_update = _page_message()
    _js2py_pointsCallback = _page_message()

    @staticmethod
    def _remove_overlapping_props(input_data, delta_data, prop_path=()):
        """plotly's clean-up after the page reports a redraw; it asserts that both sides hold the same kinds of
        values, which fails for matrices we send as typed arrays (they come back as plain lists). That raised
        and printed two tracebacks per update in the kernel, a tenth of a second of CPU each time."""
        try:
            return BaseFigureWidget._remove_overlapping_props(input_data, delta_data, prop_path)
        except AssertionError:
            return []

    def get_state(self, key=None, drop_defaults=False):
        if key is None and hasattr(self, "_layout_obj"):  # a page asks for everything: the figure as it is now
            self._trait_values["_widget_data"] = deepcopy(self._data)
            self._trait_values["_widget_layout"] = deepcopy(self._layout_obj._props)
        return super().get_state(key=key, drop_defaults=drop_defaults)


def copy_trace_data(target: go.FigureWidget, source: go.Figure, fields=("x", "y", "z", "text", "name")) -> None:
    """Update an on-screen figure in place from a freshly built one with the same traces."""
    with target.batch_update():
        for old, new in zip(target.data, source.data):
            for name in fields:
                if name in new:
                    old[name] = new[name]
        for annotation, new_annotation in zip(target.layout.annotations, source.layout.annotations):
            annotation.text = new_annotation.text
