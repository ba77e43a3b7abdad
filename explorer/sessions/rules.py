"""One place for the rules that several tabs' settings share: choices, head counts and the learning rate.

``Choice(("pre", "post"), help="LayerNorm placement")`` is a text setting and ``NumberChoice((3, 5, 7), ...)`` a whole
number; anything else is refused on the trait with the one message every tab gives (``one_of``). Choices that
depend on other settings (a task among the uploaded files, heads that divide the width) call ``one_of`` from
their validator. ``head_options(width)`` are the head counts every tab offers; ``positive_rate`` checks a learning
rate.
"""

from __future__ import annotations

import math

from traitlets import Int, TraitError, Unicode

from explorer.attention import valid_head_counts
from explorer.sessions.base import say_name

MAX_HEADS = 16  # the most heads a tab offers


def one_of(value, choices, what: str):
    """``value`` when it is one of ``choices``; a TraitError in words that lists them otherwise."""
    if value not in tuple(choices):
        raise TraitError(f"Unknown {what} '{say_name(value)}'. Choose one of: {', '.join(map(str, choices))}.")
    return value


class _Choice:
    def __init__(self, choices, default_value=None, **kwargs):
        self.choices = tuple(choices)
        super().__init__(self.choices[0] if default_value is None else default_value, **kwargs)

    def validate(self, obj, value):
        return one_of(super().validate(obj, value), self.choices, self.help or self.name.replace("_", " "))


class Choice(_Choice, Unicode):
    """A text setting that is one of ``choices``."""


class NumberChoice(_Choice, Int):
    """A whole-number setting that is one of ``choices``."""


def head_options(width: int) -> list[int]:
    """Head counts offered for a width: those that divide it, up to ``MAX_HEADS``."""
    return [h for h in valid_head_counts(width) if h <= MAX_HEADS]


def nearest_heads(width: int, heads: int) -> int:
    """``heads`` when it divides ``width``, else the nearest count that does."""
    options = head_options(width)
    return heads if heads in options else min(options, key=lambda h: abs(h - heads))


def positive_rate(value: float, example: str) -> float:
    """A learning rate: a positive, finite number; a TraitError that gives ``example`` of one otherwise."""
    if not (0 < value and math.isfinite(value)):
        raise TraitError(f"The learning rate must be a positive number such as {example}, got {value:g}.")
    return value
