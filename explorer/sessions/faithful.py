"""A tab's "how faithful is this map?" check: every method's importances for the output on screen, and their scores.

The check (``explorer.faithfulness.compare_methods``) runs in the tab's worker with progress; Stop ends it and the
previous result stays. Results are kept per input (model, text, position, layer), so going back to an input shows
its result at once, and nothing is recomputed when only the head on screen changes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from traitlets import Any, Float, HasTraits

KEPT = 16  # results kept per tab


@dataclass(frozen=True)
class CheckInput:
    """What a tab's check reads: ``compare_methods(model, text, position, layer, **options)``."""

    model: object
    text: object
    position: int = -1
    layer: int | None = None
    options: dict = field(default_factory=dict)  # names, classes of a lab model
    version: int = 0  # the weights' version (a lab model's training step): a kept result is of these weights

    def key(self) -> tuple:
        return (id(self.model), repr(self.text), self.position, self.layer, self.version,
                tuple(sorted((k, repr(v)) for k, v in self.options.items())))


class FaithfulnessCheck(HasTraits):
    """``run()`` checks the ``CheckInput`` that ``inputs()`` gives, which raises a ValueError that says why there is
    nothing to check yet. ``record`` is the result on screen."""

    record = Any(None)  # explorer.faithfulness.Faithfulness on screen
    progress = Float(0.0)  # 0..1 of the running check

    def __init__(self, session, inputs: Callable[[], tuple]):
        super().__init__()
        self.session, self.inputs = session, inputs
        self.results: OrderedDict = OrderedDict()
        self.runs = 0  # checks computed (not taken from the results kept), so tests can see a head switch runs none

    def kept(self):
        """The kept result of the input on screen now, or None."""
        try:
            return self.results.get(self.inputs().key())
        except ValueError:
            return None

    def run(self) -> None:
        """Check the input on screen in the worker (or show its kept result at once)."""
        from explorer.faithfulness import compare_methods

        wanted = self.inputs()
        key = wanted.key()
        if key in self.results:
            self.results.move_to_end(key)
            self.record = self.results[key]
            self.session.say("The faithfulness check of this input, as measured before.", "ok")
            return
        session, stop = self.session, self.session.worker.stopping.is_set
        self.progress = 0.0

        def told(fraction: float, words: str) -> None:
            session.home.call(self._told, fraction, words)

        def job():
            self.runs += 1
            return key, compare_methods(wanted.model, wanted.text, wanted.position, wanted.layer, progress=told,
                                        stop=stop, **wanted.options)

        session.submit("Measuring how faithful each map is…", job, self._done)

    def _told(self, fraction: float, words: str) -> None:
        if self.session.busy:
            self.progress = fraction
            self.session.say(words, "busy")

    def _done(self, result) -> None:
        key, record = result
        self.results[key] = record
        while len(self.results) > KEPT:
            self.results.popitem(last=False)
        self.progress = 1.0
        self.record = record
        wall = sum(w for w, _ in record.seconds.values())
        self.session.say(f"Faithfulness of {len(record.methods)} methods for {record.what}: {wall:.1f} s.", "ok")

    def stop(self) -> None:
        """End a running check; its partial work is dropped and the result on screen stays."""
        self.session.worker.stop()

    def show_kept(self) -> None:
        """When the input on screen changes: its kept result, if any (the result on screen stays otherwise)."""
        found = self.kept()
        if found is not None and found is not self.record:
            self.record = found
