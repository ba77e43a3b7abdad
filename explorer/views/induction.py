"""Figures of an induction head forming: the loss on each copy, each head's scores, and the phase change.

Pure functions: a run's snapshots (``Snapshot.induction``) and ``PhaseChange`` records in, plotly figures, their
trace data and layout marks out. Traces are made once per run and filled in place as training goes on.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.phase import induction_curves
from explorer.views.training import RUN_COLORS

LAYER_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")  # a head's line takes its layer's colour
RUN_DASHES = ("solid", "dot")
SCORES = (("induction", "induction score"), ("previous_token", "previous-token score"))


def copy_losses_figure(names: list[str], height: int = 320) -> go.Figure:
    """Loss on the second copy (solid) and the first copy (dotted) against step, two traces per run in order
    ``[second run 0, first run 0, second run 1, ...]``; the first copy's loss is chance, the second's falls when an
    induction head forms."""
    fig = go.Figure()
    for i, name in enumerate(names):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        for key, dash in (("second copy", "solid"), ("first copy", "dot")):
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name=f"{name}: {key}", line=dict(color=color, dash=dash),
                                     hovertemplate=f"{html.escape(name)}: {key}<br>step %{{x}}<br>loss %{{y:.3f}}"
                                                   "<extra></extra>"))
    fig.update_xaxes(title_text="step", rangemode="tozero")
    fig.update_yaxes(title_text="loss (nats)", rangemode="tozero", ticklabelstandoff=6)  # clear of the x axis' 0
    # the legend below the plot, where the phase marks' words cannot run into it
    fig.update_layout(title=dict(text="loss on the copies: the second falls when an induction head forms",
                                 font=dict(size=13)), height=height, margin=dict(l=55, r=20, t=40, b=40),
                      legend=dict(font=dict(size=11), orientation="h", x=0, y=-0.3, yanchor="top"))
    return fig


def copy_losses_data(snapshots) -> list[tuple[np.ndarray, np.ndarray]]:
    """(steps, second-copy loss) and (steps, first-copy loss) of one run, for its two traces."""
    curves = induction_curves(snapshots)
    return [(curves["steps"], curves["second_copy"]), (curves["steps"], curves["first_copy"])]


def head_scores_figure(names: list[str], layers: list[int], n_heads: list[int], height: int = 280) -> go.Figure:
    """Each head's induction score (left) and previous-token score (right) against step: one trace per run, layer
    and head, in that order, on each side. A head's colour is its layer's; the second run is dotted."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[title for _, title in SCORES], horizontal_spacing=0.1)
    for col in (1, 2):
        for i, name in enumerate(names):
            for layer in range(layers[i]):
                for head in range(n_heads[i]):
                    label = f"{name} · L{layer} H{head}"
                    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name=label, legendgroup=f"{name} L{layer}",
                                             showlegend=False, line=dict(color=LAYER_COLORS[layer % 4], width=1.5,
                                                                         dash=RUN_DASHES[i % 2]),
                                             hovertemplate=f"{html.escape(label)}<br>step %{{x}}<br>%{{y:.2f}}"
                                                           "<extra></extra>"), row=1, col=col)
    fig.update_xaxes(title_text="step", rangemode="tozero")
    fig.update_yaxes(range=[0, 1.02], ticklabelstandoff=6)  # the 0s of the two axes apart at the corner
    fig.update_layout(height=height, margin=dict(l=45, r=20, t=40, b=40), title=dict(
        text="each head's scores on the probe (colour: layer " + ", ".join(
            f"<span style='color:{c}'>L{i}</span>" for i, c in enumerate(LAYER_COLORS[:max(layers, default=1)])) + ")",
        font=dict(size=13)))
    return fig


def head_scores_data(snapshots) -> list[tuple[np.ndarray, np.ndarray]]:
    """For one run: (steps, score) of every head, induction scores first then previous-token scores, heads in
    layer order."""
    curves = induction_curves(snapshots)
    steps = curves["steps"]
    return [(steps, curves[key][:, layer, head]) for key, _ in SCORES
            for layer in range(curves[key].shape[1]) for head in range(curves[key].shape[2])]


def phase_marks(phases: dict, now: int | None = None) -> dict:
    """Layout ``shapes`` and ``annotations`` marking each run's phase change (a dashed line at the fastest fall of
    the second-copy loss, a dotted one where a head's induction score reached 0.5) and the step ``now`` on screen."""
    shapes, notes = [], []
    for i, (name, phase) in enumerate(phases.items()):
        if phase is None:
            continue
        color = RUN_COLORS[i % len(RUN_COLORS)]
        shapes.append(_line(phase.step, color, "dash"))
        what = "phase change" if phase.induction_step is not None else "fastest fall (no induction head)"
        notes.append(dict(x=phase.step, y=1 - 0.1 * i, xref="x", yref="paper", showarrow=False, xanchor="left",
                          font=dict(size=11, color=color), text=f" {html.escape(name)}: {what}, step {phase.step}"))
        if phase.induction_step is not None:
            shapes.append(_line(phase.induction_step, color, "dot"))
    if now is not None:
        shapes.append(_line(now, "#555", "solid", width=1))
    return dict(shapes=shapes, annotations=notes)


def _line(step: int, color: str, dash: str, width: int = 2) -> dict:
    return dict(type="line", x0=step, x1=step, y0=0, y1=1, xref="x", yref="paper", line=dict(color=color, dash=dash,
                                                                                            width=width))


def phase_html(phases: dict, curves: dict) -> str:
    """One line per run: where its phase change is, and where its second-copy loss and best head stand now."""
    lines = []
    for name, phase in phases.items():
        now = curves.get(name)
        if now is None or not len(now["steps"]):
            continue
        loss, top = now["second_copy"][-1], now["induction"][-1].max()
        state = f"second-copy loss {loss:.2f}, best induction score {top:.2f} at step {now['steps'][-1]}"
        if phase is None:
            found = "no fall of the second-copy loss yet"
        elif phase.induction_step is None:
            found = (f"the second-copy loss falls fastest at step {phase.step}, but no head has reached an induction "
                     "score of 0.5: no induction head, no phase change")
        else:
            found = (f"phase change at step {phase.step} (the second-copy loss falls fastest there, {phase.fall:.2f} "
                     f"nats per 100 steps); a head's induction score reached 0.5 at step {phase.induction_step}")
        lines.append(f"<b>{html.escape(name)}</b>: {found}. Now: {state}.")
    return "<br>".join(lines)
