"""The Mechanism tab: edit 2-D queries, keys and values and follow scores -> softmax -> weighted sum.

The state is a ``MechanismSession``; this panel binds its controls to the session's settings and draws the
session's ``result`` whenever it changes.
"""

from __future__ import annotations

import math

import ipywidgets as widgets

from explorer import links
from explorer.attention import SCORE_FORMULAS, SCORES
from explorer.sessions.mechanism import KINDS, SCORE_LABELS, MechanismSession
from explorer.views import mechanism as view
from explorer.views import words
from explorer.widgets.controls import (Form, Row, StatusLine, columns, control, explain, explanation, preset_row, section,
                                       shows_errors, tagged)
from explorer.widgets.export import CopyLink, ExportBar, maps_export
from explorer.widgets.plot import PlotView

LABELS = {"queries": "query", "keys": "key", "values": "value"}
w = widgets


def within_a_step(slider: widgets.FloatLogSlider):
    """Two temperatures the log slider cannot tell apart (half a step of its exponent or less)."""
    return lambda a, b: a > 0 and b > 0 and abs(math.log(a / b, slider.base)) <= slider.step / 2 + 1e-12


ROWS = (  # sizes in em grow with the font (present mode)
    preset_row("16em", label="preset"),
    Row("score", control(w.ToggleButtons, style=dict(button_width="6.5em")), tag="ae-score",
        options=lambda s: [(SCORE_LABELS[k], k) for k in SCORES]),
    Row("temperature", control(w.FloatLogSlider, "16em", base=10, min=-1, max=1, step=0.01, readout_format=".2f"),
        tag="ae-temperature", same=within_a_step),
    Row("temperature", control(w.Text, "5.4em", placeholder="T > 0", continuous_update=False), tag="ae-temperature-text",
        to_view=lambda v: f"{v:.3g}", name="temperature_text"),
    Row("mask", control(w.ToggleButtons, style=dict(button_width="5.4em"))),
    Row("token", control(w.ToggleButtons, style=dict(button_width="4.6em")), options=lambda s: list(s.tokens)),
)


def vector_text(vector) -> str:
    return f"{vector[0]:.2f}, {vector[1]:.2f}"


class MechanismPanel(widgets.VBox):
    """Controls on the left; the steps, the arrows and the score and weight matrices on the right."""

    def __init__(self, session: MechanismSession | None = None):
        super().__init__()
        self.add_class("ae-mechanism")
        self.session = session = session or MechanismSession()
        self.status = StatusLine(session)
        self._build_controls()
        self._build_figures()
        self.children = [columns(self.controls, self.outputs)]
        session.observe(lambda _: self.redraw(), "result")
        self.redraw()

    # ----- layout -------------------------------------------------------------------------------
    def _build_controls(self) -> None:
        s, w = self.session, widgets
        self.form = form = Form(s, ROWS)
        self.preset, self.score, self.temperature, self.temperature_text, self.mask_kind, self.query = (
            form[name] for name in ("preset", "score", "temperature", "temperature_text", "mask", "token"))
        self.bindings = list(form.bindings.values())
        self.sliders = {(kind, axis): w.FloatSlider(min=-3, max=3, step=0.05, description=f"{LABELS[kind]} {'xy'[axis]}",
                                                    readout_format=".2f", layout=w.Layout(width="23em"))
                        for kind in KINDS for axis in (0, 1)}
        for (kind, axis), slider in self.sliders.items():
            slider.observe(lambda change, kind=kind, axis=axis: self._on_slider(kind, axis, change["new"]), "value")
        self.entries = [[w.Text(layout=w.Layout(width="6.3em"), continuous_update=False) for _ in KINDS]
                        for _ in s.tokens]
        for i, row in enumerate(self.entries):
            for kind, entry in zip(KINDS, row):
                entry.observe(lambda change, i=i, kind=kind: self._on_entry(i, kind, change["new"]), "value")
        self.token_labels = [w.Label(layout=w.Layout(width="3.8em")) for _ in s.tokens]
        header = w.HBox([w.Label("", layout=w.Layout(width="3.8em"))] +
                        [w.Label(LABELS[kind], layout=w.Layout(width="6.3em")) for kind in KINDS])
        table = w.VBox([header] + [w.HBox([label] + row) for label, row in zip(self.token_labels, self.entries)])
        self.export_bar = export = ExportBar(s, {"weights": "ae-weights", "scores": "ae-scores", "vectors": "ae-vectors"},
                           {"attention maps": maps_export(s.maps)}, name="mechanism")
        self.controls = w.VBox([
            section("Example", *form.rows("preset", width="70px")),
            section("Score function", self.score),
            section("Temperature T (divides the scores)", w.HBox([self.temperature, self.temperature_text])),
            section("Mask", self.mask_kind, w.HTML("<small>custom: click a cell of the weights to block or allow it</small>")),
            section("Token (its steps and sliders)", self.query),
            section("Its vectors", *self.sliders.values()),
            section("All vectors (type x, y)", table),
            section("Export", export),
            section("Share", CopyLink(lambda: links.query(s.key, s.state()))),
            self.status,
        ], layout=w.Layout(width="29em", min_width="320px", flex="0 1 29em"))

    def _build_figures(self) -> None:
        self.steps = tagged(widgets.HTMLMath(layout=widgets.Layout(min_height="170px")), "ae-steps")
        self.vector_fig = PlotView(name="ae-vectors")
        self.score_fig = PlotView(name="ae-scores")
        self.weight_fig = PlotView(name="ae-weights")
        self.weight_fig.on_click(self._on_cell_click)
        self.vector_words, self.score_words, self.weight_words = (explanation(f"ae-{n}-words")
                                                                  for n in ("vectors", "scores", "weights"))
        column = dict(flex="1 1 380px", min_width="300px", max_width="460px")
        matrices = widgets.Box([widgets.VBox([self.score_fig, self.score_words], layout=widgets.Layout(**column)),
                                widgets.VBox([self.weight_fig, self.weight_words], layout=widgets.Layout(**column))],
                               layout=widgets.Layout(display="flex", flex_flow="row wrap", width="100%"))
        self.outputs = widgets.VBox([self.steps, self.vector_fig, self.vector_words, matrices],
                                    layout=widgets.Layout(flex="1 1 560px", min_width="0"))

    # ----- events --------------------------------------------------------------------------------
    @shows_errors
    def _on_slider(self, kind: str, axis: int, value: float) -> None:
        index = self.session.focus
        vector = list(getattr(self.session, kind)[index])
        if abs(vector[axis] - value) < 1e-9:  # the redraw moved the slider: nothing to set
            return
        vector[axis] = value
        self.session.set_vector(kind, index, vector)

    @shows_errors
    def _on_entry(self, index: int, kind: str, text: str) -> None:
        if text == vector_text(getattr(self.session, kind)[index]):
            return
        try:
            self.session.set_vector(kind, index, text)
        finally:
            self._fill_vectors()  # a refused entry goes back to the vector that holds

    def _on_cell_click(self, trace: int, point: dict) -> None:
        index = point.get("index")
        if trace == 0 and isinstance(index, (list, tuple)) and len(index) == 2:  # a heatmap cell: [row, column]
            self.toggle_mask_cell(int(index[0]), int(index[1]))

    @shows_errors
    def toggle_mask_cell(self, query: int, key: int) -> None:
        """Block (or allow again) query ``query`` from attending to key ``key``; switches the mask to custom."""
        self.session.toggle_cell(query, key)

    def apply_preset(self, name: str) -> None:
        self.session.apply_preset(name)

    # ----- drawing -------------------------------------------------------------------------------
    def _fill_vectors(self) -> None:
        s = self.session
        for (kind, axis), slider in self.sliders.items():
            slider.value = float(getattr(s, kind)[s.focus][axis])
        for i, row in enumerate(self.entries):
            self.token_labels[i].value = s.tokens[i]
            for kind, entry in zip(KINDS, row):
                entry.value = vector_text(getattr(s, kind)[i])

    def redraw(self) -> None:
        """Draw the session's result: the arrows, both matrices and the three steps for the chosen token."""
        s, result = self.session, self.session.result
        if result is None:
            return
        self._fill_vectors()
        tokens, index = s.tokens, s.focus
        self.vector_fig.show(view.vector_figure(tokens, s.toy.queries, s.toy.keys, s.toy.values, result.weights,
                                                result.context, index))
        self.score_fig.show(view.score_figure(result.scores, tokens))
        self.weight_fig.show(view.weight_figure(result.weights, tokens, result.mask))
        explain(self.vector_words, words.mechanism_vectors())
        explain(self.score_words, words.mechanism_scores(s.score))
        explain(self.weight_words, words.mechanism_weights(int((~result.mask).sum())))
        self.steps.value = view.steps_latex(
            SCORE_FORMULAS[s.score], tokens, result.scores[index].tolist(), result.weights[index].tolist(),
            result.context[index].tolist(), s.temperature, tokens[index], masked=~result.mask[index])
