"""The Pretrained tab's state: which encoder (or encoder-decoder), which texts, where to look, which heads are ablated.

For an encoder-decoder, text A is the source and text B the target (empty: the model translates), and ``part``
chooses which of its three kinds of attention is drawn.

Loading a model and reading a text run in the session's worker (a burst of typing gives one reading of the
newest text); the layer, head, view and token only choose what to draw from the last ``reading``.
"""

from __future__ import annotations

from traitlets import Any, Bool, Int, List, TraitError, Unicode, observe

from explorer.arguments import whole
from explorer.sessions.base import Session, ablated_heads, place_in_model, validate
from explorer.sessions.faithful import CheckInput, FaithfulnessCheck
from explorer.sessions.rules import Choice, one_of

PRESETS = {
    "coreference": dict(text_a="The animal didn't cross the street because it was too tired.", layer=3, head=1,
                        token_label="it", view="head"),
    "subject-verb agreement": dict(text_a="The keys to the old cabinet are on the table.", layer=3, head=1,
                                   token_label="are", view="head"),
    "sentence pair": dict(text_a="The cat sat on the mat.", text_b="A cat was sitting on a rug.", mode="pair",
                          layer=2, head=0, view="layer"),
    "compare two texts": dict(text_a="The trophy didn't fit in the suitcase because it was too big.",
                              text_b="The trophy didn't fit in the suitcase because it was too small.",
                              mode="compare", layer=3, head=1, token_label="it", view="compare"),
}
VIEWS = ("head", "layer", "mean", "rollout", "compare")
PARTS = ("cross", "encoder", "decoder")  # an encoder-decoder's attention: cross, encoder self-, decoder self-
SEQ2SEQ_VIEWS = ("head", "layer", "mean")  # rollout and A vs B are about one encoder's text
MODES = ("pair", "compare")
DEFAULT_TEXT = PRESETS["coreference"]["text_a"]


def _load(name_or_path: str):
    from explorer.models.pretrained import expect_family, load

    model = load(name_or_path or None)
    if not is_seq2seq(model):
        expect_family(model, "encoder", name_or_path)
    return model


def is_seq2seq(model) -> bool:
    return getattr(model, "family", "") == "encoder-decoder"


class PretrainedSession(Session):
    """One encoder and the reading of the visitor's texts; ``reading`` is what the views draw."""

    key = "pretrained"
    title = "Pretrained"
    presets = {name: {"preset": name} for name in PRESETS}

    preset = Unicode("", help="example").tag(link=True)
    model = Unicode("", help="model").tag(link=True)  # "" is the packaged all-MiniLM-L6-v2
    text_a = Unicode(DEFAULT_TEXT, help="text A").tag(link=True)
    text_b = Unicode("", help="text B").tag(link=True)
    mode = Choice(MODES, help="meaning of text B (pair or compare)").tag(link=True)
    layer = Int(0, help="layer").tag(link=True)
    head = Int(0, help="head").tag(link=True)
    view = Unicode("head", help="view").tag(link=True)
    token = Int(-1, help="token").tag(link=True)  # the selected token's position, -1 for none
    lock = Bool(False, help="token lock").tag(link=True)
    ablated = List(help="ablated heads").tag(link=True)  # [[layer, head], ...]
    part = Choice(PARTS, help="attention of an encoder-decoder").tag(link=True)

    encoder = Any(None)  # the loaded PretrainedEncoder or Seq2SeqModel
    reading = Any(None)  # explorer.models.pretrained.Reading (or seq2seq.Seq2SeqReading) of the last texts

    def __init__(self, owner=None, encoder=None, **settings):
        self._token_for: tuple | None = None  # (texts, label, position) of a token chosen before the texts are read
        self._read_texts: tuple | None = None  # the texts of ``reading``
        self._loaded_model = settings.get("model", "")
        super().__init__(owner, **settings)
        self.faithful = FaithfulnessCheck(self, self.faithful_inputs)
        self.observe(lambda _: self.faithful.show_kept(), ["encoder", "text_a", "layer"])
        if encoder is not None:
            self._loaded(encoder)
        else:
            self.load_model(self.model)

    # ----- settings ----------------------------------------------------------------------------------------------
    def update(self, **changes) -> None:
        """As ``Session.update``; an example also sets its texts, view, layer and head (and finds its token)."""
        preset, label, wanted = self.chosen_preset(changes), None, None
        if preset:
            example = {"text_b": "", "mode": "pair", "lock": False, "token": -1, **PRESETS[preset]}
            label = example.pop("token_label", None)
            if "token" in changes:  # a link names the token itself
                label, wanted = None, self.coerce("token", changes["token"])
            changes = {**example, **changes}
        elif "token" in changes and ({"text_a", "text_b", "mode"} & set(changes) or self.reading is None):
            wanted = self.coerce("token", changes["token"])
        self.with_preset(preset, changes)
        texts = (self.text_a, self.text_b, self.mode)
        if label is not None or wanted is not None:  # the token belongs to these texts: set it when they are read
            self._token_for = (texts, label, wanted)
        if self._token_for is not None and self._read_texts == texts:
            self.token = self._token_in(self.reading.maps.tokens, texts)

    def _token_in(self, tokens, texts) -> int:
        """The token a preset or link chose for ``texts`` (by label or position), once, or -1."""
        if self._token_for is None or self._token_for[0] != texts:
            return -1
        _, label, wanted = self._token_for
        self._token_for = None
        if label is not None:
            return tokens.index(label) if label in tokens else -1
        return wanted if 0 <= wanted < len(tokens) else -1

    def ordered(self, settings: dict) -> list:
        first = ("preset", "model", "text_a", "text_b", "mode")
        return sorted(settings.items(), key=lambda item: (item[0] not in first, first.index(item[0]) if item[0] in first else 0))

    @validate("layer", "head")
    def _valid_place(self, proposal):
        return place_in_model(proposal["trait"].name, proposal["value"], self.encoder)

    @validate("view")
    def _valid_view(self, proposal):
        one_of(proposal["value"], VIEWS, "view")
        if is_seq2seq(self.encoder) and proposal["value"] not in SEQ2SEQ_VIEWS:
            raise TraitError(f"The {proposal['value']} view is drawn for encoders; for an encoder-decoder choose "
                             f"{', '.join(SEQ2SEQ_VIEWS)} (the alignment follows the head on screen).")
        return proposal["value"]

    @validate("token")
    def _valid_token(self, proposal):
        value = proposal["value"]
        current = self.reading is not None and self._read_texts == (self.text_a, self.text_b, self.mode)
        n = len(self.reading.maps.tokens) if current else None
        if value < -1 or (n is not None and value >= n):
            raise TraitError(f"Token {value} does not exist: the text has {n} tokens.")
        return value

    @validate("ablated")
    def _valid_ablated(self, proposal):
        return ablated_heads(proposal["value"], self.encoder)

    # ----- the model ---------------------------------------------------------------------------------------------
    @observe("model")
    def _on_model(self, change) -> None:
        if change["new"] != self._loaded_model:
            self.load_model(change["new"])

    def load_model(self, name_or_path: str) -> None:
        """Load another encoder in the worker; if it fails, the current one stays (and the setting names it)."""
        self.load_in_worker(name_or_path, _load, "the default model")

    def _loaded(self, encoder) -> None:
        self.encoder, self._loaded_model = encoder, self.model
        self.busy = False
        fits = {"layer": min(self.layer, encoder.n_layers - 1), "head": min(self.head, encoder.n_heads - 1),
                "ablated": [p for p in self.ablated if p[0] < encoder.n_layers and p[1] < encoder.n_heads]}
        if is_seq2seq(encoder):
            fits.update(ablated=[], view=self.view if self.view in SEQ2SEQ_VIEWS else "head")
        self.update(**fits)
        kind = ("an encoder-decoder, " if is_seq2seq(encoder) else "") + f"{encoder.n_layers} layers"
        self.say(f"Loaded {encoder.name}: {kind} x {encoder.n_heads} heads.", "ok")
        self.request()

    # ----- the reading -------------------------------------------------------------------------------------------
    @observe("text_a", "text_b", "mode", "ablated")
    def _on_input(self, change) -> None:
        self.request()

    def request(self) -> None:
        """Read the current texts in the worker; requests made meanwhile are collapsed into the newest."""
        if self.encoder is None:
            self.say("The model is still loading; your text will be shown when it is ready.", "busy")
            return
        from explorer.models import pretrained, seq2seq

        self.busy = True
        texts = (self.text_a, self.text_b, self.mode)
        if is_seq2seq(self.encoder):
            self.say("Translating…" if not self.text_b.strip() else "Reading the source and target…", "busy")
            read, args = seq2seq.read, (self.encoder, self.text_a, self.text_b)
        else:
            self.say("Reading the text…", "busy")
            read, args = pretrained.read, (self.encoder, *texts, tuple(tuple(p) for p in self.ablated))
        self.worker.submit(lambda: (texts, read(*args)), done=self._read, failed=self.fail, latest=True)

    def _read(self, result) -> None:
        texts, reading = result
        previous = self.reading.maps.tokens if self.reading is not None else ()
        token = self._carried_token(previous, reading.maps.tokens, texts)
        self._read_texts = texts
        with self.hold_trait_notifications():  # observers see the new reading with its token
            self.reading = reading
            self.token = token
        self.busy = self.worker.waiting
        maps = reading.maps
        kind = "warning" if maps.meta.notice else "ok"  # a text cut to the model's length is said in amber
        if maps.key_tokens is not None:  # an encoder-decoder's cross-attention
            self.say(f"{len(maps.keys)} source tokens, {len(maps.tokens)} target tokens. {maps.meta.notice}".strip(), kind)
        else:
            self.say(f"{len(maps.tokens)} tokens, {maps.n_layers} layers x {maps.n_heads} heads. "
                     f"{maps.meta.notice}".strip(), kind)

    def out_of_date(self) -> bool:
        """Whether the reading on screen is not of the current texts and ablation (a new one is being read, or it
        could not be read)."""
        if self.reading is None:
            return False
        ablated = tuple(tuple(p) for p in self.ablated) if not is_seq2seq(self.encoder) else ()
        return self._read_texts != (self.text_a, self.text_b, self.mode) or tuple(self.reading.maps.meta.ablated) != ablated

    def _carried_token(self, previous, tokens, texts) -> int:
        """The token chosen for these texts; else keep the selected one over a new reading of the same text, or by
        its label when locked."""
        if self._token_for is not None and self._token_for[0] == texts:
            return self._token_in(tokens, texts)
        if tokens == previous:
            return self.token if self.token < len(tokens) else -1
        if self.lock and 0 <= self.token < len(previous):
            label = previous[self.token]
            return tokens.index(label) if label in tokens else -1
        return -1

    # ----- actions -----------------------------------------------------------------------------------------------
    def select_token(self, index: int | None) -> None:
        """Highlight what token ``index`` attends to and what attends to it (None or -1, or the same again, clears)."""
        if self.lock:
            self.say("The selected token is locked; unlock it to pick another.", "warning")
            return
        index = -1 if index is None else whole(index, "token", -1)
        index = -1 if index < 0 or index == self.token else index
        self.update(token=index)

    def select_head(self, layer: int, head: int) -> None:
        self.update(layer=layer, head=head)

    def toggle_ablation(self) -> None:
        """Ablate the head on screen, or restore it."""
        pairs = {tuple(p) for p in self.ablated} ^ {(self.layer, self.head)}
        self.update(ablated=[list(p) for p in sorted(pairs)])

    def maps(self):
        return None if self.reading is None else self.reading.maps

    def faithful_inputs(self) -> CheckInput:
        """What the faithfulness check reads: text A's sentence embedding, the attention of the layer on screen."""
        if self.encoder is None:
            raise ValueError("The model is still loading; check the maps when it is ready.")
        if is_seq2seq(self.encoder):
            raise ValueError("The faithfulness check reads an encoder's sentence embedding; an encoder-decoder's "
                             "output is its translation. Load an encoder (the default all-MiniLM-L6-v2).")
        return CheckInput(self.encoder, self.text_a, -1, self.layer)
