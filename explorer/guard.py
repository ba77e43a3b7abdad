"""The divergence guard of the Trainer: a step that wrecks the model is undone, and the last good state comes back.

A step can destroy the weights while its own loss is still finite (the loss is measured before the update),
so the guard judges each step three ways:

- the loss: non-finite, or far above the recent losses (``EXPLODING`` times their median, plus one nat);
- the update: non-finite weights after the step, or an update larger than ``MAX_UPDATE`` times the weights'
  own size (AdamW moves each weight by about the learning rate, so this is a rate far too large for them);
- when the loss is bad, the weights themselves: the previous batch is measured again with the current weights.
  If it is still bad, the previous step did the damage and its state comes back too; if not, the batch alone
  was bad and only this step is undone.

``WeightGuard`` keeps two copies of weights, buffers and optimiser state on the CPU: the state before this step
and the one before the previous step. The explorer's models are small (well under ``SMALL_MODEL`` parameters),
so copying every step costs little against the step itself (``bench/training.py`` measures it).
"""

from __future__ import annotations

import statistics
from collections import deque

import torch
from torch import nn

EXPLODING = 10.0  # a loss this many times the recent median (plus one nat) is an explosion
RECENT = 50  # losses the median is taken over
MAX_UPDATE = 1.0  # an update larger than the weights' own norm is divergence


class WeightGuard:
    """Copies of the training state before this step and before the previous one; checks of loss and update."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        self.model, self.optimizer = model, optimizer
        self.current: list[torch.Tensor] | None = None  # the state before this step
        self.previous: list[torch.Tensor] | None = None  # the state before the previous step
        self.losses: deque[float] = deque(maxlen=RECENT)
        self.last_batch: tuple | None = None  # the previous step's batch, to tell bad weights from a bad batch

    def tensors(self) -> list[torch.Tensor]:
        live = [p.data for p in self.model.parameters()] + list(self.model.buffers())
        for state in self.optimizer.state.values():
            live += [v for v in state.values() if torch.is_tensor(v)]
        return live

    def forget(self) -> None:
        """After the state was replaced from outside (a reset, a loaded history): nothing before it is known."""
        self.current = self.previous = self.last_batch = None
        self.losses.clear()

    def save(self) -> None:
        """Copy the live state before a step; the copy before the previous step is kept beside it."""
        live = self.tensors()
        spare = self.previous
        self.previous = self.current
        if spare is None or len(spare) != len(live):
            spare = [t.detach().clone() for t in live]
        else:
            torch._foreach_copy_(spare, live)
        self.current = spare

    def restore(self, further: bool = False) -> None:
        """Bring back the state before this step, or (``further``) before the previous step."""
        saved = self.previous if further else self.current
        live = self.tensors()
        if len(live) != len(saved):  # the optimiser had no state yet back then
            self.optimizer.state.clear()
            live = self.tensors()
        with torch.no_grad():
            torch._foreach_copy_(live, saved)
        if further:
            self.current, self.previous = self.previous, None
        self.last_batch = None

    @property
    def can_go_further(self) -> bool:
        return self.previous is not None and self.last_batch is not None

    def loss_limit(self) -> float:
        """The loss above which a step counts as exploding (infinite until a few losses are known)."""
        if len(self.losses) < 10:
            return float("inf")
        return EXPLODING * statistics.median(self.losses) + 1.0

    def loss_ok(self, loss: float) -> bool:
        return loss == loss and loss < self.loss_limit()

    def accept(self, loss: float, batch: tuple) -> None:
        """Remember a good step's loss and batch."""
        self.losses.append(loss)
        self.last_batch = batch

    def update_size(self) -> float:
        """How far this step moved the weights, as a multiple of their norm before it (inf if any is not finite)."""
        params = [p.data for p in self.model.parameters()]
        before = self.current[: len(params)]
        moved = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(torch._foreach_sub(params, before))))
        size = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(before)))
        ratio = (moved / size.clamp_min(1e-12)).item()
        return ratio if ratio == ratio else float("inf")
