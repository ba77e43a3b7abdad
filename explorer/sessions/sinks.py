"""The attention-sink experiment of the Language model tab: its settings, its run in the worker, and its record.

A mixin of ``LanguageSession`` (which owns the model, the worker and the status line). ``run_sinks()`` reads the
bundled text (or the prompt) three times, with full attention, a sliding window, and the window that keeps the
first tokens (``explorer.sinks.sink_experiment``); each finished pass is published in ``sink_run`` at once, so
Stop keeps the curves so far.
"""

from __future__ import annotations

from traitlets import HasTraits, Instance, Int, TraitError, validate

from explorer.sessions.rules import Choice
from explorer.sinks import SinkRun, bundled_text, check_window, sink_experiment

SINK_TEXTS = ("bundled", "prompt")  # The Book of Ruth (explorer.sinks.TEXT_SOURCE), or the prompt box
MAX_SINK_TOKENS = 4096


class SinkExperiment(HasTraits):
    """Settings and record of the sink experiment; see the module docstring."""

    window = Int(256, help="window").tag(link=True)
    sinks = Int(4, help="sink tokens").tag(link=True)
    sink_tokens = Int(2000, help="tokens of the text").tag(link=True)
    sink_text = Choice(SINK_TEXTS, help="text of the sink experiment").tag(link=True)

    sink_run = Instance(SinkRun, allow_none=True)  # the last experiment's losses, kept when it was stopped

    @validate("window", "sinks", "sink_tokens")
    def _valid_sink_count(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        low = {"window": 2, "sinks": 0, "sink_tokens": 2}[name]
        if not low <= value <= MAX_SINK_TOKENS:
            words = {"window": "The window must hold 2 tokens (the token itself and one before it) or more",
                     "sinks": "The number of sink tokens must be 0 or more",
                     "sink_tokens": "The experiment reads 2 tokens or more"}[name]
            raise TraitError(f"{words}, up to {MAX_SINK_TOKENS}; got {value}.")
        return value

    def check_settings(self) -> None:
        try:
            check_window(self.window, self.sinks)
        except ValueError as error:
            raise TraitError(str(error)) from None
        super().check_settings()

    def run_sinks(self) -> None:
        """Run the experiment in the worker; progress in ``progress``, each pass in ``sink_run`` as it ends."""
        if self.language_model is None:
            raise ValueError("The model is still loading; run the experiment when it is ready.")
        if self.worker.running or self.busy:
            raise ValueError("The model is busy: wait for it, or press Stop.")
        model, home, stop = self.language_model, self.home, self.worker.stopping
        text = bundled_text() if self.sink_text == "bundled" else self.prompt
        settings = dict(window=self.window, sinks=self.sinks, max_tokens=self.sink_tokens)
        self.sink_run, self.progress = None, 0.0

        def job() -> SinkRun:
            self.runs += 1
            return sink_experiment(model, text, on_pass=lambda run: home.call(self._sink_pass, run),
                                   on_progress=lambda done: home.call(setattr, self, "progress", done), stop=stop,
                                   **settings)

        self.submit(f"Reading the text with full attention, a window of {self.window}, and the window with the first "
                    f"{self.sinks} tokens (three passes)…", job, self._sinks_done, stoppable=True)

    def _sink_pass(self, run: SinkRun) -> None:
        self.sink_run = run
        self.say(f"Sink experiment: {', '.join(run.losses)} done ({run.tokens} tokens)…", "busy")

    def _sinks_done(self, run: SinkRun) -> None:
        self.sink_run, self.progress = run, 1.0
        found = run.perplexities()
        if run.stopped:
            return self.say(f"Stopped after {len(found)} of 3 passes; the curves so far are kept.", "ok")
        full = next(iter(found.values()))
        shown = "; ".join(f"{name} {value:.1f} ({value / full:.2f}x)" for name, value in found.items())
        self.say(f"Perplexity past token {run.window} of {run.tokens}: {shown}.", "ok")
