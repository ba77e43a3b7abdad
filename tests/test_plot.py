"""The on-screen figures: plotly figures as synced state (a late page gets them as they are now), canvas maps."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from explorer.views.heatmaps import outline
from explorer.widgets.heatmap_view import HeatmapView
from explorer.widgets.plot import CARTESIAN_TRACES, FULL_PLOTLY_JS, PLOTLY_JS, PlotView, install_bundle


def test_a_late_page_gets_the_figure_as_it_is_now():
    view = PlotView(go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])), name="ae-test")
    view.show(go.Figure(go.Heatmap(z=[[5, 6], [7, 8]])))
    state = view.get_state()
    assert json.loads(state["data_json"])[0]["z"] == [[5, 6], [7, 8]]
    assert json.loads(state["layout_json"])["meta"] == "ae-test" and "ae-test" in view._dom_classes
    assert list(view.data[0].z[1]) == [7, 8]


def test_an_update_is_one_message_and_an_unchanged_layout_is_not_sent_again():
    view = PlotView(go.Figure(go.Scatter(x=[1, 2], y=[3, 4]), layout=dict(title=dict(text="t"))))
    sent = []
    view._send = lambda msg, buffers=None: sent.append(msg)
    view.show(go.Figure(go.Scatter(x=[1, 2], y=[5, 6]), layout=dict(title=dict(text="t"))))
    assert len(sent) == 1 and set(sent[0]["state"]) == {"data_json"}


def test_clicks_reach_the_callbacks_and_the_bundle_is_sent_when_the_page_asks():
    view = PlotView(go.Figure(go.Heatmap(z=[[1, 2]])))
    clicks, sent = [], []
    view.on_click(lambda trace, point: clicks.append((trace, point["index"], point["x"])))
    view._on_page_message(view, {"event": "click", "points": [{"curve": 0, "index": [0, 1], "x": "b", "y": "a"}]}, [])
    assert clicks == [(0, [0, 1], "b")]
    view.send = lambda content, buffers=None: sent.append((content, buffers))
    view._on_page_message(view, {"event": "bundle"}, [])
    assert sent[0][0] == {"event": "bundle"} and sent[0][1][0][:2] == PLOTLY_JS.read_bytes()[:2]


def test_plotly_js_is_installed_into_the_template_once(tmp_path):
    target = install_bundle(tmp_path)
    assert target.stat().st_size > 1_000_000 and install_bundle(tmp_path) == target
    assert b"plotly.js" in target.read_bytes()[:200]


def test_the_page_gets_plotly_js_s_cartesian_bundle_of_the_version_plotly_py_writes_figures_for():
    import re
    from pathlib import Path

    header, full = PLOTLY_JS.read_text()[:200], FULL_PLOTLY_JS.read_text()[:200]
    assert "(cartesian - minified)" in header  # a third of the full bundle's size, as fast to start
    version = re.search(r"v(\d+\.\d+\.\d+)", full).group(1)
    assert f"v{version}" in header, f"plotly.py now bundles plotly.js {version}: vendor its cartesian bundle too"
    assert PLOTLY_JS.stat().st_size < FULL_PLOTLY_JS.stat().st_size / 2
    # Every trace type a figure of the explorer is made of is one the bundle draws.
    explorer = Path(PLOTLY_JS).parents[2]
    made = {name.lower() for path in explorer.rglob("*.py")
            for name in re.findall(r"\bgo\.([A-Z][A-Za-z0-9]*)\(", path.read_text())} - {"figure", "frame", "layout"}
    assert made and made <= set(CARTESIAN_TRACES), made - set(CARTESIAN_TRACES)
    assert not [path for path in explorer.rglob("*.py") if re.search(r"plotly\.express|\btype=[\"'](scatter|heatmap|bar)",
                                                                      path.read_text())]  # traces made only as go.X


def test_heatmap_view_holds_the_matrix_and_sends_one_message_per_change():
    matrix = np.random.default_rng(0).random((3, 4))
    view = HeatmapView(matrix=matrix, x=list("abcd"), y=list("xyz"), title="t")
    np.testing.assert_allclose(view.matrix, matrix, rtol=1e-6)
    assert view.shape == [3, 4] and view.colorscale[0] == [0.0, "rgb(247,251,255)"]
    sent = []
    view._send = lambda msg, buffers=None: sent.append((msg, buffers))
    view.show(matrix=matrix * 0.5, title="layer 1", outlines=[outline(-0.5, 3.5, 0.5, 1.5)])
    assert len(sent) == 1  # matrix, title and outline together: one repaint in the page
    state = sent[0][0]["state"]
    assert set(state) == {"title", "outlines"}
    assert sent[0][0]["buffer_paths"] == [["z"]] and len(sent[0][1]) == 1  # the matrix as one binary buffer
    sent.clear()
    view.show(matrix=matrix * 0.5, title="layer 1")  # nothing changed: nothing sent
    assert sent == []
    with pytest.raises(ValueError, match="2-D"):
        view.matrix = np.zeros(3)
    clicks = []
    view.on_click(lambda row, col: clicks.append((row, col)))
    view._on_page_message(view, {"event": "click", "row": 2, "col": 1}, [])
    assert clicks == [(2, 1)]
