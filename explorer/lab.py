"""A tab's training: its trainers, the one runner that trains them in turns, and the record the panels draw.

    lab = Lab({"cbam": Trainer(cbam_net, data), "plain": Trainer(plain_net, data)}, chunk=10)
    lab.start(300)          # on the lab's worker; or lab.run(300) here and now; lab.stop(); lab.join()
    lab.view                # LabView: each run's step, curves, test evaluations, probe snapshots; the status

One worker trains every trainer in turns, ``chunk`` steps each, so nets seeded alike see the same batches and
compare on equal terms. After each round the lab measures the test accuracy (``evaluate=True``) and asks for a
redraw: at most one per ``interval`` seconds, on the home thread, a new frozen ``LabView`` is published to the
``on_view`` listener. The end of a run (finished, stopped, paused by a trainer's divergence guard, or an error) is
published to ``on_end`` on the home thread too. ``save`` and ``load`` write and read every trainer's model and
history (``explorer.checkpoints``). Training state never leaves the lab except through ``LabView``.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from explorer import checkpoints
from explorer.arguments import flag, real
from explorer.maps import HistoryRow, Snapshot
from explorer.threads import Home, Throttle, Worker, home, one_thread
from explorer.training import Trainer, check_steps

ENDINGS = ("finished", "stopped", "paused", "error")  # how a run can end; before the first: "ready"
_serials = itertools.count(1)


@dataclass(frozen=True, eq=False)  # each record is new: comparing curves and maps to notice a change would cost more
class RunView:
    """One trainer as the panels see it: its step, curves, test evaluations and the probe's snapshots."""

    name: str
    step: int
    history: tuple[HistoryRow, ...]  # one row per step: the loss and accuracy curves
    snapshots: tuple[Snapshot, ...]  # the probe's maps and prediction, oldest first
    evaluations: tuple[tuple[int, float], ...]  # (step, test accuracy) after each round
    config: object = None  # the model's config: what the net on screen is

    @property
    def snapshot(self) -> Snapshot | None:
        """The newest snapshot (None for a model without a probe)."""
        return self.snapshots[-1] if self.snapshots else None

    @property
    def loss(self) -> float | None:
        return self.history[-1].loss if self.history else None

    @property
    def accuracy(self) -> float | None:
        """The newest test accuracy."""
        return self.evaluations[-1][1] if self.evaluations else None


@dataclass(frozen=True, eq=False)
class LabView:
    """What a training tab draws, as of one redraw tick: every run, and how the training goes."""

    runs: tuple[RunView, ...]
    lab: int = 0  # which lab made it: a record of another lab shows other models, drawn from scratch
    status: str = "ready"  # "ready", "training" or one of ENDINGS
    message: str = ""  # the closing message of a run that ended
    done: int = 0  # steps every trainer has trained of this run
    target: int = 0  # steps asked for

    @property
    def names(self) -> list[str]:
        return [run.name for run in self.runs]

    def run(self, name: str) -> RunView | None:
        return next((run for run in self.runs if run.name == name), None)

    @property
    def progress(self) -> float:
        return self.done / self.target if self.target else 0.0


def held_out_accuracy(trainer: Trainer) -> float:
    """The one number a lab tracks on the test split: accuracy, or exact sequences for sequence tasks."""
    result = trainer.evaluate()
    return result.get("accuracy", result.get("sequence_accuracy", 0.0))


class Lab:
    """Trainers trained in turns on one worker; see the module docstring."""

    def __init__(self, trainers: Mapping[str, Trainer], chunk: int = 10, evaluate: bool = True,
                 evaluations: Mapping[str, list] | None = None, owner: Home | None = None, interval: float = 0.3):
        if not isinstance(trainers, Mapping) or not trainers:
            raise TypeError("A lab needs its trainers by name, such as {\"cbam\": Trainer(...)}.")
        wrong = next((name for name, t in trainers.items() if not isinstance(t, Trainer)), None)
        if wrong is not None:
            raise TypeError(f"A lab trains explorer.training.Trainer objects; '{wrong}' is a "
                            f"{type(trainers[wrong]).__name__}.")
        self.trainers = dict(trainers)
        self.chunk = check_steps(chunk)
        self.evaluate_each_round = flag(evaluate, "evaluate switch")
        interval = real(interval, "redraw interval (seconds)", above=0.0)
        kept = evaluations or {}  # carried over from an earlier lab of some of these trainers
        self.evaluations = {name: list(kept[name]) if name in kept else
                            [(t.step, held_out_accuracy(t))] if evaluate else [] for name, t in self.trainers.items()}
        self.serial = next(_serials)
        self.home = owner or home()
        self.worker = Worker(self.home, name="lab")
        self.on_view: Callable[[LabView], None] | None = None
        self.on_end: Callable[[LabView], None] | None = None
        self.status, self.message, self.done, self.target = "ready", "", 0, 0
        self._ended = threading.Event()  # the worker has told how its run ended and is returning
        self._redraw = Throttle(self.home, self.publish, interval)
        self.view = self.record()

    # ----- the record ------------------------------------------------------------------------------------------------
    def record(self) -> LabView:
        """A LabView of this moment (safe from any thread: it copies what it reads)."""
        runs = tuple(RunView(name, t.step, tuple(t.history), tuple(t.snapshots), tuple(self.evaluations[name]),
                             getattr(t.model, "config", None)) for name, t in self.trainers.items())
        return LabView(runs, self.serial, self.status, self.message, self.done, self.target)

    def publish(self) -> LabView:
        """Make the newest record ``view`` and hand it to ``on_view`` (on the home thread)."""
        self.view = self.record()
        if self.on_view is not None:
            self.on_view(self.view)
        return self.view

    def listen(self, on_view: Callable[[LabView], None] | None = None,
               on_end: Callable[[LabView], None] | None = None) -> None:
        """``on_view(view)`` after each redraw tick, ``on_end(view)`` when a run ends; both on the home thread."""
        self.on_view, self.on_end = on_view, on_end

    # ----- running ---------------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker.running

    @property
    def step(self) -> int:
        """The furthest step of any trainer."""
        return max(t.step for t in self.trainers.values())

    def start(self, steps: int) -> None:
        """Train every trainer ``steps`` more steps on the worker; a ValueError if training runs already."""
        steps = check_steps(steps)
        if self.worker.running and self._ended.is_set():  # the last run told its end and is returning: let it
            self.worker.join(5.0)
        if self.worker.running or any(t.running for t in self.trainers.values()):
            raise ValueError("Training is already running: stop it first, or wait for it to finish.")
        self._begin(steps)
        self.worker.submit(self._rounds, steps, done=lambda _: self._told(), failed=self._failed)

    def run(self, steps: int) -> str:
        """Train here and now (on the calling thread); returns the closing message."""
        steps = check_steps(steps)
        if self.worker.running:
            raise ValueError("Training is already running: stop it first, or wait for it to finish.")
        self._begin(steps)
        try:
            self._rounds(steps)
        except Exception as error:
            self._failed(error)
            raise
        self._told()
        return self.message

    def _begin(self, steps: int) -> None:
        self._ended.clear()
        self.worker.stopping.clear()
        self.status, self.message, self.done, self.target = "training", "", 0, steps

    def _rounds(self, steps: int) -> None:
        """Every trainer ``chunk`` steps in turn until each has trained ``steps``; ends early on Stop or a pause."""
        stop = self.worker.stopping
        with one_thread(all(t.small for t in self.trainers.values())):
            while self.done < steps:
                chunk = min(self.chunk, steps - self.done)
                for name, trainer in self.trainers.items():
                    if stop.is_set():
                        return self._end("stopped", f"Stopped at step {trainer.step}.")
                    trainer.train(chunk, stop, snapshot_at_end=self.done + chunk >= steps)
                    if stop.is_set():
                        return self._end("stopped", f"Stopped at step {trainer.step}.")
                    if trainer.paused:
                        return self._end("paused", f"{name}: {trainer.message}" if len(self.trainers) > 1 else
                                         trainer.message)
                    if self.evaluate_each_round:
                        self.evaluations[name].append((trainer.step, held_out_accuracy(trainer)))
                self.done += chunk
                self._redraw()
        self._end("finished", f"Finished {steps} steps.")

    def _end(self, status: str, message: str) -> None:
        self.status, self.message = status, message
        self._ended.set()

    def _failed(self, error: BaseException) -> None:
        self._end("error", f"Training stopped by an error at step {self.step}: {error}")
        self._told()

    def _told(self) -> None:
        """On the home thread: the last frame, then the end of the run."""
        self._redraw.flush()
        view = self.publish()
        if self.on_end is not None:
            self.on_end(view)

    def stop(self, timeout: float = 1.0) -> bool:
        """End training at the next step boundary and wait up to ``timeout`` seconds; False when nothing ran."""
        timeout = real(timeout, "timeout (seconds)", 0.0)
        if not self.worker.running:
            return False
        self.worker.stop()
        self.worker.join(timeout)
        return True

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker's run to end; on the home thread its end is then told (``view``, ``on_end``) too."""
        self.worker.join(None if timeout is None else real(timeout, "timeout (seconds)", 0.0))
        if self.home.here:
            self.home.drain()

    # ----- whole-lab actions -----------------------------------------------------------------------------------------
    def _check_idle(self, action: str) -> None:
        if self.worker.running:
            raise ValueError(f"Training is running: press Stop before you {action}.")

    def reset(self) -> None:
        """New weights from each trainer's seed, empty histories and evaluations, a first snapshot."""
        self._check_idle("reset")
        for name, trainer in self.trainers.items():
            trainer.reset()
            trainer.take_snapshot()
            self.evaluations[name] = [(0, held_out_accuracy(trainer))] if self.evaluate_each_round else []
        self.status, self.message, self.done, self.target = "ready", "", 0, 0
        self.publish()

    def save(self, files: Mapping[str, Path]) -> list[Path]:
        """Each trainer's model and history to its file in ``files`` (name -> path); refused while training."""
        self._check_idle("save")
        return [checkpoints.save(self.trainers[name].model, path, history=self.trainers[name].history)
                for name, path in files.items()]

    @staticmethod
    def load_trainers(files: Mapping[str, Path], make: Callable[[str, object], Trainer],
                      check: Callable[[str, object], None] = lambda name, model: None) -> dict[str, Trainer]:
        """Trainers of the models saved in ``files`` (name -> path), for a new lab: every file is read and
        ``check(name, model)``ed (a ValueError refuses them all) before ``make(name, model)`` builds each trainer,
        whose history then continues the saved one."""
        loaded = {name: checkpoints.load(path) for name, path in files.items()}
        for name, (model, _) in loaded.items():
            check(name, model)
        trainers = {}
        for name, (model, history) in loaded.items():
            trainers[name] = make(name, model)
            trainers[name].restore_history(history)
            trainers[name].take_snapshot()
        return trainers
