"""The Mechanism tab's state: a handful of 2-D queries, keys and values, and one pass of attention over them.

Every setting change recomputes the result at once (a few tokens: well under a millisecond), inside the
update, so a setting that would give no finite weights is refused before anything changes.
"""

from __future__ import annotations

import torch
from traitlets import Float, Instance, List, TraitError, Unicode, observe

from explorer.arguments import choice, shown, whole, whole_pair
from explorer.attention import SCORES
from explorer.models.mechanism import FOCUS, MASKS, PRESETS, MechanismResult, ToyAttention, parse_vector
from explorer.sessions.base import Session, say_name, validate
from explorer.sessions.rules import Choice

KINDS = ("queries", "keys", "values")
SCORE_LABELS = {"dot": "dot", "scaled_dot": "scaled dot", "general": "general", "additive": "additive"}
FIRST = "one query matches one key"


def preset_vectors(name: str) -> dict:
    """Everything a named example's story depends on: its vectors and focus token, the scaled dot product, T = 1
    and no mask (a causal mask left from before would hide "a distractor"'s own distractor)."""
    _, queries, keys, values = PRESETS[name]
    return dict(queries=[list(v) for v in queries], keys=[list(v) for v in keys], values=[list(v) for v in values],
                token=FOCUS[name], blocked=[], mask="none", temperature=1.0, score="scaled_dot")


class MechanismSession(Session):
    """Scores -> softmax -> weighted sum for every token's query; ``result`` holds the last pass."""

    key = "mechanism"
    title = "Mechanism"
    presets = {name: {"preset": name} for name in PRESETS}
    preset_required = True  # the tab always shows one of its examples

    preset = Unicode(FIRST, help="example").tag(link=True)
    score = Choice(SCORES, "scaled_dot", help="score function").tag(link=True)
    temperature = Float(1.0, help="temperature").tag(link=True)
    mask = Choice(MASKS, "none", help="mask").tag(link=True)
    blocked = List(help="list of blocked cells").tag(link=True)  # [[query, key], ...] of the custom mask
    token = Unicode(FOCUS[FIRST], help="token").tag(link=True)  # whose steps are written out
    queries = List(help="queries").tag(link=True)  # [[x, y], ...], one per token
    keys = List(help="keys").tag(link=True)
    values = List(help="values").tag(link=True)

    result = Instance(MechanismResult, allow_none=True)

    def __init__(self, owner=None, **settings):
        super().__init__(owner)
        self.update(**{**preset_vectors(FIRST), **settings})
        self._show_result()

    # ----- what the settings mean ---------------------------------------------------------------------------------
    @property
    def tokens(self) -> tuple[str, ...]:
        return PRESETS[self.preset][0]

    @property
    def toy(self) -> ToyAttention:
        return ToyAttention(self.tokens, torch.tensor(self.queries), torch.tensor(self.keys), torch.tensor(self.values))

    @property
    def focus(self) -> int:
        return self.tokens.index(self.token)

    def mask_matrix(self) -> torch.Tensor:
        custom = torch.ones(len(self.tokens), len(self.tokens), dtype=torch.bool)
        for query, key in self.blocked:
            custom[query, key] = False
        return self.toy.mask(self.mask, custom)

    def compute(self) -> MechanismResult:
        result = self.toy.run(self.score, self.temperature, self.mask_matrix())
        if not (torch.isfinite(result.weights).all() and torch.isfinite(result.context).all()):
            raise ValueError("These vectors give weights that cannot be computed: use smaller numbers.")
        return result

    # ----- settings ----------------------------------------------------------------------------------------------
    def update(self, **changes) -> None:
        """As ``Session.update``; a new example also brings its vectors, token, score, temperature and mask unless
        they are given."""
        preset = self.chosen_preset(changes)
        if preset and preset != self.preset:
            changes = {**preset_vectors(preset), **changes}
        super().update(**changes)

    def ordered(self, settings: dict) -> list:
        return sorted(settings.items(), key=lambda item: item[0] != "preset")

    @validate("temperature")
    def _valid_temperature(self, proposal):
        if not proposal["value"] > 0:
            raise TraitError(f"The temperature must be a positive number (it divides the scores), got {proposal['value']:g}.")
        return proposal["value"]

    @validate("token")
    def _valid_token(self, proposal):
        if proposal["value"] not in self.tokens:
            raise TraitError(f"There is no token '{say_name(proposal['value'])}' in this example: "
                             f"{', '.join(self.tokens)}.")
        return proposal["value"]

    @validate("queries", "keys", "values")
    def _valid_vectors(self, proposal):
        name, vectors = proposal["trait"].name, proposal["value"]
        if len(vectors) != len(self.tokens):
            raise TraitError(f"The example has {len(self.tokens)} tokens, so it needs {len(self.tokens)} {name}.")
        try:
            return [list(ToyAttention.check_vector(v)) for v in vectors]
        except ValueError as error:
            raise TraitError(f"One of the {name}: {error}") from None

    @validate("blocked")
    def _valid_blocked(self, proposal):
        n = len(self.tokens)
        cells = set()
        for cell in proposal["value"]:
            query, key = whole_pair(cell, "blocked cell", ("query", "key"))
            if query >= n or key >= n:
                raise TraitError(f"A blocked cell is a pair of token numbers from 0 to {n - 1}, got {shown(cell)}.")
            cells.add((query, key))
        return [list(c) for c in sorted(cells)]

    def check_settings(self) -> None:
        """Compute with the settings being set; a TraitError rolls the update back when they cannot hold."""
        try:
            self.compute()
        except (ValueError, IndexError, KeyError) as error:
            raise TraitError(str(error)) from None

    # ----- actions -----------------------------------------------------------------------------------------------
    def set_vector(self, kind: str, index: int, vector) -> None:
        """Replace one query, key or value vector; ``vector`` may be typed text such as "1.0, -0.5"."""
        kind = choice(kind, "vector kind", KINDS)
        index = whole(index, "token number", 0, len(self.tokens) - 1)
        if isinstance(vector, str):
            vector = parse_vector(vector)
        table = [list(v) for v in getattr(self, kind)]
        table[index] = list(vector)
        self.update(**{kind: table})

    def toggle_cell(self, query: int, key: int) -> None:
        """Block (or allow again) query ``query`` from attending to key ``key``; switches the mask to custom."""
        last = len(self.tokens) - 1
        cells = {tuple(c) for c in self.blocked}
        cells ^= {(whole(query, "query token number", 0, last), whole(key, "key token number", 0, last))}
        self.update(blocked=[list(c) for c in sorted(cells)], mask="custom")

    # ----- the result --------------------------------------------------------------------------------------------
    @observe("preset", "score", "temperature", "mask", "blocked", "token", "queries", "keys", "values")
    def _on_settings(self, change) -> None:
        self._show_result()

    def _show_result(self) -> None:
        settings = repr(self.settings())
        if settings == getattr(self, "_shown", None):  # one update changing several settings: one new result
            return
        self._shown = settings
        result = self.compute()
        self.result = result
        self.say(self.summary(result), "ok" if result.mask.any(dim=-1).all() else "warning")

    def summary(self, result: MechanismResult) -> str:
        blocked = int((~result.mask).sum())
        cells = "no cell" if not blocked else "1 cell" if blocked == 1 else f"{blocked} cells"
        message = f"{SCORE_LABELS[self.score]} score, T = {self.temperature:.3g}, {cells} masked."
        empty = [t for i, t in enumerate(self.tokens) if not result.mask[i].any()]
        if empty:
            message += f" Query {', '.join(empty)} may attend to nothing: its weights and context are zero."
        return message

    def maps(self):
        """The weights as an ``AttentionMaps`` record (for export)."""
        return None if self.result is None else self.result.maps(self.tokens)
