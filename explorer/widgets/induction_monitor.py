"""The induction task's part of the training monitor: the loss on each copy, each head's scores, the phase change.

Shown only while the runs train on ``induction`` (their snapshots carry ``InductionScores``). ``build`` makes
one trace per run (and per head) when new models arrive; ``draw`` fills them in place from the runs' snapshots
and marks each run's phase change, and the step the timeline shows, on the curves.
"""

from __future__ import annotations

import ipywidgets as widgets

from explorer.phase import induction_curves, phase_change_of
from explorer.views import induction as view
from explorer.widgets.controls import tagged
from explorer.widgets.plot import PlotView


class InductionMonitor(widgets.VBox):
    """Copy losses with the phase change marked, each head's induction and previous-token score, a summary."""

    def __init__(self):
        self.losses_figure = view.copy_losses_figure([])
        self.losses = PlotView(self.losses_figure, name="ae-tl-copy-losses")
        self.scores_figure = view.head_scores_figure([], [], [])
        self.scores = PlotView(self.scores_figure, name="ae-tl-head-scores")
        self.summary = tagged(widgets.HTML(), "ae-tl-phase")
        self.phases: dict = {}
        super().__init__([self.summary, self.losses, self.scores], layout=widgets.Layout(display="none"))

    @staticmethod
    def applies(snapshots) -> bool:
        return bool(snapshots) and snapshots[-1].induction is not None

    def build(self, names: list[str], snapshots: list) -> None:
        """New runs: show the monitor for the induction task (hide it otherwise), one trace per run and head."""
        shown = all(self.applies(s) for s in snapshots) and bool(names)
        self.layout.display = None if shown else "none"
        if not shown:
            return
        grids = [s[-1].induction.induction for s in snapshots]
        self.losses_figure = view.copy_losses_figure(names)
        self.scores_figure = view.head_scores_figure(names, [len(g) for g in grids], [len(g[0]) for g in grids])

    def draw(self, names: list[str], snapshots: list, now: int | None = None) -> None:
        """Fill the curves from each run's snapshots, mark the phase changes and the step ``now`` on screen."""
        if self.layout.display == "none":
            return
        self.phases = {name: phase_change_of(runs) for name, runs in zip(names, snapshots)}
        for i, runs in enumerate(snapshots):
            for trace, (x, y) in zip(self.losses_figure.data[2 * i: 2 * i + 2], view.copy_losses_data(runs)):
                trace.x, trace.y = x, y
        heads = [view.head_scores_data(runs) for runs in snapshots]  # per run: induction heads, then previous-token
        ordered = [curve for key in range(2) for run in heads  # the figure's order: each score, then each run
                   for curve in run[key * len(run) // 2: (key + 1) * len(run) // 2]]
        for trace, (x, y) in zip(self.scores_figure.data, ordered):
            trace.x, trace.y = x, y
        self.losses_figure.update_layout(**view.phase_marks(self.phases, now))
        self.losses.show(self.losses_figure)
        self.scores.show(self.scores_figure)
        self.summary.value = view.phase_html(self.phases, {name: induction_curves(runs)
                                                            for name, runs in zip(names, snapshots)})

    def marked(self, index_step: int | None) -> str:
        """Words for the timeline's label: where the step on screen stands against the first run's phase change."""
        phase = next(iter(self.phases.values()), None) if self.phases else None
        if phase is None or index_step is None or phase.induction_step is None:
            return ""
        side = "before" if index_step < phase.step else "after"
        return f" ({side} the phase change at step {phase.step})"
