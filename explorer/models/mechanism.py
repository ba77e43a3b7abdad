"""A hand-made attention example: a few tokens with 2-D query, key and value vectors.

This is the "model" behind the Mechanism tab. It holds the vectors the user edits and runs them through
``explorer.attention.attend``; presets are small stories ("one query matches one key", ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from explorer.arguments import items, real
from explorer.attention import SCORES, attend, causal_mask, make_scorer, score_matrix
from explorer.maps import AttentionMaps, MapsInfo

MASKS = ("none", "causal", "custom")

# (tokens, queries, keys, values); each vector is 2-D so it can be drawn as an arrow.
# The token each story is about comes first in FOCUS.
PRESETS = {
    "one query matches one key": (
        ("the", "cat", "sat", "down"),
        ((0.2, 0.1), (0.0, 2.0), (1.0, 0.3), (0.3, -0.2)),
        ((1.0, 0.0), (0.1, 2.0), (-1.0, 0.5), (0.5, -1.0)),
        ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)),
    ),
    "all keys alike": (
        ("a", "b", "c", "d"),
        ((1.5, 1.0), (0.5, -1.0), (-1.0, 1.0), (1.0, 0.0)),
        ((1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0)),
        ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)),
    ),
    "a distractor": (
        ("she", "saw", "it", "bank"),
        ((0.3, 0.2), (1.0, 0.0), (0.2, 1.5), (-0.5, 0.5)),
        ((0.5, 1.5), (1.2, -0.3), (0.0, 0.4), (0.6, 1.3)),
        ((2.0, 0.0), (0.0, 2.0), (0.0, -1.0), (-2.0, 0.5)),
    ),
    "opposite directions": (
        ("up", "down", "left", "right"),
        ((0.0, 1.5), (0.0, -1.5), (-1.5, 0.0), (1.5, 0.0)),
        ((0.0, 1.5), (0.0, -1.5), (-1.5, 0.0), (1.5, 0.0)),
        ((0.0, 1.0), (0.0, -1.0), (-1.0, 0.0), (1.0, 0.0)),
    ),
}

FOCUS = {"one query matches one key": "cat", "all keys alike": "a", "a distractor": "it", "opposite directions": "up"}

# The learned matrix of the "general" score, fixed here so it visibly differs from the plain dot product.
GENERAL_MATRIX = ((1.0, 0.6), (-0.6, 1.0))


@dataclass(frozen=True)
class MechanismResult:
    scores: torch.Tensor  # [N, N] raw scores e_ij (masked cells included, before temperature)
    weights: torch.Tensor  # [N, N] softmax weights, rows sum to 1 (0 for a fully masked row)
    context: torch.Tensor  # [N, 2] one context vector per query
    mask: torch.Tensor  # [N, N] True where a query may attend

    def maps(self, tokens) -> AttentionMaps:
        return AttentionMaps(tokens=tokens, weights=self.weights, meta=MapsInfo(source="mechanism"))


@dataclass(frozen=True)
class ToyAttention:
    """Tokens with one query, key and value vector each (``[N, 2]`` tensors)."""

    tokens: tuple[str, ...]
    queries: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor

    @classmethod
    def preset(cls, name: str) -> "ToyAttention":
        if name not in PRESETS:
            raise ValueError(f"Unknown preset '{name}'. Presets: {', '.join(PRESETS)}.")
        tokens, q, k, v = PRESETS[name]
        return cls(tokens, torch.tensor(q), torch.tensor(k), torch.tensor(v))

    def with_vector(self, kind: str, index: int, vector) -> "ToyAttention":
        """A copy with one query, key or value vector replaced (``kind`` is 'queries', 'keys' or 'values')."""
        if kind not in ("queries", "keys", "values"):
            raise ValueError(f"Unknown vector kind '{kind}'.")
        table = getattr(self, kind).clone()
        table[index] = torch.tensor(self.check_vector(vector))
        return replace(self, **{kind: table})

    @staticmethod
    def check_vector(vector) -> tuple[float, float]:
        """Two finite numbers (not True or False); a ValueError that says so otherwise."""
        try:
            numbers = tuple(real(x, "vector") for x in items(vector, "vector", max_items=2))
        except ValueError:
            numbers = ()
        if len(numbers) != 2:
            raise ValueError("Each vector needs exactly two finite numbers, like 1.0, -0.5.")
        return numbers

    def mask(self, kind: str = "none", custom=None) -> torch.Tensor:
        """The boolean mask ``[N, N]`` for 'none', 'causal' or 'custom' (a given ``[N, N]`` table)."""
        n = len(self.tokens)
        if kind == "none":
            return torch.ones(n, n, dtype=torch.bool)
        if kind == "causal":
            return causal_mask(n)
        if kind == "custom":
            return torch.ones(n, n, dtype=torch.bool) if custom is None else torch.as_tensor(custom, dtype=torch.bool)
        raise ValueError(f"Unknown mask '{kind}'. Choose one of: {', '.join(MASKS)}.")

    def run(self, score: str = "scaled_dot", temperature: float = 1.0, mask: torch.Tensor | None = None) -> MechanismResult:
        """Scores -> softmax -> weighted sum, for every token's query at once."""
        scorer = toy_scorer(score)
        mask = self.mask("none") if mask is None else mask
        with torch.no_grad():
            scores = score_matrix(self.queries, self.keys, score, scorer)
            context, weights = attend(self.queries, self.keys, self.values, score, mask, temperature, scorer)
        return MechanismResult(scores=scores, weights=weights, context=context, mask=mask)


def toy_scorer(score: str):
    """The parameters used for the learned scores in this 2-D example (fixed, so results repeat)."""
    scorer = make_scorer(score, 2, seed=0)
    if score == "general":
        with torch.no_grad():
            scorer.weight.copy_(torch.tensor(GENERAL_MATRIX))
    return scorer


def parse_vector(text: str) -> tuple[float, float]:
    """Read "x, y" typed by a user; a ValueError says what is wrong."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    if not parts:
        raise ValueError("A vector entry is empty: type two numbers such as 1.0, -0.5.")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"'{text}' is not a pair of numbers: type two numbers such as 1.0, -0.5.") from None
    if len(numbers) != 2 or not all(math.isfinite(x) for x in numbers):
        raise ValueError(f"'{text}' should be exactly two finite numbers, such as 1.0, -0.5.")
    return numbers[0], numbers[1]


__all__ = ["MASKS", "PRESETS", "SCORES", "MechanismResult", "ToyAttention", "parse_vector", "toy_scorer"]
