"""The Language model tab: a small decoder-only model continues the visitor's prompt; every head of it, offline.

The state is a ``LanguageSession`` (it loads the model, generates and probes in its worker); this panel binds the
controls to its settings, shows tokens as they stream in, and draws the last generation's maps: a head switch
only redraws.
"""

from __future__ import annotations

import ipywidgets as widgets

from explorer import links
from explorer.sessions.language import PRESETS, VIEWS, LanguageSession
from explorer.threads import Throttle
from explorer.views import bertviz as bertviz_view
from explorer.views import language as view
from explorer.views import pretrained as pretrained_view
from explorer.views.export import export_scope
from explorer.widgets.bertviz_frame import BertvizFrame
from explorer.widgets.controls import StatusLine, bind, button, columns, section, shows_errors, tagged
from explorer.widgets.export import CopyLink, ExportBar, maps_export
from explorer.widgets.heatmap_view import HeatmapView
from explorer.widgets.plot import PlotView

CHOOSE = "(choose)"
SCORES = ("previous token", "attention sink", "self", "entropy", "induction")


class LanguagePanel(widgets.VBox):
    """Prompt and controls on the left; the streamed text, the head map, candidates and the head finder right."""

    def __init__(self, session: LanguageSession | None = None):
        super().__init__()
        self.add_class("ae-llm")
        self.session = session = session or LanguageSession()
        self.status = StatusLine(session)
        self.redraw_soon = Throttle(session.home, self.redraw, 0.15)
        self.head_view = HeatmapView(name="ae-llm-head", **view.CANVAS_STYLES["head"])
        self.head_view.on_click(lambda row, col: self._guarded(self._on_map_click, row))
        self.finder_view = HeatmapView(name="ae-llm-finder", **view.CANVAS_STYLES["finder"])
        self.finder_view.on_click(lambda row, col: self._guarded(session.select_head, row, col))
        self.layer_view = PlotView(name="ae-llm-layer")
        self._layer_structure = None
        self._build_controls()
        self._build_outputs()
        self.children = [columns(self.controls, self.outputs)]
        session.observe(lambda _: self._on_model(), "language_model")
        session.observe(lambda _: self._on_stream(), "streamed")
        session.observe(lambda _: self._on_generation(), "generation")
        session.observe(lambda _: setattr(self.score, "value", "induction"), "probe")  # show what was just found
        session.observe(lambda _: self.redraw_soon(), ["layer", "head", "view", "token", "zoom", "ablated", "probe"])
        self._on_model()
        self._on_generation()

    def _build_controls(self) -> None:  # long: one control per setting, made and bound in the order they appear
        s, w = self.session, widgets
        wide = w.Layout(width="100%", max_width="330px")
        self.model_name = tagged(w.Text(placeholder="SmolLM2 (packaged), or a folder", layout=wide,
                                        continuous_update=False), "ae-llm-model-name")
        self.preset = tagged(w.Dropdown(options=[CHOOSE, *PRESETS], layout=wide), "ae-llm-preset")
        self.prompt = tagged(w.Textarea(rows=4, layout=wide, continuous_update=False, placeholder="Type a prompt"),
                             "ae-llm-prompt")
        self.max_new_tokens = tagged(w.IntText(description="new tokens", layout=w.Layout(width="170px")),
                                     "ae-llm-max-new-tokens")
        self.temperature = tagged(w.FloatText(description="temperature", step=0.1, layout=w.Layout(width="170px")),
                                  "ae-llm-temperature")
        self.seed = tagged(w.IntText(description="seed", layout=w.Layout(width="170px")), "ae-llm-seed")
        self.generate_button = button("Generate", s.generate, "ae-llm-generate", "primary", "play", "120px")
        self.stop_button = button("Stop", s.stop_work, "ae-llm-stop", "warning", "stop", "90px")
        self.layer = tagged(w.IntSlider(min=0, max=0, description="layer"), "ae-llm-layer")
        self.head = tagged(w.Dropdown(options=[0], description="head", layout=w.Layout(width="160px")), "ae-llm-head")
        self.view = tagged(w.ToggleButtons(options=list(VIEWS), style=dict(button_width="58px")), "ae-llm-view")
        self.token_pick = tagged(w.Dropdown(description="position", layout=w.Layout(width="230px")), "ae-llm-token")
        self.score = tagged(w.Dropdown(options=SCORES, description="score", layout=w.Layout(width="230px")),
                            "ae-llm-score")
        self.score.observe(lambda _: self.redraw_soon(), "value")
        find = button("Find induction heads", s.find_heads, "ae-llm-find", icon="search", width="180px")
        self.ablate_button = button("ablate this head", s.toggle_ablation, "ae-llm-ablate", icon="ban", width="150px")
        restore = button("restore all heads", lambda: s.update(ablated=[]), "ae-llm-restore", width="150px")
        unzoom = button("whole text", lambda: s.zoom_to(None, 0), "ae-llm-unzoom", icon="search-minus", width="120px")
        bertviz = button("Render bertviz head view", self.render_bertviz, "ae-llm-bertviz-render", width="200px")
        self.export_bar = ExportBar(s, {"head map": "ae-llm-head", "head finder": "ae-llm-finder"},
                                    {"attention maps": maps_export(self.export_maps)}, name="llm")
        self.bindings = [
            bind(self.model_name, s, "model"), bind(self.prompt, s, "prompt"),
            bind(self.max_new_tokens, s, "max_new_tokens"), bind(self.temperature, s, "temperature"),
            bind(self.seed, s, "seed"), bind(self.layer, s, "layer"), bind(self.view, s, "view"),
            bind(self.preset, s, "preset", to_view=lambda v: v or CHOOSE, to_setting=lambda v: "" if v == CHOOSE else v),
            bind(self.head, s, "head", options=lambda: list(range(s.language_model.n_heads if s.language_model
                                                                  else max(s.head + 1, 1)))),
        ]
        self.token_binding = bind(self.token_pick, s, "token", options=self._token_options)
        self.controls = w.VBox([
            section("Model", self.model_name), section("Example", self.preset), section("Prompt", self.prompt),
            section("Generation", self.max_new_tokens, self.temperature, self.seed,
                    w.HBox([self.generate_button, self.stop_button])),
            section("Where to look", self.layer, self.head, self.view, self.token_pick, unzoom),
            section("Head finder", self.score, find),
            section("Head ablation (induction probe)", w.HBox([self.ablate_button, restore],
                                                              layout=w.Layout(flex_flow="row wrap"))),
            section(f"bertviz (offline, first {bertviz_view.MAX_TOKENS} tokens)", bertviz),
            section("Export", self.export_bar),
            section("Share", CopyLink(lambda: links.query(s.key, s.state()))),
            self.status,
        ], layout=w.Layout(width="360px", min_width="300px", flex="0 1 360px"))

    def _build_outputs(self) -> None:
        w = widgets
        self.text = tagged(w.HTML(layout=w.Layout(max_height="160px", overflow="auto")), "ae-llm-text")  # long prompts scroll
        self.main = w.Box([self.head_view], layout=w.Layout(width="100%"))
        self.candidates = tagged(w.HTML(), "ae-llm-candidates")
        self.probe = tagged(w.HTML(), "ae-llm-probe")
        small = w.Box([self.finder_view, self.candidates], layout=w.Layout(display="flex", flex_flow="row wrap"))
        self.bertviz_box = BertvizFrame("ae-llm-bertviz")
        self.outputs = w.VBox([self.text, self.main, small, self.probe, self.bertviz_box],
                              layout=w.Layout(flex="1 1 560px", min_width="0"))

    def _token_options(self) -> list:
        generation = self.session.generation
        tokens = generation.tokens if generation is not None else ()
        return [("(last)", -1)] + [(f"{i}: {t}", i) for i, t in enumerate(tokens)]

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

    @shows_errors
    def render_bertviz(self) -> None:
        """bertviz's head view of the last generation's first tokens, built in the session's worker."""
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

    @shows_errors
    def _guarded(self, action, *args) -> None:
        action(*args)

    @shows_errors
    def redraw(self) -> None:
        """Draw the head (or layer), the candidates, the head finder and the probe from the last results."""
        s, maps = self.session, self.session.maps()
        self.ablate_button.description = "restore this head" if [s.layer, s.head] in s.ablated else "ablate this head"
        self.probe.value = view.probe_html(s.probe)
        if maps is None or s.layer >= maps.n_layers or s.head >= maps.n_heads:
            return
        token = None if s.token < 0 else s.token
        if s.view == "layer":
            self._show_layer(maps, s.layer)
        else:
            self.head_view.draw(view.head_map(maps, s.layer, s.head, token, zoom=s.zoom))
            self.main.children = [self.head_view]
        self.candidates.value = view.candidates_html(s.generation.tokens, s.token, s.candidates())
        scores = dict(s.scores or {})
        if s.probe is not None:
            scores["induction"] = s.probe["induction"]
        name = self.score.value if self.score.value in scores else "previous token"
        self.finder_view.draw(view.score_grid(scores[name], name, s.layer, s.head))

    def _show_layer(self, maps, layer: int) -> None:
        if len(maps.tokens) > view.MAX_CELLS // 4:
            raise ValueError(f"The layer view shows at most {view.MAX_CELLS // 4} tokens; pick the head view.")
        update = pretrained_view.layer_update(maps, layer)
        if self._layer_structure == update.structure:
            figure = self.layer_view.figure
            pretrained_view.apply_update(figure, update)
        else:
            figure, self._layer_structure = pretrained_view.layer_figure(maps, layer), update.structure
        self.layer_view.show(figure)
        self.main.children = [self.layer_view]
