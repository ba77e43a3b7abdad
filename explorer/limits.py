"""How much one press of Train may run: a class shares one machine, so a student's run is capped unless the teacher
lifts the cap; a single user has none.

    AE_MAX_TRAIN_STEPS=50000   # the cap (0: none); in classroom mode (AE_CLASSROOM=1) it is 20,000 when unset
"""

from __future__ import annotations

import os

from explorer.paths import classroom

MAX_STEPS = "AE_MAX_TRAIN_STEPS"  # the most steps one press of Train runs; 0: no cap
CLASSROOM_MAX_STEPS = 20_000  # the cap in classroom mode unless the teacher sets one: a few CPU minutes per press


def step_cap() -> int | None:
    """The most steps one press of Train may run (``AE_MAX_TRAIN_STEPS``), or None for no cap. A class has a cap
    unless its teacher lifts it (``AE_MAX_TRAIN_STEPS=0``): one student's run must not hold a shared CPU for hours."""
    text = os.environ.get(MAX_STEPS, "").strip()
    if text.isdigit():
        return int(text) or None
    return CLASSROOM_MAX_STEPS if classroom() else None


def check_cap(steps: int) -> int:
    """``steps``, or a ValueError in words when it is over the classroom's cap."""
    cap = step_cap()
    if cap is not None and steps > cap:
        raise ValueError(f"In this classroom one press of Train runs at most {cap:,} steps; "
                         "press Train again to go on.")
    return steps
