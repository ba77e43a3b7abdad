"""The Language model tab's attention-sink section: its controls, and the running perplexity of each setting.

Thin: the settings and the run belong to the session (``explorer.sessions.sinks``); this box binds controls to
them and draws ``session.sink_run`` with ``explorer.views.sinks`` each time a pass ends.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from explorer.sinks import TEXT_SOURCE
from explorer.views import sinks as view
from explorer.widgets.controls import Form, Row, button, control, tagged
from explorer.widgets.plot import PlotView

w = widgets
ROWS = (
    Row("window", control(w.IntText, "110px"), "window (tokens)", "ae-llm-window"),
    Row("sinks", control(w.IntText, "110px"), "first tokens kept", "ae-llm-sinks"),
    Row("sink_tokens", control(w.IntText, "110px"), "tokens to read", "ae-llm-sink-tokens"),
    Row("sink_text", control(w.ToggleButtons, style=dict(button_width="110px")), tag="ae-llm-sink-text",
        options=lambda s: [("Book of Ruth", "bundled"), ("the prompt", "prompt")]),
)


class SinksBox:
    """``controls`` go in the panel's left column, ``outputs`` in its right one."""

    def __init__(self, session, stop):
        self.session = session
        self.form = Form(session, ROWS, label_width="130px")
        self.window, self.sinks, self.tokens, self.text = (self.form[name] for name in
                                                           ("window", "sinks", "sink_tokens", "sink_text"))
        self.run_button = button("Run the sink experiment", session.run_sinks, "ae-llm-run-sinks", "primary",
                                 "play", "210px")
        self.controls = [*self.form.rows("window", "sinks", "sink_tokens", "sink_text"), w.HBox([self.run_button, stop])]
        self.progress = tagged(w.FloatProgress(value=0, min=0, max=1, description="passes",
                                               layout=w.Layout(width="320px")), "ae-llm-sink-progress")
        self.plot = PlotView(view.sinks_figure(), name="ae-llm-sinks", empty_text=view.EMPTY)
        self.summary = tagged(w.HTML(), "ae-llm-sink-summary")
        source = w.HTML(f"<small>The bundled text: {html.escape(TEXT_SOURCE)}.</small>")
        self.outputs = w.VBox([self.progress, self.plot, self.summary, source], layout=w.Layout(width="100%"))
        session.observe(lambda change: setattr(self.progress, "value", change["new"]), "progress")
        session.observe(lambda _: self.redraw(), "sink_run")
        self.redraw()

    def redraw(self) -> None:
        """The curves and the table of the last (or running) experiment."""
        run = self.session.sink_run
        self.plot.show(view.sinks_figure(run))
        self.summary.value = view.sinks_html(run)
