"""The Pretrained tab: every layer and head of a real encoder on the visitor's own text, offline.

The model loads in a background thread (the tab paints at once); each new text is one forward pass in a
background thread; layer, head, view and token changes redraw only the figure on screen, in place.
"""

from __future__ import annotations

import threading
import time

import ipywidgets as widgets

from explorer.models.pretrained import Reading, read
from explorer.views import export
from explorer.views import pretrained as view
from explorer.widgets.bertviz_view import BertvizView
from explorer.widgets.figure import Figure
from explorer.widgets.heatmap_view import HeatmapView
from explorer.widgets.common import BackgroundTask, StatusLine, Throttle, section, shows_errors, unknown_name

PRESETS = {
    "coreference": dict(text="The animal didn't cross the street because it was too tired.", layer=3, head=1,
                        token="it", view="head"),
    "subject-verb agreement": dict(text="The keys to the old cabinet are on the table.", layer=3, head=1,
                                   token="are", view="head"),
    "sentence pair": dict(text="The cat sat on the mat.", text_b="A cat was sitting on a rug.", mode="pair",
                          layer=2, head=0, view="layer"),
    "compare two texts": dict(text="The trophy didn't fit in the suitcase because it was too big.",
                              text_b="The trophy didn't fit in the suitcase because it was too small.",
                              mode="compare", layer=3, head=1, token="it", view="compare"),
}
VIEWS = (("head", "head"), ("layer", "layer"), ("mean", "mean"), ("rollout", "rollout"), ("A vs B", "compare"))
MODES = (("B is a sentence pair with A", "pair"), ("compare A and B", "compare"))
EXPORTS = ("png", "svg", "json", "npz")


class PretrainedPanel(widgets.VBox):
    """Text and controls on the left; the chosen view, head entropy and the selected token on the right."""

    def __init__(self, model: str | None = None, encoder=None, preset: str | None = None):
        super().__init__()
        self.add_class("ae-pretrained")
        self.status = StatusLine()
        self.status.busy("Loading the model…")
        self.task = BackgroundTask(self.status)
        self.encoder, self.reading = encoder, None
        self.token: int | None = None
        self.ablated: set[tuple[int, int]] = set()
        self.figures: dict[str, Figure] = {}
        self._structures: dict[str, tuple] = {}
        self._pending = False
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()
        self._draw_lock = threading.Lock()  # the reader thread and the throttled redraws take turns
        self._syncing = False
        self._wanted_token: str | None = None
        self._nonce = 0
        self.redraw_soon = Throttle(self.redraw, 0.15)
        self._build_controls()
        self._build_outputs()
        self.children = [widgets.HBox([self.controls, self.outputs])]
        if preset:
            self._fill_preset(preset)
        if encoder is not None:
            self._on_loaded(encoder, background=False)  # a ready encoder: draw before returning
        else:
            self.task.start(_load, model, on_done=self._on_loaded)

    # ----- layout -------------------------------------------------------------------------------
    def _build_controls(self) -> None:
        wide = widgets.Layout(width="330px")
        self.model_name = widgets.Text(placeholder="all-MiniLM-L6-v2, a folder, or a cached hub name", layout=wide)
        self.load_button = widgets.Button(description="Load model", icon="download")
        self.preset = widgets.Dropdown(options=["(choose)", *PRESETS], value="(choose)", layout=wide)
        self.text_a = widgets.Textarea(value=PRESETS["coreference"]["text"], rows=3, layout=wide,
                                       continuous_update=False, placeholder="Type a sentence")
        self.text_b = widgets.Textarea(value="", rows=2, layout=wide, continuous_update=False,
                                       placeholder="Optional second text")
        self.mode = widgets.RadioButtons(options=MODES, value="pair")
        self.run_button = widgets.Button(description="Show attention", button_style="primary", icon="play")
        self.layer = widgets.IntSlider(min=0, max=0, description="layer", continuous_update=True)
        self.head = widgets.Dropdown(options=[0], value=0, description="head", layout=widgets.Layout(width="160px"))
        self.view = widgets.ToggleButtons(options=VIEWS, value="head", style=dict(button_width="58px"),
                                          tooltips=["one head", "every head of the layer", "mean over the layer's heads",
                                                    "attention rollout up to the layer", "text A and text B compared"])
        self.token_pick = widgets.Dropdown(options=[("(none)", -1)], value=-1, description="token",
                                           layout=widgets.Layout(width="230px"))
        self.lock = widgets.ToggleButton(description="lock", icon="lock", tooltip="keep the selected token")
        self.ablate_button = widgets.ToggleButton(description="ablate this head", icon="ban")
        self.clear_ablation = widgets.Button(description="restore all heads")
        self.export_format = widgets.Dropdown(options=EXPORTS, value="png", layout=widgets.Layout(width="90px"))
        self.export_button = widgets.Button(description="Export", icon="save")
        self.bertviz = BertvizView(self.status, self._bertviz_source)
        for control, name in ((self.text_a, "text-a"), (self.text_b, "text-b"), (self.run_button, "run"),
                              (self.layer, "layer"), (self.head, "head"), (self.view, "view"),
                              (self.token_pick, "token"), (self.lock, "lock"), (self.ablate_button, "ablate"),
                              (self.export_button, "export"), (self.export_format, "export-format"),
                              (self.model_name, "model-name"), (self.load_button, "load")):
            control.add_class(f"ae-pretrained-{name}")
        self.controls = widgets.VBox([
            section("Model", self.model_name, self.load_button),
            section("Example", self.preset),
            section("Text A", self.text_a),
            section("Text B (optional)", self.text_b, self.mode),
            self.run_button,
            section("Where to look", self.layer, self.head, self.view),
            section("Token (or click a row)", widgets.HBox([self.token_pick, self.lock])),
            section("Head ablation", widgets.HBox([self.ablate_button, self.clear_ablation])),
            section("Export", widgets.HBox([self.export_format, self.export_button])),
            self.bertviz.controls,
            self.status,
        ], layout=widgets.Layout(width="360px", min_width="360px"))
        self._wire_controls()

    def _wire_controls(self) -> None:
        self.load_button.on_click(lambda _: self.load_model(self.model_name.value))
        self.preset.observe(lambda change: not self._syncing and change["new"] in PRESETS
                            and self.apply_preset(change["new"]), "value")
        for control in (self.text_a, self.text_b, self.mode):
            control.observe(lambda _: self._syncing or self.request(), "value")
        self.run_button.on_click(lambda _: self.request())
        for control in (self.layer, self.head, self.view):
            control.observe(self._on_where, "value")
        self.token_pick.observe(lambda change: self._syncing or self.select_token(change["new"], force=True), "value")
        self.ablate_button.observe(self._on_ablate, "value")
        self.clear_ablation.on_click(lambda _: self.set_ablation(()))
        self.export_button.on_click(lambda _: self.export(self.export_format.value))

    def _build_outputs(self) -> None:
        self.main = widgets.Box(layout=widgets.Layout(width="100%"))
        self.main.add_class("ae-pretrained-main")
        self.entropy_box = widgets.Box()
        self.focus_box = widgets.Box()
        self.ablation_box = widgets.Box()
        self.downloads = widgets.HTML()
        self.downloads.add_class("ae-pretrained-downloads")
        small = widgets.HBox([self.entropy_box, self.focus_box], layout=widgets.Layout(flex_flow="row wrap"))
        self.outputs = widgets.VBox([self.main, small, self.ablation_box, self.downloads, self.bertviz.output],
                                    layout=widgets.Layout(flex="1 1 auto", min_width="640px"))

    # ----- model and text -> reading (background) -------------------------------------------------
    def load_model(self, name_or_path: str | None) -> None:
        """Load another encoder in the background; if it fails, the current one stays."""
        self.status.busy(f"Loading {name_or_path or 'the default model'}…")
        self.task.start(_load, name_or_path or None, on_done=self._on_loaded)

    def _on_loaded(self, encoder, background: bool = True) -> None:
        self.encoder = encoder
        self.ablated.clear()
        self._syncing = True
        self.ablate_button.value = False
        self.layer.max = encoder.n_layers - 1
        head = self.head.value  # new options reset the menu to its first entry: keep a preset's head
        self.head.options = list(range(encoder.n_heads))
        self.head.value = head if head < encoder.n_heads else 0
        self._syncing = False
        self.status.ok(f"Loaded {encoder.name}: {encoder.n_layers} layers x {encoder.n_heads} heads.")
        self.request(background)  # through the reader thread, so text typed meanwhile is read after it

    def request(self, background: bool = True) -> None:
        """Read the current texts: one forward pass in a background thread (or in this one if not ``background``).

        Requests made while a reading runs are collapsed: the reader then reads the newest texts once more.
        """
        if self.encoder is None:
            self.status.busy("The model is still loading; your text will be shown when it is ready.")
            return
        if not background:
            self._guarded(lambda: self._on_read(read(*self._request_args())))
            return
        with self._lock:
            self._pending = True
            if self._reader is not None and self._reader.is_alive():
                return
            self.status.busy("Reading the text…")
            self._reader = threading.Thread(target=self._read_pending, daemon=True)
            self._reader.start()

    def _request_args(self) -> tuple:
        return self.encoder, self.text_a.value, self.text_b.value, self.mode.value, tuple(sorted(self.ablated))

    def _read_pending(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    return
                self._pending = False
            self._guarded(lambda: self._on_read(read(*self._request_args())))

    def update_now(self) -> None:
        """Read and draw in this thread (for notebooks, tests and the benchmark)."""
        self.request(background=False)

    def wait(self, timeout: float = 60.0) -> None:
        """Block until the model is loaded and every requested reading is drawn (for notebooks and tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reader = self._reader
            if self.task.running or self.bertviz.task.running:
                self.task.join(0.05)
                self.bertviz.join(0.05)
            elif reader is not None and reader.is_alive():
                reader.join(0.05)
            else:
                return

    @shows_errors
    def _guarded(self, work) -> None:
        work()

    @shows_errors
    def _on_read(self, reading: Reading) -> None:
        previous = self.reading.maps.tokens if self.reading else ()
        self.reading = reading
        tokens = reading.maps.tokens
        self._carry_token(previous, tokens)
        self._syncing = True
        self.token_pick.options = [("(none)", -1)] + [(f"{i}: {t}", i) for i, t in enumerate(tokens)]
        self.token_pick.value = -1 if self.token is None else self.token
        self._syncing = False
        notice = reading.maps.meta.get("notice", "")
        self.status.ok(f"{len(tokens)} tokens, {reading.maps.n_layers} layers x {reading.maps.n_heads} heads. {notice}")
        self.redraw()

    def _carry_token(self, previous, tokens) -> None:
        """Keep the selected token over a new reading if the text is the same, or by its label when locked."""
        if tokens == previous and self._wanted_token is None:
            return
        label = self._wanted_token
        if label is None and self.lock.value and self.token is not None and self.token < len(previous):
            label = previous[self.token]
        self._wanted_token = None
        self.token = tokens.index(label) if label in tokens else None

    # ----- presets and selection -------------------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        """Load one of the named examples (``PRESETS``); a ValueError lists them if the name is unknown."""
        if name not in PRESETS:
            raise unknown_name("preset", name, PRESETS)
        self._fill_preset(name)
        self.request()

    def _fill_preset(self, name: str) -> None:
        preset = PRESETS[name]
        self._syncing = True
        self.preset.value = name  # a link's preset is named in the menu, as one picked there
        self.text_a.value, self.text_b.value = preset["text"], preset.get("text_b", "")
        self.mode.value = preset.get("mode", "pair")
        self.layer.max = max(self.layer.max, preset["layer"])
        self.layer.value, self.view.value = preset["layer"], preset["view"]
        self.head.options = sorted(set(self.head.options) | {preset["head"]})
        self.head.value = preset["head"]
        self.lock.value = False
        self._syncing = False
        self.token = None
        self._wanted_token = preset.get("token")

    @shows_errors
    def select_head(self, layer: int, head: int) -> None:
        """Show ``layer``/``head`` (a ValueError in the status line if they do not exist)."""
        if self.reading is None:
            raise ValueError("Nothing to show yet: the model is still reading the text.")
        layer, head = self.reading.maps.check_layer(layer), self.reading.maps.check_head(head)
        self._syncing = True
        self.layer.value, self.head.value = layer, head
        self._syncing = False
        self.redraw()

    def select_token(self, index: int | None, force: bool = False) -> None:
        """Highlight what token ``index`` attends to and what attends to it (``None`` or -1 clears)."""
        if self.lock.value and not force:
            self.status.show("The selected token is locked; unlock it to pick another.")
            return
        index = None if index is None or index < 0 else int(index)
        if index is not None and self.reading is not None and index >= len(self.reading.maps.tokens):
            self.status.error(f"Token {index} does not exist: the text has {len(self.reading.maps.tokens)} tokens.")
            return
        self.token = None if (index == self.token and not force) else index
        self._syncing = True
        self.token_pick.value = -1 if self.token is None else self.token
        self._syncing = False
        self.redraw_soon()

    def _on_where(self, change) -> None:
        if not self._syncing:
            self._syncing = True
            self.ablate_button.value = (self.layer.value, self.head.value) in self.ablated
            self._syncing = False
            self.redraw_soon()

    def _on_cell_click(self, row: int, col: int) -> None:
        """A click on a map's cell selects its row's token (what it attends to, and what attends to it)."""
        self.select_token(row)

    def _on_entropy_click(self, row: int, col: int) -> None:
        """A click on the entropy map opens that layer's head."""
        self.view.value = "head"
        self.select_head(row, col)

    # ----- ablation ----------------------------------------------------------------------------------
    def _on_ablate(self, change) -> None:
        if self._syncing:
            return
        pair = (self.layer.value, self.head.value)
        self.set_ablation(self.ablated | {pair} if change["new"] else self.ablated - {pair})

    def set_ablation(self, pairs) -> None:
        """Zero these ``(layer, head)`` outputs in the forward pass and show the effect."""
        self.ablated = set(self.encoder.check_ablation(pairs)) if self.encoder else set()
        self._syncing = True
        self.ablate_button.value = (self.layer.value, self.head.value) in self.ablated
        self._syncing = False
        self.request()

    # ----- drawing (only what is on screen) ------------------------------------------------------------
    @shows_errors
    def redraw(self) -> None:
        """Draw the chosen view, the entropy map, the token focus and the ablation effect from the last reading."""
        with self._draw_lock:
            self._draw(self.reading)

    def _draw(self, reading) -> None:
        if reading is None:
            return
        layer, head, maps = self.layer.value, self.head.value, reading.maps
        self._show(self.main, self.view.value, *self._main_view(self.view.value, layer, head))
        self._show(self.entropy_box, "entropy", view.entropy_update(reading.entropy, len(maps.keys), layer, head))
        if self.token is None:  # nothing to show until a token is picked, and nothing to redraw for it
            self.focus_box.layout.display = "none"
        else:
            self.focus_box.layout.display = None
            self._show(self.focus_box, "focus", view.focus_update(maps, layer, head, self.token),
                       lambda: view.token_focus_figure(maps, layer, head, self.token))
        if reading.change is not None:
            ablated = [tuple(pair) for pair in maps.meta["ablated"]]
            self._show(self.ablation_box, "ablation", view.ablation_update(reading.change, reading.cosine, ablated),
                       lambda: view.ablation_figure(reading.change, reading.cosine, ablated))
        self.ablation_box.layout.display = None if reading.change is not None else "none"

    def _main_view(self, name: str, layer: int, head: int) -> tuple:
        """The update of the main view ``name``, and its figure builder (none for a canvas map)."""
        reading, token = self.reading, self.token
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

    def _show(self, box: widgets.Box, key: str, update: dict, build=None) -> None:
        """Copy ``update`` into the figure on screen, or build the figure (``build()``) if its structure changed;
        the maps of ``view.CANVAS_STYLES`` are canvas maps, made once."""
        if key in view.CANVAS_STYLES:
            self._show_canvas(box, key, update)
            return
        widget = old = self.figures.get(key)
        if widget is not None and self._structures.get(key) == update["structure"]:
            view.apply_update(widget, update)
            old = None
        else:
            fig = build()
            fig.update_layout(meta=f"ae-pretrained-{key}")
            widget = Figure(fig)
            self.figures[key], self._structures[key] = widget, update["structure"]
        self._place(box, widget)
        if old is not None:
            old.close()  # a figure of the old shape: free it in the kernel and the page

    def _show_canvas(self, box: widgets.Box, key: str, update: dict) -> None:
        """Show ``update`` (a view's matrix, labels, title, outlines) on the canvas map ``key``."""
        widget = self.figures.get(key)
        if widget is None:
            widget = self.figures[key] = HeatmapView(name=f"ae-pretrained-{key}", **view.CANVAS_STYLES[key])
            widget.on_click(self._on_entropy_click if key == "entropy" else self._on_cell_click)
        widget.show(**update)
        self._place(box, widget)

    @staticmethod
    def _place(box: widgets.Box, widget) -> None:
        if len(box.children) != 1 or box.children[0] is not widget:  # identity: figures compare by content
            box.children = [widget]

    # ----- export and bertviz ----------------------------------------------------------------------------
    @shows_errors
    def export(self, fmt: str) -> None:
        """PNG/SVG of the figure on screen (made in the browser), or the maps as JSON/``.npz`` (a download link)."""
        if self.reading is None:
            raise ValueError("Nothing to export yet: the model is still reading the text.")
        self._nonce += 1
        name = f"attention-layer{self.layer.value}-{self.view.value}"
        if fmt in export.IMAGE_FORMATS:
            self.downloads.value = export.image_script("ae-pretrained-main", fmt, name, self._nonce)
            self.status.ok(f"Saving the figure on screen as {name}.{fmt} (your browser downloads it).")
            return
        maps, scope = export.export_scope(self.reading.maps, self.layer.value)
        data = export.maps_bytes(maps, fmt)
        self.downloads.value = export.download_link(data, f"attention-maps.{fmt}", fmt, self._nonce)
        self.status.ok(f"Maps of {scope} saved as attention-maps.{fmt}.")

    def _bertviz_source(self) -> tuple:
        if self.reading is None:
            raise ValueError("Nothing to show yet: the model is still reading the text.")
        return self.reading.maps, self.layer.value


def _load(name_or_path):
    from explorer.models.pretrained import load

    return load(name_or_path)
