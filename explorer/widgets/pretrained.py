"""The Pretrained tab: every layer and head of a real encoder on the visitor's own text, offline.

The state is a ``PretrainedSession`` (it loads the model and reads the text in its worker); this panel binds
the controls to its settings and draws its ``reading``: only the figures on screen, a few times a second at most.
"""

from __future__ import annotations

import ipywidgets as widgets

from explorer import links
from explorer.sessions.pretrained import PretrainedSession, is_seq2seq
from explorer.threads import Throttle
from explorer.views import bertviz as bertviz_view
from explorer.views import pretrained as view
from explorer.views import words
from explorer.views.export import export_scope
from explorer.views.heatmaps import unique_labels
from explorer.widgets.bertviz_frame import BertvizFrame
from explorer.widgets.controls import (Form, ModelBox, Row, StatusLine, button, columns, control, explain, explanation,
                                       head_numbers, positions, preset_row, section, shows_errors, tagged)
from explorer.widgets.export import CopyLink, ExportBar, maps_export
from explorer.widgets.faithfulness import FaithfulnessSection
from explorer.widgets.heatmap_view import HeatmapView
from explorer.widgets.plot import PlotView
from explorer.widgets.pretrained_seq2seq import Seq2SeqParts
from explorer.widgets.work import WorkLine

VIEWS = (("head", "head"), ("layer", "layer"), ("mean", "mean"), ("rollout", "rollout"), ("A vs B", "compare"))
MODES = (("B is a sentence pair with A", "pair"), ("compare A and B", "compare"))
BERTVIZ_KINDS = (("head view", "head"), ("model view", "model"))
WIDE = dict(width="100%", max_width="25em")  # sizes in em grow with the font (present mode)
w = widgets


ROWS = (  # the model's box is a ModelBox: it keeps a name that cannot load
    preset_row(choose="(choose)", **WIDE),
    Row("text_a", control(w.Textarea, **WIDE, rows=3, continuous_update=False, placeholder="Type a sentence"),
        tag="ae-pretrained-text-a"),
    Row("text_b", control(w.Textarea, **WIDE, rows=2, continuous_update=False, placeholder="Optional second text"),
        tag="ae-pretrained-text-b"),
    Row("mode", control(w.RadioButtons), options=lambda s: MODES),
    Row("layer", control(w.IntSlider, min=0, max=0, description="layer"), tag="ae-pretrained-layer"),
    Row("head", control(w.Dropdown, "12em", description="head"), tag="ae-pretrained-head",
        options=lambda s: head_numbers(s.encoder, s.head)),
    Row("view", control(w.ToggleButtons, style=dict(button_width="4.6em"), tooltips=[
        "one head", "every head of the layer", "mean over the layer's heads", "attention rollout up to the layer",
        "text A and text B compared"]), tag="ae-pretrained-view", options=lambda s: VIEWS),
    Row("lock", control(w.ToggleButton, description="lock", icon="lock", tooltip="keep the selected token"),
        tag="ae-pretrained-lock"),
    Row("token", control(w.Dropdown, "17em", description="token"), tag="ae-pretrained-token",
        options=lambda s: positions(s.reading.maps.tokens if s.reading else (), ("(none)", -1))),
)


class PretrainedPanel(widgets.VBox):
    """Text and controls on the left; the chosen view, head entropy and the selected token on the right."""

    def __init__(self, session: PretrainedSession | None = None):
        super().__init__()
        self.add_class("ae-pretrained")
        self.session = session = session or PretrainedSession()
        self.status = StatusLine(session)
        self.figures: dict = {}
        self._structures: dict = {}
        self.redraw_soon = Throttle(session.home, self.redraw, 0.15)
        self._build_controls()
        self._build_outputs()
        self.seq2seq = Seq2SeqParts(self)  # shown instead of the encoder-only parts for an encoder-decoder
        self.controls.children = (*self.controls.children[:6], self.seq2seq.controls, *self.controls.children[6:])
        self.outputs.children = (self.outputs.children[0], self.seq2seq.outputs, *self.outputs.children[1:])
        self.children = [columns(self.controls, self.outputs)]
        session.observe(lambda _: self._on_encoder(), "encoder")
        session.observe(lambda _: self._on_reading(), "reading")
        session.observe(lambda _: self.redraw_soon(), ["layer", "head", "view", "token", "ablated", "part", "busy",
                                                       "text_a", "text_b", "mode"])
        self._on_encoder()
        self._on_reading()

    # ----- layout -------------------------------------------------------------------------------
    def _build_controls(self) -> None:
        s = self.session
        self.form = form = Form(s, ROWS)
        for name in ("text_a", "text_b", "mode", "layer", "head", "view", "lock", "preset"):
            setattr(self, name, form[name])
        self.token_pick, self.token_binding = form["token"], form.bindings["token"]
        self.bindings = [binding for name, binding in form.bindings.items() if name != "token"]
        self.model_box = ModelBox(s, "encoder", "ae-pretrained", "all-MiniLM-L6-v2, a folder, or a cached hub name")
        self.model_name, self.load_button = self.model_box.text, self.model_box.load_button
        self.bertviz_kind = w.ToggleButtons(options=BERTVIZ_KINDS, style=dict(button_width="7.5em"))
        self.run_button = button("Show attention", s.request, "ae-pretrained-run", "primary", "play", "150px")
        self.ablate_button = button("ablate this head", self.toggle_ablation, "ae-pretrained-ablate", icon="ban",
                                    width="150px")
        self.clear_ablation = button("restore all heads", lambda: s.update(ablated=[]), "ae-pretrained-restore",
                                     width="150px")
        self.export_bar = ExportBar(s, {"figure on screen": "ae-pretrained-main", "head entropy": "ae-pretrained-entropy"},
                                    {"attention maps": maps_export(self.export_maps)}, name="pretrained")
        self.export_bar.button.add_class("ae-pretrained-export")
        self.text_sections = (section("Text A", self.text_a), section("Text B (optional)", self.text_b, self.mode))
        self.ablation_section = section("Head ablation", w.HBox([self.ablate_button, self.clear_ablation],
                                                                layout=w.Layout(flex_flow="row wrap")))
        self.controls = w.VBox([
            section("Model", self.model_box),
            section("Example", self.preset),
            *self.text_sections,
            self.run_button,
            section("Where to look", self.layer, self.head, self.view),
            section("Token (or click a row)", w.HBox([self.token_pick, self.lock])),
            self.ablation_section,
            section("Export", self.export_bar),
            section("bertviz (offline)", self.bertviz_kind,
                    button("Render bertviz", self.render_bertviz, "ae-pretrained-bertviz-render", width="140px")),
            section("Share", CopyLink(lambda: links.query(s.key, s.state()))),
            self.status, WorkLine(s),
        ], layout=w.Layout(width="27em", min_width="300px", flex="0 1 27em"))

    def _build_outputs(self) -> None:
        w = widgets
        self.main = tagged(w.Box(layout=w.Layout(width="100%")), "ae-pretrained-main")
        self.main_words, self.entropy_words, self.focus_words, self.ablation_words = (
            explanation(f"ae-pretrained-{name}-words") for name in ("main", "entropy", "focus", "ablation"))
        self.entropy_box = tagged(w.Box(layout=w.Layout(width="100%")), "ae-pretrained-entropy")
        self.focus_box = w.Box(layout=w.Layout(width="100%"))
        self.ablation_box = w.Box(layout=w.Layout(width="100%"))
        self.bertviz_box = BertvizFrame("ae-pretrained-bertviz")
        self.bertviz_frame = self.bertviz_box.frame
        column = dict(flex="1 1 420px", min_width="0", max_width="560px")
        self.entropy_column = w.VBox([self.entropy_box, self.entropy_words], layout=w.Layout(**column))
        self.focus_column = w.VBox([self.focus_box, self.focus_words], layout=w.Layout(**column))
        small = w.Box([self.entropy_column, self.focus_column],
                      layout=w.Layout(display="flex", flex_flow="row wrap", width="100%"))
        self.ablation_column = w.VBox([self.ablation_box, self.ablation_words], layout=w.Layout(width="100%"))
        self.faithfulness = FaithfulnessSection(self.session.faithful, self._starred, "pretrained",
                                                "this map (text A)")
        self.outputs = w.VBox([self.main, self.main_words, small, self.ablation_column, self.faithfulness,
                               self.bertviz_box],
                              layout=w.Layout(flex="1 1 560px", min_width="0"))

    # ----- session -> panel --------------------------------------------------------------------------------------
    def _on_encoder(self) -> None:
        encoder = self.session.encoder
        if encoder is not None:
            self.layer.max = encoder.n_layers - 1
            self.seq2seq.show_family(is_seq2seq(encoder))
            for binding in self.bindings:  # the slider's new range and the head menu show the settings again
                binding.show()

    def _on_reading(self) -> None:
        self.token_binding.show()
        self.redraw()

    # ----- actions -----------------------------------------------------------------------------------------------
    def wait(self, timeout: float = 120.0) -> None:
        """Block until the session's work is done and its last result is drawn (for notebooks and tests)."""
        self.session.wait(timeout)
        self.redraw_soon.flush()

    def load_model(self, name_or_path: str | None = None) -> None:
        """Load the model named in the box (or ``name_or_path``); if it fails, the current one stays and the box
        keeps the text."""
        if name_or_path is not None:
            self.model_name.value = name_or_path
        self.model_box.load()

    @shows_errors
    def toggle_ablation(self) -> None:
        self.session.toggle_ablation()

    @shows_errors
    def render_bertviz(self, kind: str | None = None) -> None:
        """bertviz's head or model view of the current maps, built in the session's worker (it takes a while)."""
        reading, kind = self.session.reading, kind or self.bertviz_kind.value
        if reading is None:
            raise ValueError("Nothing to show yet: the model is still reading the text.")
        maps, layer = reading.maps, self.session.layer
        if hasattr(reading, "parts"):  # an encoder-decoder: bertviz's view of its three kinds of attention
            job, shown, n_layers = self.seq2seq.bertviz_job(reading, kind, layer)
        else:
            job = lambda: bertviz_view.bertviz_page(maps, kind, layer)  # noqa: E731
            shown, n_layers = min(len(maps.tokens), bertviz_view.MAX_TOKENS), maps.n_layers
        self.session.submit(f"Building bertviz's {kind} view…", job,
                            lambda result: self._show_bertviz(kind, shown, n_layers, *result))

    def _show_bertviz(self, kind: str, shown: int, n_layers: int, page: str, notice: str) -> None:
        self.session.say(self.bertviz_box.show(kind, shown, n_layers, page, notice), "ok")

    def export_maps(self):
        reading, s = self.session.reading, self.session
        maps = None if reading is None else reading.parts[s.part] if hasattr(reading, "parts") else reading.maps
        return None if maps is None else export_scope(maps, min(s.layer, maps.n_layers - 1))[0]

    def _starred(self) -> str | None:
        """The method whose map is on screen: a layer's attention, or its rollout."""
        s, record = self.session, self.session.faithful.record
        if record is None or record.layer != s.layer or hasattr(s.reading, "parts"):
            return None
        return {"head": "attention", "layer": "attention", "mean": "attention", "rollout": "rollout"}.get(s.view)

    def _on_cell_click(self, row: int, col: int) -> None:
        """A click on a map's cell selects its row's token (what it attends to, and what attends to it)."""
        if hasattr(self.session.reading, "parts") and self.session.part == "encoder":
            return  # the rows are source tokens; a selected token is a target token
        self._guarded(self.session.select_token, row)

    def _on_entropy_click(self, row: int, col: int) -> None:
        """A click on the entropy map opens that layer's head."""
        self._guarded(self.session.update, view="head", layer=row, head=col)

    def _on_grid_click(self, trace: int, point: dict) -> None:
        """A click on one of the layer's small multiples opens that head large."""
        if self.session.view == "layer":
            self._guarded(self.session.update, view="head", head=trace)

    @shows_errors
    def _guarded(self, action, *args, **kwargs) -> None:
        action(*args, **kwargs)

    # ----- drawing (only what is on screen) ----------------------------------------------------------------------
    @shows_errors
    def redraw(self) -> None:
        """Draw the chosen view, the entropy map, the token focus and the ablation effect from the last reading."""
        s, reading = self.session, self.session.reading
        self.faithfulness.redraw()
        if reading is None:
            return
        self.ablate_button.description = ("restore this head" if [s.layer, s.head] in s.ablated else "ablate this head")
        layer, head, maps = s.layer, s.head, reading.maps
        if layer >= maps.n_layers or head >= maps.n_heads:
            return  # a new model's reading is on its way
        token = None if s.token < 0 or s.token >= len(maps.tokens) else s.token
        stale = self._stale()
        if hasattr(reading, "parts"):
            return self.seq2seq.redraw(reading, layer, head, token, stale)
        update, *build = self._main_view(s.view, layer, head, token)
        self._show(self.main, s.view, update, *build, stale=stale)
        self._show(self.entropy_box, "entropy", view.entropy_update(reading.entropy, len(maps.keys), layer, head), stale=stale)
        explain(self.entropy_words, words.entropy_map())
        matrix, where = self._shown_matrix(s.view, layer, head)
        explain(self.main_words, self._main_words(s.view, layer, where))
        self.focus_column.layout.display = "none" if token is None else None
        if token is not None:  # the bars read the map on screen, and say which it is
            focus = view.focus_update(matrix, maps.keys, maps.tokens, token, where)
            self._show(self.focus_box, "focus", focus, lambda: view.token_focus_figure(focus), stale=stale)
            explain(self.focus_words, words.focus_bars(where, unique_labels(maps.tokens)[token]))
        if reading.change is not None:
            ablated = list(maps.meta.ablated)
            self._show(self.ablation_box, "ablation", view.ablation_update(reading.change, reading.cosine, ablated),
                       lambda: view.ablation_figure(reading.change, reading.cosine, ablated), stale=stale)
            explain(self.ablation_words, words.ablation_bars(words.heads_in_words(ablated), reading.cosine))
        self.ablation_column.layout.display = None if reading.change is not None else "none"

    def _stale(self) -> str:
        """The line on maps that no longer match the text ("" when they do)."""
        s = self.session
        if not s.out_of_date():
            return ""
        return ("Out of date: the model is reading the new text…" if s.busy else
                "Out of date: these maps are of the previous text. Press Show attention.")

    def _shown_matrix(self, name: str, layer: int, head: int) -> tuple:
        """The map the main view shows (for the token bars) and the words that name it."""
        reading = self.session.reading
        maps = reading.maps
        if name == "mean":
            return maps.mean_over_heads(layer), f"layer {layer}, mean over {maps.n_heads} heads"
        if name == "rollout":
            return reading.rollout[layer], f"the rollout through layer {layer}"
        where = f"layer {layer}, head {head}" + (" of text A" if name == "compare" else "")
        return maps.head(layer, head), where

    def _main_words(self, name: str, layer: int, where: str) -> str:
        maps = self.session.reading.maps
        if name == "layer":
            return words.layer_grid(layer, maps.n_heads)
        if name == "mean":
            return words.mean_map(layer, maps.n_heads)
        if name == "rollout":
            return words.rollout_map(layer)
        if name == "compare":
            return words.compare_maps()
        return words.head_map(where)

    def _main_view(self, name: str, layer: int, head: int, token: int | None) -> tuple:
        """The update of the main view ``name``, and its figure builder (none for a canvas map)."""
        reading = self.session.reading
        maps = reading.maps
        if name == "layer":
            return view.layer_update(maps, layer), lambda: view.layer_figure(maps, layer)
        if name == "mean":
            return (view.mean_update(maps, layer, token),)
        if name == "rollout":
            return (view.rollout_update(reading.rollout[layer], maps.tokens, layer, token),)
        if name == "compare":
            if reading.maps_b is None:
                raise ValueError("Type a text B and choose 'compare A and B' to see two texts side by side.")
            records = (maps, reading.maps_b, reading.difference, layer, head)
            return view.compare_update(*records), lambda: view.compare_figure(*records)
        return (view.head_update(maps, layer, head, token),)

    def _show(self, box: widgets.Box, key: str, update, build=None, stale: str = "") -> None:
        """Draw ``update`` on the figure ``key``: a canvas map, or a plotly figure rebuilt only when its structure
        (the number of panels, labels shown) changes. ``stale`` greys it with that line."""
        if key in view.CANVAS_STYLES:
            widget = self.figures.get(key)
            if widget is None:
                widget = self.figures[key] = HeatmapView(name=f"ae-pretrained-{key}", **view.CANVAS_STYLES[key])
                widget.on_click(self._on_entropy_click if key == "entropy" else self._on_cell_click)
            widget.show(stale=stale, **update.traits())
        else:
            widget = self.figures.get(key)
            if widget is None:
                widget = self.figures[key] = PlotView(name=f"ae-pretrained-{key}")
                if key == "layer":
                    widget.on_click(self._on_grid_click)
            if self._structures.get(key) == update.structure:
                figure = widget.figure
                view.apply_update(figure, update)
            else:
                figure = build()
                self._structures[key] = update.structure
            widget.stale = stale
            widget.show(figure)
        if len(box.children) != 1 or box.children[0] is not widget:  # identity: figures compare by content
            box.children = [widget]
