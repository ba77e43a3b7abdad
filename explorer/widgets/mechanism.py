"""The Mechanism tab: edit 2-D queries, keys and values and follow scores -> softmax -> weighted sum."""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go
import torch

from explorer.attention import SCORE_FORMULAS, SCORES
from explorer.models.mechanism import FOCUS, MASKS, PRESETS, ToyAttention, parse_vector
from explorer.views import mechanism as view
from explorer.widgets.export import ExportBar, maps_export
from explorer.widgets.figure import Figure, copy_trace_data
from explorer.widgets.common import StatusLine, labelled, section, shows_errors, unknown_name

KINDS = (("queries", "query"), ("keys", "key"), ("values", "value"))
SCORE_LABELS = {"dot": "dot", "scaled_dot": "scaled dot", "general": "general", "additive": "additive"}


class MechanismPanel(widgets.VBox):
    """Controls on the left; the steps, the arrows and the score and weight matrices on the right."""

    def __init__(self, preset: str = "one query matches one key"):
        super().__init__()
        self.add_class("ae-mechanism")
        self.status = StatusLine()
        self.toy = ToyAttention.preset(preset)
        self.custom_mask = torch.ones(len(self.toy.tokens), len(self.toy.tokens), dtype=torch.bool)
        self.result = None
        self._syncing = False
        self._build_controls(preset)
        self._build_figures()
        self.children = [widgets.HBox([self.controls, self.outputs])]
        self.update()

    # ----- layout -------------------------------------------------------------------------------
    def _build_controls(self, preset: str) -> None:
        self.preset = widgets.Dropdown(options=list(PRESETS), value=preset, layout=widgets.Layout(width="210px"))
        self.score = widgets.ToggleButtons(options=[(SCORE_LABELS[s], s) for s in SCORES], value="scaled_dot",
                                           style=dict(button_width="84px"))
        self.score.add_class("ae-score")
        self.temperature = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.01, readout_format=".2f",
                                                  continuous_update=True, layout=widgets.Layout(width="210px"))
        self.temperature.add_class("ae-temperature")
        self.temperature_text = widgets.Text(value="1", layout=widgets.Layout(width="70px"),
                                             placeholder="T > 0", continuous_update=False)
        self.temperature_text.add_class("ae-temperature-text")
        self.mask_kind = widgets.ToggleButtons(options=MASKS, value="none", style=dict(button_width="70px"))
        self.query = widgets.ToggleButtons(options=list(self.toy.tokens), value=FOCUS[preset],
                                           style=dict(button_width="60px"))
        self.sliders = {
            (kind, axis): widgets.FloatSlider(min=-3, max=3, step=0.05, description=f"{label} {'xy'[axis]}",
                                              readout_format=".2f", layout=widgets.Layout(width="300px"))
            for kind, label in KINDS for axis in (0, 1)
        }
        self.entries = [[widgets.Text(layout=widgets.Layout(width="82px"), continuous_update=False) for _ in KINDS]
                        for _ in self.toy.tokens]
        self.token_labels = [widgets.Label(layout=widgets.Layout(width="50px")) for _ in self.toy.tokens]
        header = widgets.HBox([widgets.Label("", layout=widgets.Layout(width="50px"))] +
                              [widgets.Label(label, layout=widgets.Layout(width="82px")) for _, label in KINDS])
        table = widgets.VBox([header] + [widgets.HBox([lab] + row) for lab, row in zip(self.token_labels, self.entries)])
        self.controls = widgets.VBox([
            section("Example", labelled("preset", self.preset, "70px")),
            section("Score function", self.score),
            section("Temperature T (divides the scores)", widgets.HBox([self.temperature, self.temperature_text])),
            section("Mask", self.mask_kind,
                    widgets.HTML("<small>custom: click a cell of the weights to block or allow it</small>")),
            section("Token (its steps and sliders)", self.query),
            section("Its vectors", *self.sliders.values()),
            section("All vectors (type x, y)", table),
            section("Export", ExportBar({"weights": "ae-weights", "scores": "ae-scores", "vectors": "ae-vectors"},
                                        {"attention maps": maps_export(self._current_maps)}, self.status,
                                        name="mechanism")),
            self.status,
        ], layout=widgets.Layout(width="380px", min_width="380px"))
        self._fill_vector_controls()
        self.preset.observe(self._on_preset, "value")
        for control in (self.score, self.mask_kind):
            control.observe(lambda _: self.update(), "value")
        self.query.observe(self._on_query, "value")
        self.temperature.observe(self._on_temperature_slider, "value")
        self.temperature_text.observe(self._on_temperature_text, "value")
        for (kind, axis), slider in self.sliders.items():
            slider.observe(lambda change, kind=kind: self._on_slider(kind), "value")
        for i, row in enumerate(self.entries):
            for (kind, _), entry in zip(KINDS, row):
                entry.observe(lambda change, i=i, kind=kind: self._on_entry(i, kind, change["new"]), "value")

    def _build_figures(self) -> None:
        self.steps = widgets.HTMLMath(layout=widgets.Layout(min_height="170px"))
        self.steps.add_class("ae-steps")
        result = self._compute(1.0)
        tokens = self.toy.tokens
        self.vector_fig = Figure(self._vector_figure(result))
        self.score_fig = Figure(view.score_figure(result.scores, tokens))
        self.weight_fig = Figure(view.weight_figure(result.weights, tokens, result.mask))
        self.weight_fig.data[0].on_click(self._on_cell_click)
        for fig, name in ((self.score_fig, "ae-scores"), (self.weight_fig, "ae-weights"), (self.vector_fig, "ae-vectors")):
            fig.add_class(name)
        self.outputs = widgets.VBox([
            self.steps, self.vector_fig,
            widgets.HBox([self.score_fig, self.weight_fig], layout=widgets.Layout(width="100%")),
        ], layout=widgets.Layout(flex="1 1 auto", min_width="600px"))

    # ----- state -> controls ---------------------------------------------------------------------
    def _fill_vector_controls(self) -> None:
        self._syncing = True
        try:
            index = self.toy.tokens.index(self.query.value)
            for (kind, axis), slider in self.sliders.items():
                slider.value = float(getattr(self.toy, kind)[index, axis])
            for i, row in enumerate(self.entries):
                self.token_labels[i].value = self.toy.tokens[i]
                for (kind, _), entry in zip(KINDS, row):
                    x, y = getattr(self.toy, kind)[i].tolist()
                    entry.value = f"{x:.2f}, {y:.2f}"
        finally:
            self._syncing = False

    # ----- events --------------------------------------------------------------------------------
    def _on_preset(self, change) -> None:
        self.toy = ToyAttention.preset(change["new"])
        self.custom_mask = torch.ones(len(self.toy.tokens), len(self.toy.tokens), dtype=torch.bool)
        self._syncing = True
        self.query.options = list(self.toy.tokens)
        self.query.value = FOCUS[change["new"]]
        self._syncing = False
        self._fill_vector_controls()
        self.update()

    def apply_preset(self, name: str) -> None:
        """Load one of the named examples (``PRESETS``); a ValueError lists them if the name is unknown."""
        if name not in PRESETS:
            raise unknown_name("preset", name, PRESETS)
        self.preset.value = name

    def _on_query(self, change) -> None:
        if not self._syncing:
            self._fill_vector_controls()
            self.update()

    def _on_temperature_slider(self, change) -> None:
        if not self._syncing:
            self._syncing = True
            self.temperature_text.value = f"{change['new']:.3g}"
            self._syncing = False
            self.update()

    @shows_errors
    def _on_temperature_text(self, change) -> None:
        if self._syncing:
            return
        try:
            value = float(change["new"])
        except ValueError:
            raise ValueError(f"The temperature '{change['new']}' is not a number; type a positive number such as 0.5.") from None
        self.update(temperature=value)

    @shows_errors
    def _on_slider(self, kind: str) -> None:
        if self._syncing:
            return
        index = self.toy.tokens.index(self.query.value)
        vector = (self.sliders[(kind, 0)].value, self.sliders[(kind, 1)].value)
        self.toy = self.toy.with_vector(kind, index, vector)
        self._fill_vector_controls()
        self.update()

    @shows_errors
    def _on_entry(self, index: int, kind: str, text: str) -> None:
        if self._syncing:
            return
        self.toy = self.toy.with_vector(kind, index, parse_vector(text))
        self._fill_vector_controls()
        self.update()

    def _on_cell_click(self, trace, points, selector) -> None:
        if not points.point_inds:
            return
        row, col = points.point_inds[0] if isinstance(points.point_inds[0], (list, tuple)) else divmod(
            points.point_inds[0], len(self.toy.tokens))
        self.toggle_mask_cell(row, col)

    def toggle_mask_cell(self, query: int, key: int) -> None:
        """Block (or allow again) query ``query`` from attending to key ``key``; switches the mask to custom."""
        self.custom_mask[query, key] = ~self.custom_mask[query, key]
        if self.mask_kind.value != "custom":
            self.mask_kind.value = "custom"  # triggers update
        else:
            self.update()

    def _current_maps(self):
        return None if self.result is None else self.result.maps(self.toy.tokens)

    # ----- compute and draw ----------------------------------------------------------------------
    def _compute(self, temperature: float):
        mask = self.toy.mask(self.mask_kind.value, self.custom_mask)
        return self.toy.run(self.score.value, temperature, mask)

    def _vector_figure(self, result) -> go.Figure:
        index = self.toy.tokens.index(self.query.value)
        return view.vector_figure(self.toy.tokens, self.toy.queries, self.toy.keys, self.toy.values,
                                  result.weights, result.context, index)

    @shows_errors
    def update(self, temperature: float | None = None) -> None:
        """Recompute with the current controls and redraw every figure in place."""
        temperature = self.temperature.value if temperature is None else temperature
        result = self._compute(temperature)  # raises a ValueError for a bad temperature: nothing redrawn
        self.result = result
        tokens = self.toy.tokens
        index = tokens.index(self.query.value)
        copy_trace_data(self.vector_fig, self._vector_figure(result))
        copy_trace_data(self.score_fig, view.score_figure(result.scores, tokens))
        copy_trace_data(self.weight_fig, view.weight_figure(result.weights, tokens, result.mask))
        self.steps.value = view.steps_latex(
            SCORE_FORMULAS[self.score.value], tokens, result.scores[index].tolist(), result.weights[index].tolist(),
            result.context[index].tolist(), temperature, tokens[index], masked=~result.mask[index])
        blocked = int((~result.mask).sum())
        empty_rows = [tokens[i] for i in range(len(tokens)) if not result.mask[i].any()]
        message = f"{SCORE_LABELS[self.score.value]} score, T = {temperature:.3g}, {blocked} cell(s) masked."
        if empty_rows:
            message += f" Query {', '.join(empty_rows)} may attend to nothing: its weights and context are zero."
        self.status.ok(message)
