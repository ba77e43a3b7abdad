"""The shared Figure widget: the current figure for late pages, a small module under Voila, no tracebacks."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
from plotly.basewidget import BaseFigureWidget

from explorer.widgets.figure import Figure, install_bundle, proxy_module


def test_a_late_page_gets_the_figure_as_it_is_now():
    figure = Figure(go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])))
    figure.data[0].z = [[5, 6], [7, 8]]
    assert figure.get_state()["_widget_data"][0]["z"] == [[5, 6], [7, 8]]


def test_mismatched_kinds_after_a_redraw_are_not_an_error():
    typed, plain = {"z": [[1.0, 2.0]]}, {"z": {"dtype": "f4", "bdata": "AACAPwAAAEA="}}
    with pytest.raises(AssertionError):
        BaseFigureWidget._remove_overlapping_props({"z": [[1.0, 2.0]]}, plain)
    assert Figure._remove_overlapping_props(typed, plain) == []


def test_voila_pages_import_the_served_bundle(tmp_path):
    module = proxy_module("voila/templates/explorer/static/figurewidget.js", "/base/")
    assert "/base/voila/templates/explorer/static/figurewidget.js" in module and "export default" in module
    target = install_bundle(tmp_path)
    assert target.stat().st_size > 1_000_000 and install_bundle(tmp_path) == target


def test_messages_from_the_page_are_not_echoed_back_to_it():
    """ipywidgets 8 echoes what a page sends; for plotly's redraw reports (a whole trace) that doubled the traffic
    of every update. plotly's own FigureWidget still echoes them, so this test can tell the two apart."""
    def echoes(widget) -> list:
        sent = []
        widget._send = lambda msg, buffers=None: sent.append(msg["method"])
        widget.set_state({"_js2py_relayout": None, "_js2py_traceDeltas": None})
        return [method for method in sent if method == "echo_update"]

    assert echoes(go.FigureWidget()) == ["echo_update"]
    assert echoes(Figure()) == []


def test_heatmap_view_holds_the_matrix_and_sends_one_message_per_change():
    import numpy as np
    import pytest

    from explorer.views.heatmaps import outline
    from explorer.widgets.heatmap_view import HeatmapView

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
