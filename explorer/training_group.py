"""Several trainers trained in turns on one background thread, so nets compare on the same batches.

    group = TrainingGroup({"cbam": Trainer(cbam_net, data), "plain": Trainer(plain_net, data)}, chunk=10)
    group.start(300)       # or run(300); stop(); join()
    group.evaluations      # {name: (steps, test accuracies)} after every round
"""

from __future__ import annotations

import threading
import traceback
from typing import Callable

from explorer.training import Trainer, check_steps, one_thread


class TrainingGroup:
    """Train several trainers in turns on one background thread: ``chunk`` steps each, then the next.

    Seeded alike, the trainers draw the same batches, so two nets (or three) compare on equal terms.
    ``evaluations[name]`` holds ``(steps, test accuracies)`` measured after every round. Callbacks
    ``fn(group, event, info)`` hear "round" (after each round), "finished", "stopped", "paused" and "error".
    """

    def __init__(self, trainers: dict, chunk: int = 10, evaluate: bool = True):
        if not trainers:
            raise ValueError("A training group needs at least one trainer.")
        self.trainers = dict(trainers)
        self.chunk = check_steps(chunk)
        self.evaluate_each_round = evaluate
        self.evaluations = {name: ([t.step], [self._accuracy(t)]) for name, t in self.trainers.items()} \
            if evaluate else {}
        self.callbacks: list[Callable] = []
        self.done = self.target = 0
        self.message = "Ready to train."
        self._stop = threading.Event()
        self._ended = threading.Event()  # the background run has told its listeners how it ended
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def add_callback(self, function: Callable) -> None:
        self.callbacks.append(function)

    def _emit(self, event: str, info: dict) -> None:
        for function in list(self.callbacks):
            function(self, event, info)

    @staticmethod
    def _accuracy(trainer: Trainer) -> float:
        result = trainer.evaluate()
        return result.get("accuracy", result.get("sequence_accuracy", 0.0))

    def start(self, steps: int) -> None:
        """Train every trainer ``steps`` more steps in a background thread."""
        steps = check_steps(steps)
        with self._lock:
            if self.running and self._ended.is_set():  # the last run told its end and is returning: let it
                self._thread.join(5.0)
            if self.running or any(t.running for t in self.trainers.values()):
                raise ValueError("Training is already running: stop it first, or wait for it to finish.")
            self._stop.clear()
            self._ended.clear()
            self.done, self.target = 0, steps
            self._thread = threading.Thread(target=self._background, args=(steps,), daemon=True, name="group")
            self._thread.start()

    def run(self, steps: int) -> str:
        """Train here and now; returns the closing message."""
        steps = check_steps(steps)
        self._stop.clear()
        self.done, self.target = 0, steps
        return self._rounds(steps)

    def _rounds(self, steps: int) -> str:
        with one_thread(all(t.small for t in self.trainers.values())):
            while self.done < steps:
                chunk = min(self.chunk, steps - self.done)
                for name, trainer in self.trainers.items():
                    if self._stop.is_set():
                        return self._finish("stopped", f"Stopped at step {trainer.step}.")
                    before = trainer.step
                    trainer._stop.clear()
                    trainer._steps(chunk, snapshot_at_end=self.done + chunk >= steps)
                    if self._stop.is_set():
                        return self._finish("stopped", f"Stopped at step {trainer.step}.")
                    if trainer.step < before + chunk:  # the NaN guard paused it
                        return self._finish("paused", f"{name}: {trainer.message}", name=name)
                    if self.evaluate_each_round:
                        steps_now, accuracy = self.evaluations[name]
                        self.evaluations[name] = (steps_now + [trainer.step], accuracy + [self._accuracy(trainer)])
                self.done += chunk
                self._emit("round", {"done": self.done, "steps": steps})
        return self._finish("finished", f"Finished {steps} steps.")

    def _finish(self, event: str, message: str, **info) -> str:
        self.message = message
        self._ended.set()
        self._emit(event, {"message": message, "done": self.done, **info})
        return message

    def _background(self, steps: int) -> None:
        try:
            self._rounds(steps)
        except Exception as error:  # noqa: BLE001 - reported to the listeners, never lost in a thread
            traceback.print_exc()
            self._finish("error", f"Training stopped by an error: {error}")

    def stop(self, timeout: float = 1.0) -> bool:
        """End training at the next step boundary; False when nothing was running."""
        if not self.running:
            return False
        self._stop.set()
        for trainer in self.trainers.values():
            trainer._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return True

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
