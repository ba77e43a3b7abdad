"""A live view of one or two training runs: step counter, curves, probe prediction and every head's attention.

``TrainingMonitor`` owns its figures and updates them in place; it never trains. Give it the runs with
``show(runs)`` (after an architecture change) and call ``redraw()`` (throttled) while they train. The
timeline slider, linked to a Play button in the page, scrubs back through each trainer's snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets

from explorer.training import Trainer
from explorer.views import training as view
from explorer.widgets.figure import Figure

MAX_RUNS = 2
GRID_CAPTION = ("<small>Each square shows how much a query token (row) attends to a key token (column) of the "
                "probe input; in cross-attention the rows are the output positions.</small>")


@dataclass
class Run:
    """One configuration being trained: its name, its trainer and, once shown, its heatmaps and prediction."""

    name: str
    trainer: Trainer
    grid: Figure | None = None
    prediction: widgets.HTML | None = None


class TrainingMonitor(widgets.VBox):
    """Step counter, loss and accuracy curves, the probe's prediction, a timeline and the head heatmaps."""

    def __init__(self):
        w = widgets
        self.runs: list[Run] = []
        self.step_label = w.HTML()
        self.step_label.add_class("ae-tl-step")
        self.curves = Figure(view.curves_figure({f"run {i}": [] for i in range(MAX_RUNS)}))
        self.curves.layout.meta = "ae-tl-curves"
        self.curves.add_class("ae-tl-curves")
        self.play = w.Play(value=0, min=0, max=0, interval=250, description="play the snapshots")
        self.timeline = w.IntSlider(value=0, min=0, max=0, description="snapshot", readout=False,
                                    layout=w.Layout(width="420px"))
        self.timeline.add_class("ae-tl-timeline")
        self.timeline_label = w.HTML()
        w.jslink((self.play, "value"), (self.timeline, "value"))
        w.jslink((self.play, "max"), (self.timeline, "max"))
        self.timeline.observe(lambda change: self.show_snapshot(change["new"]), "value")
        self.predictions = w.HBox()
        self.grids = w.HBox()
        self.grids.add_class("ae-tl-heads")
        super().__init__([self.step_label, self.curves, self.predictions,
                          w.HBox([self.play, self.timeline, self.timeline_label]), w.HTML(GRID_CAPTION), self.grids],
                         layout=w.Layout(flex="1 1 auto", min_width="600px"))

    def show(self, runs: list[Run]) -> None:
        """Draw new runs: heatmaps with one trace per head of their model, and their curves."""
        with self.curves.batch_update():
            for i, trace in enumerate(self.curves.data):
                run = runs[i // 2] if i // 2 < len(runs) else None
                trace.visible, trace.name = run is not None, run.name if run else ""
        for i, run in enumerate(runs):
            _, maps = run.trainer.snapshots[-1]
            kind = "cross-attention" if maps.key_tokens is not None else "self-attention"
            run.grid = Figure(view.all_heads_figure(maps, f"{run.name} · {kind}"))
            run.grid.layout.meta = f"ae-tl-heads-{i}"
            run.grid.add_class(f"ae-tl-heads-{i}")
            run.prediction = widgets.HTML(layout=widgets.Layout(margin="0 24px 0 0"))
        self.runs = list(runs)
        self.grids.children = [run.grid for run in runs]
        self.predictions.children = [run.prediction for run in runs]
        self.redraw()

    def redraw(self) -> None:
        """Step counter, curves and, when the timeline follows the newest snapshot, the heatmaps."""
        runs = list(self.runs)
        if not runs:
            return
        self.step_label.value = "<b>" + " &nbsp; ".join(
            f"{run.name}: step {run.trainer.step}" + (f", loss {run.trainer.history[-1]['loss']:.4f}"
                                                       if run.trainer.history else "") for run in runs) + "</b>"
        with self.curves.batch_update():
            for i, run in enumerate(runs):
                for j, key in enumerate(("loss", "accuracy")):
                    self.curves.data[2 * i + j].x, self.curves.data[2 * i + j].y = view.curve_data(run.trainer.history, key)
        newest = max(len(run.trainer.snapshots) for run in runs) - 1
        following = self.timeline.value >= self.timeline.max
        self.timeline.max = newest
        if following and self.timeline.value != newest:
            self.timeline.value = newest  # draws through the observer
        elif following:
            self.show_snapshot(newest)

    def show_snapshot(self, index: int) -> None:
        """Draw snapshot ``index`` of every run (a run with fewer snapshots shows its newest)."""
        for run in list(self.runs):
            snapshots = run.trainer.snapshots
            if not snapshots or run.grid is None:
                continue
            step, maps = snapshots[min(index, len(snapshots) - 1)]
            if not view.grid_matches(maps, run.grid):
                continue
            with run.grid.batch_update():
                for trace, weights in zip(run.grid.data, view.all_heads_data(maps)):
                    trace.z = weights
            run.prediction.value = view.prediction_html(maps, step, run.name)
            self.timeline_label.value = f"step {step}"
