"""What one student may ask of a shared machine: how many steps one press of Train runs, and how big a model, its
activations and a data set may be. Sizes are worked out with arithmetic from a config before anything is built, so a
forged checkpoint header, a link or a typed width of 10**13 is refused with the numbers instead of filling the memory.

    AE_MAX_TRAIN_STEPS=50000   # the cap (0: none); in classroom mode (AE_CLASSROOM=1) it is 20,000 when unset
    AE_MEMORY_BUDGET_MB=2048   # the memory one model (weights, optimizer, activations) or data set may take
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from explorer.arguments import count
from explorer.paths import classroom

MAX_STEPS = "AE_MAX_TRAIN_STEPS"  # the most steps one press of Train runs; 0: no cap
CLASSROOM_MAX_STEPS = 20_000  # the cap in classroom mode unless the teacher sets one: a few CPU minutes per press
MEMORY_BUDGET = "AE_MEMORY_BUDGET_MB"  # the memory budget in MB; unset: a quarter of the machine, at most 4 GB (1 in a class)
MAX_WEIGHTS = 50_000_000  # the explorer's models have well under a million; a forged config asks for billions
MAX_LAYERS = 64  # layers (or CNN stages) of one model: the explorer's have at most 8; building 10**5 takes minutes
GB = 2**30


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


def memory_budget() -> int:
    """Bytes one model or data set may take: ``AE_MEMORY_BUDGET_MB``, else a quarter of this machine's memory, at most
    4 GB (1 GB in a class, where many kernels share the machine)."""
    text = os.environ.get(MEMORY_BUDGET, "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text) * 2**20
    try:
        machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: assume a small laptop
        machine = 8 * GB
    return min(GB if classroom() else 4 * GB, machine // 4)


def amount(n_bytes: int) -> str:
    """Bytes in words a student reads: 3.2 GB, 840 MB, about 10^150 GB."""
    if n_bytes >= 10**12 * GB:
        return f"{count(n_bytes // GB)} GB"
    return f"{n_bytes / GB:,.1f} GB" if n_bytes >= GB else f"{max(n_bytes, 2**20) / 2**20:,.0f} MB"


@dataclass(frozen=True)
class Size:
    """What a model costs, worked out from its config: the numbers it learns and the numbers one forward pass keeps
    for the backward pass (at the stated batch and length). Training keeps four copies of the weights (the weights,
    their gradients and Adam's two moments), all as float32."""

    weights: int
    activations: int

    @property
    def bytes(self) -> int:
        return 4 * (4 * self.weights + self.activations)


def check_size(what: str, size: Size, for_what: str = "") -> Size:
    """``size``, or a ValueError with the numbers when it is over the budget: ``what`` names the model ("A TinyViT of
    width 4,096"), ``for_what`` the batch ("for a batch of 64 sequences of 512 tokens")."""
    budget = memory_budget()
    if size.weights > MAX_WEIGHTS or size.bytes > budget:
        raise ValueError(f"{what} would have {count(size.weights)} weights and need about {amount(size.bytes)} of memory"
                         f"{' ' + for_what if for_what else ''}; the explorer builds models of at most "
                         f"{MAX_WEIGHTS:,} weights within {amount(budget)} on this machine. Nothing was built.")
    return size


def check_layers(what: str, layers: int, kind: str = "layers") -> int:
    """A layer (or stage) count within ``MAX_LAYERS``: a forged 100,000 would take minutes to build even empty."""
    if layers > MAX_LAYERS:
        raise ValueError(f"{what} would have {count(layers)} {kind}; the explorer builds models of at most {MAX_LAYERS} "
                         f"{kind}. Nothing was built.")
    return layers


def check_memory(what: str, n_bytes: int) -> int:
    """A tensor or data set of ``n_bytes``, or a ValueError with the numbers when it is over the budget."""
    budget = memory_budget()
    if n_bytes > budget:
        raise ValueError(f"{what} would take about {amount(n_bytes)} of memory; this machine's budget is "
                         f"{amount(budget)}. Choose smaller sizes.")
    return n_bytes
