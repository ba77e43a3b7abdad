"""The state behind ``explorer.show()``: the reader of the user's model or weights, its last reading, and where to
look (part, layer, head, view, token, batch item, ablated heads, the text).

The first reading is made at once, so ``show()`` raises a ValueError in words for bad input. Later readings (a new
text, another batch item, a head ablated, a continued text) run in the session's worker, with ``progress`` following
the model's attention calls; Stop ends a read at its next call. If one fails or is stopped, the status line says
why and the previous reading stays on screen.
"""

from __future__ import annotations

from traitlets import Any, Int, List, TraitError, Unicode, observe, validate

from explorer.arguments import text as check_text, whole
from explorer.models.reading import LayerWatch
from explorer.models.shown import Reading
from explorer.sessions.base import MAX_TEXT, Session, say_name

VIEWS = ("head", "layer", "mean", "rollout", "model", "image")
MAX_CELLS = 512  # longer maps are drawn pooled in the head view only (explorer.views.language)
GRID_TOKENS = 128  # the layer and model grids draw every head: up to this many tokens
SETTINGS = ("part", "layer", "head", "view", "token", "item")  # what show(..., layer=2, head=1) may choose


class ShowSession(Session):
    """One model (or set of weights) shown in a notebook; ``reading`` is what the views draw."""

    key = "show"
    title = "show"

    part = Unicode("", help="attention").tag(setting=True)
    layer = Int(0, help="layer").tag(setting=True)
    head = Int(0, help="head").tag(setting=True)
    view = Unicode("head", help="view").tag(setting=True)
    token = Int(-1, help="token").tag(setting=True)  # the picked token's position, -1 for none
    zoom = Int(-1, help="zoom").tag(setting=True)  # first token of a long map's zoomed window, -1 for the whole
    item = Int(0, help="batch item").tag(setting=True)
    ablated = List(help="ablated heads").tag(setting=True)  # [[part, layer, head], ...]
    text = Unicode("", help="text").tag(setting=True)
    new_tokens = Int(20, help="new tokens").tag(setting=True)

    reading = Any(None)  # explorer.models.shown.Reading of the last input

    def __init__(self, reader, inputs=None, owner=None, **settings):
        self.reader, self.inputs = reader, inputs
        first = reader.read(inputs, whole(settings.get("item", 0), "batch item", 0))  # raises: show() refuses bad input at once
        super().__init__(owner)
        with self.hold_trait_notifications():
            self.reading = first
            self.text = inputs if isinstance(inputs, str) else ""
            self.item = first.item
            self.part = next(iter(first.parts))
        self.update(**settings)
        self._fit()
        self.say(self.summary(), "ok")

    # ----- what is on screen -------------------------------------------------------------------------------------
    def maps(self):
        return self.reading.maps(self.part)

    def summary(self) -> str:
        maps = self.maps()
        parts = f" ({self.part})" if len(self.reading.parts) > 1 else ""
        keys = f" over {len(maps.keys)} keys" if maps.key_tokens is not None else ""
        return (f"{len(maps.tokens)} tokens{keys}, {counted(maps.n_layers, 'layer')} x {counted(maps.n_heads, 'head')}"
                f"{parts}.")

    def views(self) -> tuple[str, ...]:
        """The views this part can draw: rollout needs self-attention, and the grids and rollout whole maps."""
        maps, whole = self.maps(), self.reading.is_whole(self.part)
        small = whole and len(maps.tokens) <= GRID_TOKENS and len(maps.keys) <= GRID_TOKENS
        allowed = {"head": True, "layer": small, "mean": whole and len(maps.tokens) <= MAX_CELLS, "model": small,
                   "rollout": whole and maps.key_tokens is None and len(maps.tokens) <= MAX_CELLS,
                   "image": whole and self.reading.image is not None and maps.tokens[0] == "CLS"}
        return tuple(view for view in VIEWS if allowed[view])

    def layer_name(self, layer: int | None = None) -> str:
        return self.reading.layer_names[self.part][self.layer if layer is None else layer]

    def head_name(self, head: int | None = None) -> str:
        head = self.head if head is None else head
        return self.reading.head_names[head] if self.reading.head_names else str(head)

    def ablated_here(self) -> list[tuple[int, int]]:
        """The ablated heads of the part on screen, as (layer, head)."""
        return [(layer, head) for part, layer, head in self.ablated if part == self.part]

    # ----- settings ----------------------------------------------------------------------------------------------
    @validate("part")
    def _valid_part(self, proposal):
        if self.reading is not None and proposal["value"] not in self.reading.parts:
            raise TraitError(f"There is no '{say_name(proposal['value'])}' attention here; choose one of: "
                             f"{', '.join(self.reading.parts)}.")
        return proposal["value"]

    @validate("layer", "head")
    def _valid_place(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        if self.reading is None:
            return value
        maps = self.maps()
        limit = maps.n_layers if name == "layer" else maps.n_heads
        if not 0 <= value < limit:
            owner = "this part has layers" if name == "layer" else "each layer has heads"
            raise TraitError(f"{name.capitalize()} {value} does not exist: {owner} 0 to {limit - 1}.")
        return value

    @validate("view")
    def _valid_view(self, proposal):
        value = proposal["value"]
        if value not in VIEWS:
            raise TraitError(f"Unknown view '{say_name(value)}'. Choose one of: {', '.join(VIEWS)}.")
        if self.reading is not None and value not in self.views():
            raise TraitError(self.why_not(value))
        return value

    def why_not(self, view: str) -> str:
        maps = self.maps()
        if view == "rollout" and maps.key_tokens is not None:
            return "Rollout follows self-attention through the layers; this part's queries and keys differ."
        if view == "image":
            return "The image view draws where a Vision Transformer's CLS token looks, over its image: this is no ViT's."
        limit = GRID_TOKENS if view in ("layer", "model") else MAX_CELLS
        return (f"The {view} view draws up to {limit} tokens; this text has {len(maps.tokens):,}. The head view "
                "draws any length (a long map pooled into blocks; click one to zoom in).")

    @validate("token")
    def _valid_token(self, proposal):
        value = proposal["value"]
        n = len(self.maps().tokens) if self.reading is not None else None
        if value < -1 or (n is not None and value >= n):
            raise TraitError(f"Token {value} does not exist: the queries are tokens 0 to {n - 1}.")
        return value

    @validate("zoom")
    def _valid_zoom(self, proposal):
        value = proposal["value"]
        if value < -1 or (self.reading is not None and value >= len(self.maps().tokens)):
            raise TraitError(f"There is no token {value} to zoom in on.")
        return value

    @validate("item")
    def _valid_item(self, proposal):
        value = proposal["value"]
        batch = self.reading.batch if self.reading is not None else 1
        if not 0 <= value < batch:
            raise TraitError(f"Batch item {value} does not exist: the batch has {batch} (0 to {batch - 1}).")
        return value

    @validate("ablated")
    def _valid_ablated(self, proposal):
        triples = set()
        for entry in proposal["value"]:
            try:
                part, layer, head = entry
                layer, head = int(layer), int(head)
            except (TypeError, ValueError):
                raise TraitError(f"An ablated head is a (part, layer, head) triple, got {say_name(entry)}.") from None
            if not self.reader.can_ablate:
                raise TraitError("These maps were handed over as weights: there is no model to run with a head "
                                 "ablated.")
            if self.reading is not None and (part not in self.reading.parts or not 0 <= layer <
                                             self.reading.parts[part].n_layers or not 0 <= head <
                                             self.reading.parts[part].n_heads):
                raise TraitError(f"There is no head {head} in layer {layer} of the {say_name(str(part))} attention.")
            triples.add((str(part), layer, head))
        return [list(t) for t in sorted(triples)]

    @validate("new_tokens")
    def _valid_new_tokens(self, proposal):
        if not 1 <= proposal["value"] <= 200:
            raise TraitError(f"The new tokens must be a whole number from 1 to 200, got {proposal['value']}.")
        return proposal["value"]

    @observe("part")
    def _on_part(self, change) -> None:
        self._fit()

    def _fit(self) -> None:
        """Layer, head, token and view that fit the part on screen (after a new reading or another part)."""
        maps = self.maps()
        view = self.view if self.view in self.views() else "head"
        token = self.token if self.token < len(maps.tokens) else -1
        self.update(layer=min(self.layer, maps.n_layers - 1), head=min(self.head, maps.n_heads - 1), view=view,
                    token=token, zoom=-1 if self.zoom >= len(maps.tokens) else self.zoom)

    # ----- readings ----------------------------------------------------------------------------------------------
    @observe("item", "ablated")
    def _on_input(self, change) -> None:
        self.request()

    def show_text(self, text: str) -> None:
        """Read another text (readers that take text), in the worker."""
        if not self.reader.accepts_text:
            raise ValueError("This view shows weights or an input that was handed over; it does not read text.")
        if not check_text(text, "text", max_length=MAX_TEXT).strip():
            raise ValueError("The text is empty: type a sentence to see its attention.")
        self.update(text=text)
        self.request()

    def request(self) -> None:
        """Read the current input again (another item, text or ablation) in the worker; the view stays meanwhile."""
        inputs = self.text if self.reader.accepts_text and self.text else self.inputs
        ablate = tuple(tuple(t) for t in self.ablated)
        watch = self._watch(self.worker.stopping)
        self.submit("Reading…", lambda: self.reader.read(inputs, self.item, ablate, watch), self._read)

    def generate(self) -> None:
        """Continue the text by ``new_tokens`` tokens, greedily, and read the whole text (Stop ends it early)."""
        if not self.reader.can_generate:
            raise ValueError("Only a decoder-only language model with its tokenizer continues a text here.")
        text, count, ablate = self.text, self.new_tokens, tuple(tuple(t) for t in self.ablated)
        watch = self._watch(None)  # Stop ends the writing; the text written so far is then read whole

        def job():
            written = self.reader.generate(text, count, self.worker.stopping)
            return written, self.reader.read(written, self.item, ablate, watch)

        self.submit(f"Writing up to {count} tokens…", job, self._generated, stoppable=True)

    def _generated(self, result) -> None:
        written, reading = result
        with self.hold_trait_notifications():
            self.set_trait("text", written)
        self._read(reading)

    def _watch(self, stop) -> LayerWatch:
        """Hears each attention call of a read in the worker: ``progress`` follows them (as many as the last reading
        made), and a set ``stop`` ends the read at the next call."""
        total = sum(len(calls) for calls in self.reading.calls.values()) or 1
        home, self.progress = self.home, 0.0
        return LayerWatch(total, lambda done, total: home.call(setattr, self, "progress", done / total), stop)

    def _read(self, reading: Reading) -> None:
        self.progress = 1.0
        with self.hold_trait_notifications():  # observers see the new reading with a layer and head that fit it
            self.reading = reading
            if self.part not in reading.parts:
                self.part = next(iter(reading.parts))
            self._fit()
        self.say(self.summary() + (f" {reading.notice}" if reading.notice else ""), "ok")

    # ----- actions -----------------------------------------------------------------------------------------------
    def select_token(self, index: int | None) -> None:
        """Pick the token whose row and column are outlined (None or -1, or the same again, clears)."""
        index = -1 if index is None else whole(index, "token")
        self.update(token=-1 if index < 0 or index == self.token else index)

    def zoom_to(self, token: int | None, window: int) -> None:
        """Show ``window`` tokens of a long map around ``token`` whole (None: the whole map, pooled)."""
        if token is None:
            return self.update(zoom=-1)
        token, window = whole(token, "token", 0), whole(window, "zoom window", 1)
        n = len(self.maps().tokens)
        self.update(zoom=max(0, min(token - window // 2, n - window)))

    def toggle_ablation(self) -> None:
        """Ablate the head on screen, or restore it."""
        if not self.reader.can_ablate:
            raise ValueError("These maps were handed over as weights: there is no model to run with a head ablated.")
        triples = {tuple(t) for t in self.ablated} ^ {(self.part, self.layer, self.head)}
        self.update(ablated=[list(t) for t in sorted(triples)])


def counted(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"
