"""The step function shared by the labs: seeded training with a divergence guard and snapshots of attention.

``Trainer(model, data)`` trains any model of the explorer on a ``datasets.DatasetDict`` (splits
``train`` and ``test``). The batch kind comes from the columns:

- ``input_ids`` + ``labels``: ``model(input_ids)`` gives ``[B, T, vocab]`` for per-token labels ``[B, T]``
  (``-100`` is ignored) or ``[B, n_classes]`` for one label per sequence. An encoder-decoder is fed the
  shifted targets too.
- ``pixel_values`` + ``label``: ``model(pixel_values)`` gives ``[B, n_classes]``.

A trainer has no thread of its own. ``train_step()`` is one optimiser step; ``run(steps)`` trains here and now;
``train(steps, stop)`` is the same loop, ended early when the ``stop`` event is set: ``explorer.lab.Lab`` runs
one or several trainers that way on its worker. The rate warms up and then stays at ``lr``, unless
``decay_over(steps)`` plans the next steps (warm-up, then a cosine to zero); ``augment`` changes each training batch
with draws from the trainer's seeded generator, so a run stays deterministic. Its state is ``step``, ``history``
(a ``HistoryRow`` per step) and ``snapshots``: every ``snapshot_every`` steps the ``probe(model)`` record (attention
on a fixed input) is kept as a ``Snapshot`` for scrubbing back in time. ``evaluate()`` measures the test split.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from typing import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from explorer.arguments import positive_number, seed as check_seed, whole, whole_number
from explorer.threads import one_thread
from explorer.guard import MAX_UPDATE, RECENT, WeightGuard
from explorer.induction import induction_probe, is_induction
from explorer.maps import HistoryRow, Snapshot
from explorer.data.translation import is_translation
from explorer.models.transformer import TinySeq2Seq, TinyTransformer, model_inputs, token_probe
from explorer.models.translator import translation_probe
from explorer.training_checks import check_steps, check_trainable, check_training_size

TOKEN_COLUMNS = ("input_ids", "labels")
IMAGE_COLUMNS = ("pixel_values", "label")
WARMUP_STEPS = 20
GRAD_CLIP = 1.0
SMALL_MODEL = 2_000_000  # parameters; below this one CPU thread trains faster than several (less hand-off)


def batch_kind(data) -> str:
    """"tokens" or "images" from the columns of the train split; a ValueError names what is missing."""
    if not hasattr(data, "keys") or "train" not in data or "test" not in data \
            or not all(hasattr(data[split], "column_names") for split in ("train", "test")):
        raise ValueError("Training needs a DatasetDict with a 'train' and a 'test' split.")
    columns = set(data["train"].column_names)
    for kind, needed in (("tokens", TOKEN_COLUMNS), ("images", IMAGE_COLUMNS)):
        if set(needed) <= columns:
            return kind
    raise ValueError(f"The data has columns {', '.join(sorted(columns))}; training needs "
                     f"{' + '.join(TOKEN_COLUMNS)} (sequences) or {' + '.join(IMAGE_COLUMNS)} (images).")


def split_tensors(split, columns) -> tuple[torch.Tensor, torch.Tensor]:
    """The two columns of a split as whole tensors (sequences must share one length)."""
    if len(split) == 0:
        raise ValueError("A split of the data is empty: there is nothing to train or test on.")
    batch = split.with_format("torch", columns=list(columns))[:]
    tensors = []
    for column in columns:
        value = batch[column]
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"The '{column}' values differ in length: cut or pad them to one length first.")
        tensors.append(value)
    return tensors[0], tensors[1]


def loss_and_hits(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy, and per example: correct positions and positions that count (``-100`` is ignored)."""
    if logits.dim() == 3:  # [B, T, vocab] per-token
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        counted = labels != -100
        hits = (logits.argmax(dim=-1) == labels) & counted
        return loss, hits.sum(dim=1), counted.sum(dim=1)
    loss = nn.functional.cross_entropy(logits, labels)
    return loss, (logits.argmax(dim=-1) == labels).long(), torch.ones_like(labels)


def default_probe(model: nn.Module, data, kind: str) -> Callable | None:
    """The attention on the first test example for the explorer's token models (with a translation's alignment, or
    the induction task's loss on each copy and head scores); none for other models."""
    if kind == "tokens" and isinstance(model, TinySeq2Seq) and is_translation(data):
        return translation_probe(data)
    if kind == "tokens" and isinstance(model, (TinyTransformer, TinySeq2Seq)):
        return induction_probe(data) if isinstance(model, TinyTransformer) and is_induction(data) else token_probe(data)
    return None


def reinitialise(model: nn.Module, seed: int) -> None:
    """Fresh weights from ``seed``: every module's ``reset_parameters``, children first so a parent's own init wins."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in reversed(list(model.modules())):
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()




class Trainer:
    """Train ``model`` on ``data`` with AdamW; see the module docstring for the contract."""

    def __init__(self, model: nn.Module, data, lr: float = 1e-3, batch_size: int = 64, seed: int = 0,
                 probe: Callable | None = None, snapshot_every: int = 10,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None):
        self.kind = batch_kind(data)
        columns = TOKEN_COLUMNS if self.kind == "tokens" else IMAGE_COLUMNS
        self.train_inputs, self.train_labels = split_tensors(data["train"], columns)
        self.test_inputs, self.test_labels = split_tensors(data["test"], columns)
        check_trainable(model, probe, self.train_inputs[:2], self.train_labels[:2], self.kind)
        self.model, self.data, self.seed = model, data, check_seed(seed)
        self.lr = lr
        self.batch_size = batch_size
        self.snapshot_every = whole_number(snapshot_every, "snapshot_every (steps between snapshots)", low=1)
        self.probe = probe if probe is not None else default_probe(model, data, self.kind)
        self.augment = augment  # augment(inputs, generator): new training inputs, drawn from the trainer's generator
        self.message = "Ready to train."
        self.paused = False  # the guard undid the last step of the last run
        self._busy = threading.Lock()  # held while a loop trains: one place at a time
        self._fresh_optimiser()

    # ----- settings ------------------------------------------------------------------------------
    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        self._lr = positive_number(value, "learning rate", "0.001")

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value) -> None:
        batch = min(whole_number(value, "batch size", low=1), len(self.train_labels))
        check_training_size(self.model, batch, self.train_inputs)
        self._batch_size = batch

    def _fresh_optimiser(self) -> None:
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=0.01)
        self.guard = WeightGuard(self.model, self.optimizer)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.schedule: LRScheduler | None = None  # the rates of a planned run (``decay_over``)
        self.scheduled = 0  # its steps still to come
        self.step = 0
        self.elapsed = 0.0
        self.history: list[HistoryRow] = []
        self.snapshots: list[Snapshot] = []

    def reset(self) -> None:
        """New weights from the seed, a new optimiser, and an empty history (refused while training)."""
        with self._idle("reset"):
            reinitialise(self.model, self.seed)
            self._fresh_optimiser()
            self.message = "Weights re-initialised; history cleared."

    def restore_history(self, history) -> None:
        """Continue the steps and curves of a loaded checkpoint (refused while training)."""
        rows = [HistoryRow.from_dict(row) for row in history]
        with self._idle("load a history"):
            self.history = rows
            self.step = rows[-1].step if rows else 0
            self.elapsed = rows[-1].elapsed if rows else 0.0
            self.snapshots = []
            self.guard.forget()
            self.guard.losses.extend(row.loss for row in rows[-RECENT:])

    # ----- one step ------------------------------------------------------------------------------
    def current_lr(self) -> float:
        """The planned run's rate (``decay_over``); otherwise a short linear warm-up, then the chosen rate."""
        if self.schedule is not None:
            return self.schedule.get_last_lr()[0]
        return self.lr * min(1.0, (self.step + 1) / WARMUP_STEPS)

    def decay_over(self, steps: int) -> None:
        """Plan the next ``steps`` steps: a linear warm-up to ``lr`` over at most ``WARMUP_STEPS`` of them, then a
        cosine down towards zero (SGDR's half cosine, Loshchilov and Hutter 2017), by torch's schedulers; after them
        the rate is ``lr`` again. A short run then ends on small steps, where a constant rate leaves the weights
        bouncing."""
        steps = check_steps(steps)
        with self._idle("plan the learning rate"):
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr
                group.pop("initial_lr", None)  # a scheduler starts from "initial_lr" when it is there
            warm = min(WARMUP_STEPS, steps // 2)
            cosine = CosineAnnealingLR(self.optimizer, T_max=steps - warm)
            self.schedule = cosine if warm == 0 else SequentialLR(
                self.optimizer, [LinearLR(self.optimizer, start_factor=1 / warm, total_iters=max(warm - 1, 1)), cosine],
                milestones=[warm])
            self.scheduled = steps

    def _next_rate(self) -> None:
        """One step of the planned rates was taken; after the last one the rate is ``lr`` again."""
        if self.schedule is None:
            return
        self.scheduled -= 1
        if self.scheduled > 0:
            self.schedule.step()
        else:
            self.schedule = None

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(len(self.train_labels), (self.batch_size,), generator=self.generator)
        inputs = self.train_inputs[index]
        if self.augment is not None:
            inputs = self.augment(inputs, self.generator)
        return inputs, self.train_labels[index]

    def train_step(self) -> HistoryRow | None:
        """One optimiser step; its history record, or None when the guard undid it (``explorer.guard``)."""
        started = time.perf_counter()
        inputs, labels = self._batch()
        lr = self.current_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.guard.save()
        self.model.train()
        logits = self.model(*model_inputs(self.model, inputs, labels))
        loss, hits, counted = loss_and_hits(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        if not self.guard.loss_ok(value):
            what = "NaN or infinite" if not math.isfinite(value) else f"{value:.3g}, far above the recent losses"
            return self._undo(f"The loss became {what}", further=self._weights_wrecked())
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP)
        if not torch.isfinite(grad_norm):
            return self._undo("The gradients became NaN or infinite")
        self.optimizer.step()
        moved = self.guard.update_size()
        if not math.isfinite(moved):
            return self._undo("The weights became NaN or infinite")
        if moved > MAX_UPDATE:
            return self._undo(f"One step would have moved the weights by {moved:.3g} times their size")
        self.guard.accept(value, (inputs, labels))
        self._next_rate()
        self.step += 1
        self.elapsed += time.perf_counter() - started
        record = HistoryRow(step=self.step, loss=value, accuracy=(hits.sum() / counted.sum()).item(), lr=lr,
                            elapsed=self.elapsed)
        self.history.append(record)
        return record

    @torch.no_grad()
    def _weights_wrecked(self) -> bool:
        """True when the previous step's batch, which was fine before it, is bad with the weights it left."""
        if not self.guard.can_go_further:
            return False
        inputs, labels = self.guard.last_batch
        self.model.eval()
        loss, _, _ = loss_and_hits(self.model(*model_inputs(self.model, inputs, labels)), labels)
        return not self.guard.loss_ok(loss.item())

    def _undo(self, reason: str, further: bool = False) -> None:
        """Bring back the state before this step (``further``: before the previous one too, which wrecked it)."""
        self.guard.restore(further)
        self.optimizer.zero_grad(set_to_none=True)
        at = self.step + 1
        if further:
            self.step -= 1
            del self.history[self.step:]
            self.elapsed = self.history[-1].elapsed if self.history else 0.0
            self.snapshots = [s for s in self.snapshots if s.step <= self.step]
        kept = f"the weights from step {self.step} {'brought back' if further else 'kept'}"
        self.message = (f"{reason} at step {at} with learning rate {self.lr:g}: training paused and {kept}. "
                        "Lower the learning rate to continue.")
        return None

    def take_snapshot(self) -> None:
        """Record the probe's attention at this step (in eval mode, without gradients)."""
        if self.probe is None or (self.snapshots and self.snapshots[-1].step == self.step):
            return
        self.model.eval()
        with torch.no_grad():
            record = self.probe(self.model)
        snapshot = dataclasses.replace(record, step=self.step) if isinstance(record, Snapshot) else Snapshot(self.step, record)
        self.snapshots.append(snapshot)

    # ----- loops -----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while a loop (``run`` here, or a Lab's worker) trains this trainer."""
        return self._busy.locked()

    @contextlib.contextmanager
    def _idle(self, action: str):
        if not self._busy.acquire(blocking=False):
            raise ValueError(f"Training is running: stop it before you {action}.")
        try:
            yield
        finally:
            self._busy.release()

    @property
    def small(self) -> bool:
        """True for models small enough that one CPU thread is fastest."""
        return sum(p.numel() for p in self.model.parameters()) < SMALL_MODEL

    def run(self, steps: int) -> list[HistoryRow]:
        """Train ``steps`` steps here and now; returns the new history records."""
        steps = check_steps(steps)
        with one_thread(self.small):
            return self.train(steps)

    def train(self, steps: int, stop: threading.Event | None = None, snapshot_at_end: bool = True) -> list[HistoryRow]:
        """Train up to ``steps`` steps: fewer when ``stop`` is set (checked before each step) or when the guard undoes
        a step (``paused`` then says so, and ``message`` why). A snapshot is taken every ``snapshot_every`` steps and,
        with ``snapshot_at_end``, after the last one. Returns the new history records."""
        steps = check_steps(steps)
        if stop is not None and not callable(getattr(stop, "is_set", None)):
            raise TypeError(f"stop must be a threading.Event (or None), got {type(stop).__name__}.")
        with self._idle("train again"):
            first = len(self.history)
            self.paused = False
            if not self.snapshots:
                self.take_snapshot()
            target = self.step + steps
            while self.step < target:
                if stop is not None and stop.is_set():
                    self.message = f"Stopped at step {self.step}."
                    return self.history[first:]
                if self.train_step() is None:
                    self.paused = True
                    return self.history[first:]
                if self.step % self.snapshot_every == 0 or (snapshot_at_end and self.step == target):
                    self.take_snapshot()
            self.message = f"Finished {steps} steps (step {self.step}, loss {self.history[-1].loss:.4f})."
            return self.history[first:]

    # ----- evaluation ------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The model's predicted ids (or classes) for ``inputs``; the encoder-decoder decodes greedily."""
        self.model.eval()
        if getattr(self.model, "is_encoder_decoder", False):
            return self.model.generate(inputs, inputs.shape[1] if labels is None else labels.shape[1])
        logits = self.model(*model_inputs(self.model, inputs, labels))
        return logits.argmax(dim=-1)

    def evaluate(self, batch_size: int = 512) -> dict:
        """Accuracy on the test split: ``token_accuracy`` and ``sequence_accuracy``, or ``accuracy`` for classes."""
        hits = counted = exact = 0
        batch_size = whole(batch_size, "evaluation batch size", 1)
        n = len(self.test_labels)
        for start in range(0, n, batch_size):
            inputs, labels = self.test_inputs[start: start + batch_size], self.test_labels[start: start + batch_size]
            with one_thread(self.small):
                predicted = self.predict(inputs, labels)
            correct = predicted == labels
            if labels.dim() == 2:
                counted_here = labels != -100
                hits += int((correct & counted_here).sum())
                counted += int(counted_here.sum())
                exact += int((correct | ~counted_here).all(dim=1).sum())
            else:
                hits += int(correct.sum())
        if self.test_labels.dim() == 2:
            return {"token_accuracy": hits / max(counted, 1), "sequence_accuracy": exact / n}
        return {"accuracy": hits / n}
