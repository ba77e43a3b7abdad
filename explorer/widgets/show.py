"""``explorer.show(obj, inputs)``: the user's own model (or weights) in a panel inline in any notebook.

The state is a ``ShowSession`` (it runs the user's model in its worker); this panel binds the controls to its
settings and draws its ``reading`` with the Pretrained tab's views (head, layer grid, mean, rollout, entropy, the
picked token, head ablation, export), the Language model tab's pooled head map for long texts, and the model view
of ``explorer.views.show``. Only what is on screen is drawn, a few times a second at most.
"""

from __future__ import annotations

import html
import itertools
from dataclasses import replace

import ipywidgets as widgets

from explorer.sessions.show import SETTINGS, ShowSession
from explorer.threads import Throttle
from explorer.views import images
from explorer.views import language as long_view
from explorer.views import pretrained as view
from explorer.views import show as show_view
from explorer.views.export import export_scope
from explorer.views.heatmaps import FigureUpdate
from explorer.widgets.controls import (StatusLine, bind, button, columns, grows, progress_bar, section, shows_errors,
                                       tagged)
from explorer.widgets.export import ExportBar, maps_export
from explorer.widgets.heatmap_view import HeatmapView
from explorer.widgets.plot import PlotView
from explorer.widgets.present import PresentSwitch, presentable

PANELS = itertools.count()  # each panel's figures get names of their own: a notebook shows many panels
VIEW_LABELS = {"head": "head", "layer": "layer", "mean": "mean", "rollout": "rollout", "model": "all", "image": "image"}
VIEW_TIPS = {"head": "one head", "layer": "every head of the layer", "mean": "mean over the layer's heads",
             "rollout": "attention rollout up to the layer", "model": "every layer and head (bertviz's model view)",
             "image": "where the CLS token looks, over the image"}


def show(obj, inputs=None, **options) -> "ShowPanel":
    """The panel of ``obj``'s attention on ``inputs``, to display in a notebook.

    ``obj`` is a transformers model (give ``tokenizer=`` or ``processor=``; ``target=`` is an encoder-decoder's
    decoder text), any ``nn.Module`` (``tokens=`` labels its positions), a TransformerLens model or
    ``ActivationCache``, the tuple ``output_attentions`` returns (with ``tokens=``), or an ``AttentionMaps``.
    ``layer``, ``head``, ``view``, ``part``, ``token`` and ``item`` choose what is shown first; ``present=True``
    opens it in present mode (large text and maps, for a projector; the panel's "Present" switch turns it off).
    Bad input raises a ValueError (or TypeError) in words; the user's model is left as it was.
    """
    from explorer.models.readers import reader_for

    settings = {name: options.pop(name) for name in SETTINGS if name in options}
    settings = {name: value for name, value in settings.items() if value is not None}  # None: what is shown first by default
    present = options.pop("present", False)
    if not isinstance(present, bool):
        raise TypeError(f"present is True (large text and maps, for a projector) or False, got {present!r}.")
    panel = ShowPanel(ShowSession(reader_for(obj, **options), inputs, **settings))
    panel.present.on = present
    return panel


class ShowPanel(widgets.VBox):
    """Controls on the left (text, part, layer, head, view, token, ablation, export); the views on the right."""

    def __init__(self, session: ShowSession):
        w = widgets
        super().__init__()
        self.add_class("ae-show")
        self.session = session
        self.key = f"ae-show-{next(PANELS)}"
        self.status = StatusLine(session)
        self.figures: dict = {}
        self._structures: dict = {}
        self.redraw_soon = Throttle(session.home, self.redraw, 0.15)
        self._build_controls()
        self._build_outputs()
        self.present = PresentSwitch()
        presentable(self, self.present)
        self.children = [w.HBox([self.present], layout=w.Layout(justify_content="flex-end")),
                         columns(self.controls, self.outputs)]
        session.observe(lambda _: self._on_reading(), "reading")
        session.observe(lambda change: setattr(self.text, "value", change["new"]), "text")
        session.observe(lambda _: self._on_part(), "part")
        session.observe(lambda _: self.redraw_soon(), ["layer", "head", "view", "token", "zoom", "ablated"])
        self._on_reading()

    # ----- layout -------------------------------------------------------------------------------------------------
    def _build_controls(self) -> None:  # long: one control per setting, made and bound in the order they appear
        s, w, reader = self.session, widgets, self.session.reader
        wide = w.Layout(width="calc(100% - 4px)")  # less the widgets' 2 px margins, which 100% would push past the column
        self.text = tagged(w.Textarea(value=s.text, rows=3, layout=wide, placeholder="Type a text"), f"{self.key}-text")
        read = button("Show attention", lambda: self._guarded(s.show_text, self.text.value), f"{self.key}-read",
                      "primary", "play", "150px")
        self.new_tokens = tagged(w.IntText(description="new tokens", layout=w.Layout(width=grows("170px"))),
                                 f"{self.key}-new-tokens")
        generate = button("Generate", lambda: self._guarded(s.generate), f"{self.key}-generate", icon="pencil",
                          width="110px")
        stop = button("Stop", s.stop_work, f"{self.key}-stop", "warning", "stop", "80px")
        self.part = tagged(w.ToggleButtons(style=dict(button_width="auto")), f"{self.key}-part")
        self.item = tagged(w.BoundedIntText(description="batch item", min=0, max=max(s.reading.batch - 1, 0),
                                            layout=w.Layout(width=grows("170px"))), f"{self.key}-item")
        short = dict(description_width=grows("44px"))
        self.layer = tagged(w.Dropdown(description="layer", style=short, layout=wide), f"{self.key}-layer")
        self.head = tagged(w.Dropdown(description="head", style=short, layout=wide), f"{self.key}-head")
        self.view = tagged(w.ToggleButtons(style=dict(button_width="auto")), f"{self.key}-view")
        self.token_pick = tagged(w.Dropdown(description="token", style=short, layout=wide), f"{self.key}-token")
        self.unzoom = button("whole text", lambda: self._guarded(s.zoom_to, None, 0), f"{self.key}-unzoom",
                             icon="search-minus", width="120px")
        self.ablate_button = button("ablate this head", lambda: self._guarded(s.toggle_ablation), f"{self.key}-ablate",
                                    icon="ban", width="160px")
        restore = button("restore all", lambda: self._guarded(s.update, ablated=[]), f"{self.key}-restore",
                         width="100px")
        self.export_bar = ExportBar(s, {"figure on screen": f"{self.key}-main", "head entropy": f"{self.key}-entropy"},
                                    {"attention maps": maps_export(self.export_maps)}, name=self.key)
        self.bindings = [
            bind(self.new_tokens, s, "new_tokens"), bind(self.item, s, "item"),
            bind(self.part, s, "part", options=lambda: list(s.reading.parts)),
            bind(self.layer, s, "layer", options=self._layer_options),
            bind(self.head, s, "head", options=lambda: [(s.head_name(h), h) for h in range(s.maps().n_heads)]),
            bind(self.view, s, "view", options=lambda: [(VIEW_LABELS[v], v) for v in s.views()]),
            bind(self.token_pick, s, "token", options=self._token_options),
        ]
        hidden = lambda box, shown: box if shown else w.VBox()  # noqa: E731 - a section only where the model allows
        self.part_section = section("Attention", self.part)
        self.item_section = section("Batch", self.item)
        width = grows("290px")  # beside the figures in a 900 px notebook column; grows with present mode's font
        self.progress = progress_bar(s, f"{self.key}-progress", width=grows("180px"))
        self.controls = w.VBox([
            hidden(section("Text", self.text, read, w.HBox([stop, self.progress])), reader.accepts_text),
            hidden(section("Continue the text", self.new_tokens, generate), reader.can_generate),
            self.part_section, self.item_section,
            section("Where to look", self.layer, self.head, self.view, self.token_pick, self.unzoom),
            hidden(section("Head ablation", w.HBox([self.ablate_button, restore], layout=w.Layout(flex_flow="row wrap"))),
                   reader.can_ablate),
            section("Export", self.export_bar),
            self.status,
        ], layout=w.Layout(width=width, flex=f"0 0 {width}"))

    def _build_outputs(self) -> None:
        w = widgets
        self.notice = tagged(w.HTML(), f"{self.key}-notice")
        self.main = tagged(w.Box(layout=w.Layout(width="100%")), f"{self.key}-main")
        # each small figure in a column of its own that shares the row (a box with no width shrank to nothing)
        column = dict(flex="1 1 320px", min_width="0", max_width="560px")
        self.entropy_box = tagged(w.Box(layout=w.Layout(**column)), f"{self.key}-entropy")
        self.focus_box = w.Box(layout=w.Layout(**column))
        self.ablation_box = w.Box(layout=w.Layout(width="100%"))
        small = w.Box([self.entropy_box, self.focus_box],
                      layout=w.Layout(display="flex", flex_flow="row wrap", width="100%"))
        self.outputs = w.VBox([self.notice, self.main, small, self.ablation_box],
                              layout=w.Layout(flex="1 1 520px", min_width="0"))

    def _layer_options(self) -> list:
        s = self.session
        names = s.reading.layer_names[s.part]
        return [(name if name.isdigit() else f"{i}: {name}", i) for i, name in enumerate(names)]  # the model's numbers

    def _token_options(self) -> list:
        tokens = self.session.maps().tokens
        return [("(none)", -1)] + [(f"{i}: {t}", i) for i, t in enumerate(tokens)]

    # ----- session -> panel --------------------------------------------------------------------------------------
    def _on_reading(self) -> None:
        reading = self.session.reading
        self.item.max = max(reading.batch - 1, 0)
        self.part_section.layout.display = None if len(reading.parts) > 1 else "none"
        self.item_section.layout.display = None if reading.batch > 1 else "none"
        self.notice.value = f"<small>{html.escape(reading.notice)}</small>" if reading.notice else ""
        self._on_part()

    def _on_part(self) -> None:
        for binding in self.bindings:  # the part's layers, heads, tokens and views as options
            binding.show()
        self.view.tooltips = [VIEW_TIPS[name] for name in self.session.views()]
        self.redraw()

    # ----- actions -----------------------------------------------------------------------------------------------
    def wait(self, timeout: float = 120.0) -> None:
        """Block until the session's work is done and its last result is drawn (for notebooks and tests)."""
        self.session.wait(timeout)
        self.redraw_soon.flush()

    def export_maps(self):
        s = self.session
        maps = s.maps()
        if not s.reading.is_whole(s.part):
            return maps.layer_maps(s.layer)
        return export_scope(maps, s.layer)[0]

    @shows_errors
    def _guarded(self, action, *args, **kwargs) -> None:
        action(*args, **kwargs)

    def _on_cell_click(self, row: int, col: int) -> None:
        """A click picks the row's token; on a long text's pooled map it first zooms into the clicked block."""
        s, maps = self.session, self.session.maps()
        if s.view != "head" or len(maps.tokens) <= long_view.MAX_CELLS or maps.key_tokens is not None:
            return self._guarded(s.select_token, row)
        if s.zoom < 0:
            size = -(-len(maps.tokens) // long_view.MAX_CELLS)  # tokens per block, as the pooled view makes them
            return self._guarded(s.zoom_to, row * size + size // 2, long_view.ZOOM)
        self._guarded(s.select_token, s.zoom + row)

    def _on_entropy_click(self, row: int, col: int) -> None:
        self._guarded(self.session.update, view="head", layer=row, head=col)

    def _on_model_click(self, trace: int, point: dict) -> None:
        n_heads = self.session.maps().n_heads
        self._guarded(self.session.update, view="head", layer=trace // n_heads, head=trace % n_heads)

    # ----- drawing (only what is on screen) ----------------------------------------------------------------------
    @shows_errors
    def redraw(self) -> None:
        """Draw the chosen view, the entropy map, the picked token and the ablation effect from the last reading."""
        s, reading = self.session, self.session.reading
        maps, layer, head = s.maps(), s.layer, s.head
        if layer >= maps.n_layers or head >= maps.n_heads:
            return  # a new reading is on its way
        whole, token = reading.is_whole(s.part), None if s.token < 0 else s.token
        self.ablate_button.description = "restore this head" if (layer, head) in s.ablated_here() else "ablate this head"
        self.unzoom.layout.display = None if s.zoom >= 0 else "none"
        self._show(self.main, s.view, *self._main_view(s.view, layer, head, token))
        self.entropy_box.layout.display = None if whole else "none"
        if whole:
            entropy = view.entropy_update(reading.entropy(s.part), len(maps.keys), layer, head)
            numbers = reading.layer_names[s.part]  # a record cut to some layers keeps the model's numbers
            if all(name.isdigit() for name in numbers):
                entropy = replace(entropy, y=[f"L{name}" for name in numbers])
            self._show(self.entropy_box, "entropy", entropy)
        self.focus_box.layout.display = "none" if token is None or not whole else None
        if token is not None and whole:
            matrix, where = self._shown_matrix(layer, head)
            focus = show_view.named(view.focus_update(matrix, maps.keys, maps.tokens, token, where), layer,
                                    s.layer_name(), head, s.head_name())
            self._show(self.focus_box, "focus", focus, lambda: view.token_focus_figure(focus))
        change = reading.change.get(s.part)
        self.ablation_box.layout.display = None if change is not None else "none"
        if change is not None:
            ablated = s.ablated_here()
            update = view.ablation_update(change, reading.cosine, ablated)  # the cosine compares the model's outputs
            update = show_view.titled(update, update.title.replace("embedding cosine", "output cosine"))
            self._show(self.ablation_box, "ablation", update, lambda: view.ablation_figure(change, reading.cosine, ablated))

    def _main_view(self, name: str, layer: int, head: int, token: int | None) -> tuple:
        """The update of the main view ``name`` (titles with the model's own layer and head labels), and its
        figure builder (none for a canvas map)."""
        s, reading = self.session, self.session.reading
        maps = s.maps()
        label = lambda update: show_view.named(update, layer, s.layer_name(), head, s.head_name())  # noqa: E731
        if name == "layer":
            return label(view.layer_update(maps, layer)), lambda: view.layer_figure(maps, layer)
        if name == "model":
            names = (reading.layer_names[s.part], [s.head_name(h) for h in range(maps.n_heads)])
            return show_view.model_update(maps, *names), lambda: show_view.model_figure(maps, *names)
        if name == "image":  # the Vision tab's gallery of CLS maps over the image, titled short for a notebook column
            record = reading.image_attention(s.part)
            columns = {f"head {s.head_name()}": record.heads[layer][:, head], "mean of heads": record.spatial[layer],
                       "rollout": record.rollout[layer]}
            build = lambda: images.gallery_figure(record.images, columns, [f"CLS token, {s.layer_name()}"], 180)  # noqa: E731
            return FigureUpdate(("image", layer, head), ()), build
        if name == "mean":
            return (label(view.mean_update(maps, layer, token)),)
        if name == "rollout":
            return (label(view.rollout_update(reading.rollout(s.part)[layer], maps.tokens, layer, token)),)
        if maps.key_tokens is not None:  # cross-attention: queries and keys differ, drawn whole
            return (label(view.head_update(maps, layer, head, token)),)
        return (label(long_view.head_map(maps, layer, head, token, zoom=s.zoom)),)

    def _shown_matrix(self, layer: int, head: int) -> tuple:
        """The map the main view shows, for the token bars to follow, and the words that name it."""
        s = self.session
        maps = s.maps()
        if s.view == "mean":
            return maps.mean_over_heads(layer), f"layer {layer}, mean over {maps.n_heads} heads"
        if s.view == "rollout":
            return s.reading.rollout(s.part)[layer], f"the rollout through layer {layer}"
        return maps.head(layer, head), f"layer {layer}, head {head}"

    def _show(self, box: widgets.Box, key: str, update: dict, build=None) -> None:
        """Draw ``update`` on the figure ``key``: a canvas map, or a plotly figure rebuilt only when its structure
        (the number of panels, labels shown) changes."""
        canvas = key in view.CANVAS_STYLES
        widget = self.figures.get(key)
        if widget is None and canvas:
            widget = self.figures[key] = HeatmapView(name=f"{self.key}-{key}-map", **view.CANVAS_STYLES[key])
            widget.on_click(self._on_entropy_click if key == "entropy" else self._on_cell_click)
        elif widget is None:
            widget = self.figures[key] = PlotView(name=f"{self.key}-{key}-plot")
            if key == "model":
                widget.on_click(self._on_model_click)
        if canvas:  # weights on one scale, 0 to 1, unless the map says otherwise (a long text's pooled blocks)
            widget.draw(update if update.zmax is not None else replace(update, zmax=1.0))
        elif self._structures.get(key) == update.structure:
            view.apply_update(widget.figure, update)
            widget.show(widget.figure)
        else:
            figure = build()
            view.apply_update(figure, update)  # titles with the model's own layer and head labels
            self._structures[key] = update.structure
            widget.show(figure)
        if len(box.children) != 1 or box.children[0] is not widget:  # identity: figures compare by content
            box.children = [widget]

