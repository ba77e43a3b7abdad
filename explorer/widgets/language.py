"""The Language model tab: a small decoder-only model continues the visitor's prompt; every head of it, offline.

The state is a ``LanguageSession`` (it loads the model, generates and probes in its worker); this panel binds the
controls to its settings, shows tokens as they stream in, and draws the last generation's maps (or the induction
probe's, to see a head it found at work): a head switch only redraws. Each view has a line saying what it shows.
"""

from __future__ import annotations

from dataclasses import replace

import ipywidgets as widgets

from explorer import links
from explorer.sessions.language import LanguageSession
from explorer.threads import Throttle
from explorer.views import bertviz as bertviz_view
from explorer.views import language as view
from explorer.views import pretrained as pretrained_view
from explorer.views import words
from explorer.views.export import export_scope
from explorer.views.heatmaps import unique_labels
from explorer.widgets.bertviz_frame import BertvizFrame
from explorer.widgets.controls import (Form, ModelBox, Row, StatusLine, button, columns, control, explain, explanation,
                                       guarded, head_numbers, positions, preset_row, progress_bar, section,
                                       shows_errors, tagged)
from explorer.widgets.export import CopyLink, ExportBar, maps_export
from explorer.widgets.faithfulness import FaithfulnessSection
from explorer.widgets.heatmap_view import HeatmapView
from explorer.widgets.plot import PlotView
from explorer.widgets.sinks import SinksBox

SCORES = ("previous token", "attention sink", "self", "entropy", "induction")
NUMBER = dict(style=dict(description_width="7em"))  # sizes in em grow with the font (present mode)
WIDE = dict(width="100%", max_width="25em")
w = widgets


def shown_positions(session) -> list:
    maps = session.maps()
    return positions(maps.tokens if maps is not None else (), ("(last)", -1))


ROWS = (  # the model's box is a ModelBox: it keeps a name that cannot load
    preset_row(tag="ae-llm-preset", choose="(choose)", **WIDE),
    Row("prompt", control(w.Textarea, **WIDE, rows=4, continuous_update=False, placeholder="Type a prompt"),
        tag="ae-llm-prompt"),
    Row("max_new_tokens", control(w.IntText, "13em", description="new tokens", **NUMBER), tag="ae-llm-max-new-tokens"),
    Row("temperature", control(w.FloatText, "13em", description="temperature", step=0.1, **NUMBER),
        tag="ae-llm-temperature"),
    Row("seed", control(w.IntText, "13em", description="seed", **NUMBER), tag="ae-llm-seed"),
    Row("layer", control(w.IntSlider, min=0, max=0, description="layer"), tag="ae-llm-layer"),
    Row("head", control(w.Dropdown, "12em", description="head"), tag="ae-llm-head",
        options=lambda s: head_numbers(s.language_model, s.head)),
    Row("view", control(w.ToggleButtons, style=dict(button_width="4.6em")), tag="ae-llm-view"),
    Row("token", control(w.Dropdown, "17em", description="position"), tag="ae-llm-token", options=shown_positions),
    Row("on_probe", lambda: w.ToggleButton(description="show on its probe", icon="random",
                                           tooltip="the head on the repeated random tokens it was scored on",
                                           layout=w.Layout(width="auto", min_width="150px", align_self="flex-start")),
        tag="ae-llm-on-probe"),
)


class LanguagePanel(widgets.VBox):
    """Prompt and controls on the left; the streamed text, the head map, candidates and the head finder right."""

    def __init__(self, session: LanguageSession | None = None):
        super().__init__()
        self.add_class("ae-llm")
        self.session = session = session or LanguageSession()
        self.status = StatusLine(session)
        self.redraw_soon = Throttle(session.home, self.redraw, 0.15)
        self.head_view = HeatmapView(name="ae-llm-head", empty_text=view.EMPTY["head"], **view.CANVAS_STYLES["head"])
        self.head_view.on_click(lambda row, col: self._guarded(self._on_map_click, row))
        self.finder_view = HeatmapView(name="ae-llm-finder", empty_text=view.EMPTY["finder"],
                                       **view.CANVAS_STYLES["finder"])
        self.finder_view.on_click(lambda row, col: self._guarded(self._on_finder_click, row, col))
        self.layer_view = PlotView(name="ae-llm-layer")
        self.layer_view.on_click(lambda trace, point: self._guarded(session.update, view="head", head=trace))
        self._layer_structure = None
        self._build_controls()
        self._build_outputs()
        self.children = [columns(self.controls, self.outputs)]
        session.observe(lambda _: self._on_model(), "language_model")
        session.observe(lambda _: self._on_stream(), "streamed")
        session.observe(lambda _: self._on_generation(), ["generation", "on_probe"])
        session.observe(lambda _: setattr(self.score, "value", "induction"), "probe")  # show what was just found
        session.observe(lambda _: self.redraw_soon(), ["layer", "head", "view", "token", "zoom", "ablated", "probe",
                                                       "prompt", "busy", "scores"])
        self._on_model()
        self._on_generation()

    def _build_controls(self) -> None:
        s = self.session
        self.form = form = Form(s, ROWS, label_width="")
        for name in ("prompt", "max_new_tokens", "temperature", "seed", "layer", "head", "view", "preset", "on_probe"):
            setattr(self, name, form[name])
        self.token_pick, self.token_binding = form["token"], form.bindings["token"]
        self.bindings = [binding for name, binding in form.bindings.items() if name != "token"]
        self.model_box = ModelBox(s, "language_model", "ae-llm", "SmolLM2 (packaged), or a folder")
        self.model_name = self.model_box.text
        self.generate_button = button("Generate", guarded(s, s.generate), "ae-llm-generate", "primary", "play", "120px")
        self.stop_button = button("Stop", s.stop_work, "ae-llm-stop", "warning", "stop", "90px")
        self.score = tagged(w.Dropdown(options=SCORES, description="score", layout=w.Layout(width="17em")),
                            "ae-llm-score")
        self.score.observe(lambda _: self.redraw_soon(), "value")
        self.progress = progress_bar(s, "ae-llm-progress", **WIDE)
        find = button("Find induction heads", guarded(s, s.find_heads), "ae-llm-find", icon="search", width="180px")
        self.ablate_button = button("ablate this head", guarded(s, s.toggle_ablation), "ae-llm-ablate", icon="ban",
                                    width="150px")
        restore = button("restore all heads", lambda: s.update(ablated=[]), "ae-llm-restore", width="150px")
        self.unzoom = button("whole text", lambda: s.zoom_to(None, 0), "ae-llm-unzoom", icon="search-minus",
                             width="120px")
        bertviz = button("Render bertviz head view", self.render_bertviz, "ae-llm-bertviz-render", width="200px")
        self.export_bar = ExportBar(s, {"head map": "ae-llm-head", "head finder": "ae-llm-finder"},
                                    {"attention maps": maps_export(self.export_maps)}, name="llm")
        self.sink_box = SinksBox(s, button("Stop", s.stop_work, "ae-llm-sink-stop", "warning", "stop", "90px"))
        self.controls = w.VBox([
            section("Model", self.model_box), section("Example", self.preset), section("Prompt", self.prompt),
            section("Generation", self.max_new_tokens, self.temperature, self.seed,
                    w.HBox([self.generate_button, self.stop_button]), self.progress),
            section("Where to look", self.layer, self.head, self.view, self.token_pick, self.unzoom, self.on_probe),
            section("Head finder", self.score, find),
            section("Head ablation (induction probe)", w.HBox([self.ablate_button, restore],
                                                              layout=w.Layout(flex_flow="row wrap"))),
            section(f"bertviz (offline, first {bertviz_view.MAX_TOKENS} tokens)", bertviz),
            section("Attention sinks (Xiao et al. 2023)", *self.sink_box.controls),
            section("Export", self.export_bar),
            section("Share", CopyLink(lambda: links.query(s.key, s.state()))),
            self.status,
        ], layout=w.Layout(width="27em", min_width="300px", flex="0 1 27em"))

    def _build_outputs(self) -> None:
        w = widgets
        self.text = tagged(w.HTML(layout=w.Layout(max_height="160px", overflow="auto")), "ae-llm-text")  # long prompts scroll
        self.main = w.Box([self.head_view], layout=w.Layout(width="100%"))
        self.main_words, self.finder_words, self.candidate_words, self.probe_words = (
            explanation(f"ae-llm-{name}-words") for name in ("main", "finder", "candidates", "probe"))
        self.candidates = tagged(w.HTML(), "ae-llm-candidates")
        self.probe = tagged(w.HTML(), "ae-llm-probe")
        column = dict(flex="1 1 420px", min_width="0", max_width="560px")
        small = w.Box([w.VBox([self.finder_view, self.finder_words], layout=w.Layout(**column)),
                       w.VBox([self.candidates, self.candidate_words], layout=w.Layout(**column))],
                      layout=w.Layout(display="flex", flex_flow="row wrap", width="100%"))
        self.bertviz_box = BertvizFrame("ae-llm-bertviz")
        self.faithfulness = FaithfulnessSection(self.session.faithful, self._starred, "llm",
                                                "this map (the picked position)")
        self.outputs = w.VBox([self.text, self.main, self.main_words, small, self.probe, self.probe_words,
                               self.faithfulness, self.bertviz_box, self.sink_box.outputs],
                              layout=w.Layout(flex="1 1 560px", min_width="0"))

    # ----- session -> panel --------------------------------------------------------------------------------------
    def _on_model(self) -> None:
        model = self.session.language_model
        if model is not None:
            self.layer.max = model.n_layers - 1
            for binding in self.bindings:
                binding.show()

    def _on_stream(self) -> None:
        import html

        self.text.value = f"<b>{html.escape(self.session.prompt)}</b>{html.escape(self.session.streamed)}"

    def _on_generation(self) -> None:
        self.token_binding.show()
        self.redraw()

    # ----- actions -----------------------------------------------------------------------------------------------
    def wait(self, timeout: float = 120.0) -> None:
        """Block until the session's work is done and its last result is drawn (for notebooks and tests)."""
        self.session.wait(timeout)
        self.redraw_soon.flush()

    def _on_map_click(self, row: int) -> None:
        """A click picks a token; on a long text's pooled map it zooms into the clicked block's tokens first."""
        s, maps = self.session, self.session.maps()
        if maps is None or len(maps.tokens) <= view.MAX_CELLS:
            return s.select_token(row)
        if s.zoom < 0:
            size = -(-len(maps.tokens) // view.MAX_CELLS)  # tokens per block, as view.pool makes them
            return s.zoom_to(row * size + size // 2, view.ZOOM)
        s.select_token(s.zoom + row)

    def _on_finder_click(self, layer: int, head: int) -> None:
        """Open the clicked head: a head the induction probe found is shown on the probe's sequence, where it works
        ("show on its probe" turns back to your text)."""
        self.session.select_head(layer, head, on_probe=self.score.value == "induction" and self.session.probe is not None)

    @shows_errors
    def render_bertviz(self) -> None:
        """bertviz's head view of the maps on screen (their first tokens), built in the session's worker."""
        maps, layer = self.session.maps(), self.session.layer
        if maps is None:
            raise ValueError("Nothing to show yet: press Generate first.")
        shown = min(len(maps.tokens), bertviz_view.MAX_TOKENS)
        self.session.submit("Building bertviz's head view…", lambda: bertviz_view.bertviz_page(maps, "head", layer),
                            lambda result: self.session.say(self.bertviz_box.show("head", shown, maps.n_layers,
                                                                                  *result), "ok"))

    def export_maps(self):
        maps = self.session.maps()
        return None if maps is None else export_scope(maps, self.session.layer)[0]

    def _starred(self) -> str | None:
        """Raw attention when the map on screen is of the layer the check read."""
        record = self.session.faithful.record
        return "attention" if record is not None and record.layer == self.session.layer else None

    @shows_errors
    def _guarded(self, action, *args, **kwargs) -> None:
        action(*args, **kwargs)

    # ----- drawing -----------------------------------------------------------------------------------------------
    @shows_errors
    def redraw(self) -> None:
        """Draw the head (or layer), the candidates, the head finder and the probe from the last results."""
        s, maps = self.session, self.session.maps()
        self.ablate_button.description = "restore this head" if [s.layer, s.head] in s.ablated else "ablate this head"
        self.probe.value = view.probe_html(s.probe)
        explain(self.probe_words, words.probe() if s.probe is not None else "")
        self.on_probe.disabled = s.probe is None
        self.on_probe.description = "show on your text" if s.on_probe else "show on its probe"
        self._draw_finder()
        self.faithfulness.redraw()
        self.unzoom.layout.display = None if s.zoom >= 0 else "none"  # only a zoomed long map has a whole to go back to
        if maps is None:
            self.head_view.show(matrix=view.NOTHING, empty_text=view.EMPTY["probe" if s.on_probe else "head"])
            self.main.children = [self.head_view]
            explain(self.main_words, "")
            return
        if s.layer >= maps.n_layers or s.head >= maps.n_heads:
            return
        token = None if s.token < 0 else s.token
        stale = self._stale()
        if s.view == "layer":
            self._show_layer(maps, s.layer, stale)
            explain(self.main_words, words.layer_grid(s.layer, maps.n_heads))
        else:
            update = view.head_map(maps, s.layer, s.head, token, zoom=s.zoom)
            if s.on_probe:
                update = replace(update, title=update.title.replace(
                    f"layer {s.layer}, head {s.head}", f"layer {s.layer}, head {s.head} on the induction probe", 1))
            self.head_view.show(stale=stale, **update.traits())
            self.main.children = [self.head_view]
            explain(self.main_words, self._main_words(maps))
        shown = s.token if s.token >= 0 else len(maps.tokens) - 1
        self.candidates.value = view.candidates_html(maps.tokens, s.token, s.candidates())
        explain(self.candidate_words, words.candidates(shown, unique_labels(maps.tokens)[shown]) if s.candidates() else "")

    def _main_words(self, maps) -> str:
        s = self.session
        where = f"Layer {s.layer}, head {s.head}"
        if s.on_probe:
            return words.on_probe(where, s.probe["length"])
        if len(maps.tokens) > view.MAX_CELLS and s.zoom < 0:
            block = -(-len(maps.tokens) // view.MAX_CELLS)
            return words.pooled_map(block, self.head_view.zmax)
        return words.head_map(where, causal=True)

    def _stale(self) -> str:
        """The line on maps of an older prompt ("" when they match the settings)."""
        s = self.session
        if s.on_probe or not s.out_of_date():
            return ""
        return ("Out of date: the model is writing the new text; its maps come when it is done." if s.busy else
                "Out of date: these maps are of the previous prompt. Press Generate.")

    def _draw_finder(self) -> None:
        s = self.session
        scores = dict(s.scores or {})
        if s.probe is not None:
            scores["induction"] = s.probe["induction"]
        if not scores:
            self.finder_view.show(matrix=view.NOTHING, empty_text=view.EMPTY["finder"])
            explain(self.finder_words, "")
            return
        name = self.score.value if self.score.value in scores else next(iter(scores))
        self.finder_view.draw(view.score_grid(scores[name], name, s.layer, s.head))
        explain(self.finder_words, words.finder_grid(name))

    def _show_layer(self, maps, layer: int, stale: str) -> None:
        if len(maps.tokens) > view.MAX_CELLS // 4:
            raise ValueError(f"The layer view shows at most {view.MAX_CELLS // 4} tokens; pick the head view.")
        update = pretrained_view.layer_update(maps, layer)
        if self._layer_structure == update.structure:
            figure = self.layer_view.figure
            pretrained_view.apply_update(figure, update)
        else:
            figure, self._layer_structure = pretrained_view.layer_figure(maps, layer), update.structure
        self.layer_view.stale = stale
        self.layer_view.show(figure)
        self.main.children = [self.layer_view]
