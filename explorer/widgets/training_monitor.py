"""A live view of one or two training runs: step counter, curves, probe prediction and every head's attention.

``TrainingMonitor`` owns its figures and updates them in place; it never trains. ``draw(view)`` draws a lab's
record (``explorer.lab.LabView``): a record of a new lab (new models) builds the head grids anew, a newer record
of the same lab updates them. The timeline slider, linked to a Play button in the page, scrubs back through each
run's snapshots; the header and a mark on the curves follow the step on screen. A click on a head of a grid opens
it large below, where it follows the timeline too.
"""

from __future__ import annotations

import ipywidgets as widgets

from explorer.views import training as view
from explorer.views import translation as translation_view
from explorer.views import words
from explorer.widgets.controls import explain, explanation, tagged
from explorer.widgets.induction_monitor import InductionMonitor
from explorer.widgets.large_head import LargeHead
from explorer.widgets.plot import PlotView

MAX_RUNS = 2


class TrainingMonitor(widgets.VBox):
    """Step counter, loss and accuracy curves, the probe's prediction, a timeline and the head heatmaps."""

    def __init__(self):
        w = widgets
        self.record = None  # the LabView on screen
        self.step_label = tagged(w.HTML(), "ae-tl-step")
        self.curves_figure = view.curves_figure({f"run {i}": [] for i in range(MAX_RUNS)})
        self.curves = PlotView(self.curves_figure, name="ae-tl-curves")
        self.play = w.Play(value=0, min=0, max=0, interval=250, description="play the snapshots")
        self.timeline = tagged(w.IntSlider(value=0, min=0, max=0, description="snapshot", readout=False,
                                           layout=w.Layout(width="100%", max_width="420px")), "ae-tl-timeline")
        self.timeline_label = w.HTML()
        w.jslink((self.play, "value"), (self.timeline, "value"))
        w.jslink((self.play, "max"), (self.timeline, "max"))
        self.timeline.observe(lambda change: self.show_snapshot(change["new"]), "value")
        self.predictions = w.Box(layout=w.Layout(display="flex", flex_flow="row wrap"))
        self.translation_figure = translation_view.translation_curves_figure([])
        self.translation_curves = PlotView(self.translation_figure, name="ae-tl-alignment")
        self.alignments = tagged(w.Box(layout=w.Layout(display="flex", flex_flow="row wrap")), "ae-tl-scores")
        self.alignment_views: list[widgets.HTML] = []
        self.grids = tagged(w.Box(layout=w.Layout(display="flex", flex_flow="row wrap")), "ae-tl-heads")
        self.grid_words = explanation("ae-tl-heads-words")
        self.grid_views: list[PlotView] = []
        self.prediction_views: list[widgets.HTML] = []
        self.large = LargeHead("ae-tl-head-large")
        self.induction = InductionMonitor()
        super().__init__([self.step_label, self.curves, self.induction, self.translation_curves, self.alignments,
                          self.predictions,
                          w.HBox([self.play, self.timeline, self.timeline_label], layout=w.Layout(flex_flow="row wrap")),
                          self.grids, self.grid_words, self.large],
                         layout=w.Layout(flex="1 1 560px", min_width="0"))

    def draw(self, record) -> None:
        """Draw a lab's record (a ``LabView``): from scratch when another lab made it, else the newest step."""
        shown, self.record = self.record, record
        if shown is None or shown.lab != record.lab:
            self._build(record.runs)
        self.redraw()

    def _build(self, runs) -> None:
        """Heatmaps with one trace per head of each run's model, and their curves."""
        for i, trace in enumerate(self.curves_figure.data):
            run = runs[i // 2] if i // 2 < len(runs) else None
            trace.visible, trace.name = run is not None, run.name if run else ""
        for old in self.grid_views + self.prediction_views + self.alignment_views:
            old.close()
        self.grid_views, self.prediction_views = [], []
        translating = bool(runs) and runs[0].snapshot.exact_match is not None
        self.translation_figure = translation_view.translation_curves_figure([run.name for run in runs])
        self.translation_curves.layout.display = self.alignments.layout.display = None if translating else "none"
        self.alignment_views = [widgets.HTML() for _ in runs] if translating else []
        self.alignments.children = self.alignment_views
        self.induction.build([run.name for run in runs], [run.snapshots for run in runs])
        for i, run in enumerate(runs):
            maps = run.snapshot.maps
            kind = "cross-attention" if maps.key_tokens is not None else "self-attention"
            grid = PlotView(view.all_heads_figure(maps, f"{run.name} · {kind}"), name=f"ae-tl-heads-{i}")
            grid.on_click(lambda trace, point, i=i: self.open_head(i, trace))
            self.grid_views.append(grid)
            self.prediction_views.append(widgets.HTML(layout=widgets.Layout(margin="0 24px 0 0")))
        self.large.hide()
        self.grids.children = self.grid_views
        self.predictions.children = self.prediction_views
        self.timeline.value = self.timeline.max = 0

    def redraw(self) -> None:
        """Step counter, curves and, when the timeline follows the newest snapshot, the heatmaps."""
        if self.record is None or not self.record.runs:
            return
        runs = self.record.runs
        for i, run in enumerate(runs):
            for j, key in enumerate(("loss", "accuracy")):
                trace = self.curves_figure.data[2 * i + j]
                trace.x, trace.y = view.curve_data(run.history, key)
        if self.alignment_views:
            for i, run in enumerate(runs):
                for j, key in enumerate(("exact", "alignment")):
                    trace = self.translation_figure.data[2 * i + j]
                    trace.x, trace.y = translation_view.translation_curve_data(run.snapshots, key)
            self.translation_curves.show(self.translation_figure)
        newest = max(len(run.snapshots) for run in runs) - 1
        following = self.timeline.value >= self.timeline.max
        self.timeline.max = newest
        if following and self.timeline.value != newest:
            self.timeline.value = newest  # draws through the observer
        elif following:
            self.show_snapshot(newest)
        else:  # scrubbed back: the curves grow, the header and the mark stay on the step on screen
            self._follow(self.timeline.value)

    def show_snapshot(self, index: int) -> None:
        """Draw snapshot ``index`` of every run (a run with fewer snapshots shows its newest)."""
        if self.record is None:
            return
        for i, (run, grid, prediction) in enumerate(zip(self.record.runs, self.grid_views, self.prediction_views)):
            snapshots = run.snapshots
            if not snapshots:
                continue
            snapshot = snapshots[min(index, len(snapshots) - 1)]
            figure = grid.figure
            if not view.grid_matches(snapshot.maps, figure):
                continue
            for trace, weights in zip(figure.data, view.all_heads_data(snapshot.maps)):
                trace.z = weights
            if snapshot.alignment is not None:  # each head's alignment score in its title, the best starred
                titles = translation_view.head_score_titles(snapshot.maps.n_layers, snapshot.maps.n_heads,
                                                            snapshot.alignment)
                for annotation, title in zip(figure.layout.annotations, titles):
                    annotation.text = title
            if i < len(self.alignment_views):
                self.alignment_views[i].value = translation_view.alignment_html(snapshot, run.name)
            grid.show(figure)
            prediction.value = view.prediction_html(snapshot, run.name)
        self._follow(index)

    def _follow(self, index: int) -> None:
        """The header, the curves' mark, the words and the head opened large, at snapshot ``index``: training's
        newest step when the timeline follows it, the snapshot's step when scrubbed back."""
        runs = self.record.runs
        shown = [run.snapshots[min(index, len(run.snapshots) - 1)] if run.snapshots else None for run in runs]
        following = index >= self.timeline.max
        steps = [run.step if following or snapshot is None else snapshot.step for run, snapshot in zip(runs, shown)]
        self.step_label.value = "<b>" + " &nbsp; ".join(
            view.run_header(run.name, step, run.step, run.history) for run, step in zip(runs, steps)) + "</b>"
        self.curves_figure.layout.shapes = view.step_marks(steps[0]) if runs else ()
        self.curves.show(self.curves_figure)
        self._draw_induction(None if following else index)
        if shown and shown[0] is not None:
            self.timeline_label.value = f"step {shown[0].step}{self.induction.marked(shown[0].step)}"
            explain(self.grid_words, words.training_heads(shown[0].step, shown[0].maps.key_tokens is not None))
        self._draw_large(shown)

    # ----- one head, large -------------------------------------------------------------------------------------
    def open_head(self, run: int, trace: int) -> None:
        """Open head ``trace`` of run ``run``'s grid large (traces run layer by layer, head by head)."""
        snapshots = self.record.runs[run].snapshots
        layer, head = divmod(int(trace), snapshots[min(self.timeline.value, len(snapshots) - 1)].maps.n_heads)
        self.large.shown = (layer, head, run)
        self._follow(self.timeline.value)

    def _draw_large(self, shown) -> None:
        if self.large.shown is None:
            return
        layer, head, run = self.large.shown
        if run >= len(shown) or shown[run] is None or layer >= shown[run].maps.n_layers:
            return self.large.hide()
        title = f"{self.record.runs[run].name} · layer {layer}, head {head} at step {shown[run].step}"
        self.large.show_head(shown[run].maps, layer, head, title, run)

    def _draw_induction(self, index: int | None) -> None:
        """The induction curves, with the step of snapshot ``index`` (None: the newest) marked."""
        runs = self.record.runs if self.record is not None else ()
        snapshots = runs[0].snapshots if runs else ()
        now = snapshots[min(index, len(snapshots) - 1)].step if index is not None and snapshots else None
        self.induction.draw([run.name for run in runs], [run.snapshots for run in runs], now)
