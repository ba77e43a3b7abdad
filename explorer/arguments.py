"""Checks of arguments from the Python API and from links: a wrong value or type is a ValueError in words.

Python's own messages for these ("could not convert string to float", "invalid literal for int()") say what
failed inside, not what the student should type, so every public function checks its numbers here first.
"""

from __future__ import annotations

import math


def number(value, what: str, example: str = "1") -> float:
    """``value`` as a finite float (text such as "0.5" is read); a ValueError naming ``what`` otherwise."""
    try:
        if isinstance(value, bool) or value is None:
            raise TypeError
        result = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"The {what} must be a number such as {example}, got {shown(value)}.") from None
    if not math.isfinite(result):
        raise ValueError(f"The {what} must be a finite number such as {example}, got {shown(value)}.")
    return result


def positive_number(value, what: str, example: str = "1") -> float:
    """A finite number above zero."""
    result = number(value, what, example)
    if result <= 0:
        raise ValueError(f"The {what} must be a positive number such as {example}, got {shown(value)}.")
    return result


def whole_number(value, what: str, low: int | None = None) -> int:
    """A whole number (5 or 5.0, not 5.5), at least ``low`` when given."""
    wanted = "a whole number" if low is None else f"a whole number of at least {low}"
    try:
        result = number(value, what)
    except ValueError:
        raise ValueError(f"The {what} must be {wanted}, got {shown(value)}.") from None
    if result != int(result) or (low is not None and result < low):
        raise ValueError(f"The {what} must be {wanted}, got {shown(value)}.")
    return int(result)


def shown(value, length: int = 40) -> str:
    """A value as it appears in a message: short, with quotes around text."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= length else text[: length - 3] + "..."
