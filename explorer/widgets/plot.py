"""The on-screen plotly figure: a small anywidget that draws a figure with plotly.js, loaded once per page.

The figure is a synced trait (its data and layout as JSON), so a page that connects after the figure changed
gets it as it is now, and ``show(figure)`` is the one way to update it in place (plotly.js's ``Plotly.react``
redraws only what changed; a layout left alone is not sent again). plotly.js itself is a static file of our
Voila template (``install_bundle``), fetched and cached by the browser once; where the page cannot reach that
file (a notebook server without the template), the kernel sends it once over the comm.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import anywidget
import plotly
import plotly.graph_objects as go
from plotly.utils import PlotlyJSONEncoder
from traitlets import Unicode

# plotly.js's cartesian bundle (npm plotly.js-cartesian-dist-min, the version plotly.py bundles; MIT, see its
# LICENSE.txt): it draws every trace type the views make (CARTESIAN_TRACES) and is 1.5 MB where plotly.py's
# full bundle is 4.8 MB. A page runs all of it before its first figure: on a busy laptop that took 1.3-2.6 s.
PLOTLY_JS = Path(__file__).resolve().parents[1] / "static" / "plotly" / "plotly-cartesian.min.js"
FULL_PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"  # the version to match
CARTESIAN_TRACES = ("bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour", "image",
                    "pie", "scatter", "scatterternary", "violin")
BUNDLE_NAME = "plotly.min.js"
BUNDLE_PATH = f"voila/templates/explorer/static/{BUNDLE_NAME}"  # relative to the server's base URL


def install_bundle(static_dir: Path) -> Path:
    """Copy plotly.js into ``static_dir`` (our template's static folder); done by the serve command."""
    static_dir.mkdir(parents=True, exist_ok=True)
    target = static_dir / BUNDLE_NAME
    if not target.exists() or target.stat().st_size != PLOTLY_JS.stat().st_size \
            or target.read_bytes() != PLOTLY_JS.read_bytes():
        # Copy under a private name, then rename: a server starting at the same time never sees half a file.
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.copyfile(PLOTLY_JS, partial)
        os.replace(partial, target)
    return target


def figure_json(figure: go.Figure) -> tuple[str, str]:
    """The figure's data and layout as two JSON strings (numpy arrays as plotly's compact typed arrays)."""
    plain = figure.to_plotly_json()
    return (json.dumps(plain.get("data", []), cls=PlotlyJSONEncoder),
            json.dumps(plain.get("layout", {}), cls=PlotlyJSONEncoder))


class PlotView(anywidget.AnyWidget):
    """One plotly figure. ``show(figure)`` draws a new one in place; ``on_click(callback)`` hears clicks.

    ``figure`` is the ``go.Figure`` on screen (``data`` is its traces), ``name`` tags it in the page
    (its ``layout.meta``, and a CSS class ``name`` on the widget) for exports and tests.
    """

    _esm = Path(__file__).with_name("plot_view.js")
    _css = """
    .ae-plot { width: 100%; min-width: 0; position: relative; }
    .ae-plot-empty { color: #57606a; padding: 10px 8px; font-size: 14px; }
    .ae-present .ae-plot-empty { font-size: 19px; }
    .ae-plot-stale { position: absolute; left: 50%; top: 80px; transform: translateX(-50%); background: #fff8c5;
      color: #6e4a00; border: 1px solid #9a6700; padding: 6px 10px; font-size: 14px; max-width: 80%; }
    .ae-present .ae-plot-stale { font-size: 19px; }
    """
    data_json = Unicode("[]").tag(sync=True)
    layout_json = Unicode("{}").tag(sync=True)
    name = Unicode("").tag(sync=True)
    bundle = Unicode(BUNDLE_PATH).tag(sync=True)
    empty_text = Unicode("").tag(sync=True)  # shown instead of empty axes while the figure has no traces
    stale = Unicode("").tag(sync=True)  # when set, the figure is greyed with this line (it no longer matches its text)

    def __init__(self, figure: go.Figure | None = None, name: str = "", **kwargs):
        super().__init__(name=name, **kwargs)
        if name:
            self.add_class(name)
        self.figure = go.Figure()
        self._click_handlers: list[Callable] = []
        self.on_msg(self._on_page_message)
        if figure is not None:
            self.show(figure)

    @property
    def data(self):
        """The traces on screen (``figure.layout`` is the plotly layout; ``layout`` is the widget's own)."""
        return self.figure.data

    def show(self, figure: go.Figure) -> None:
        """Draw ``figure`` in place of the one on screen (one message; unchanged parts are not sent)."""
        if self.name:
            figure.update_layout(meta=self.name)
        data, layout = figure_json(figure)
        self.figure = figure
        with self.hold_sync():
            self.data_json, self.layout_json = data, layout

    def on_click(self, callback: Callable[[int, dict], None]) -> None:
        """Call ``callback(trace_index, point)`` when a point is clicked; ``point`` has ``index``, ``x`` and ``y``."""
        self._click_handlers.append(callback)

    def click(self, trace: int, point: dict) -> None:
        """What a click on ``point`` of trace ``trace`` does (the page sends these)."""
        for handler in self._click_handlers:
            handler(int(trace), point)

    def _on_page_message(self, _widget, content, _buffers) -> None:
        if not isinstance(content, dict):
            return
        if content.get("event") == "click":
            for point in content.get("points", [])[:1]:
                self.click(point.get("curve", 0), point)
        elif content.get("event") == "bundle":  # the page could not fetch plotly.js from the server
            self.send({"event": "bundle"}, [PLOTLY_JS.read_bytes()])
