"""Figures of the attention-sink experiment: running perplexity against position for each attention setting.

Pure functions: a ``SinkRun`` (``explorer.sinks``) in, a plotly figure, its trace data and an HTML summary out.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

SPAN = 100  # tokens in each point's running perplexity
SETTLE = 10  # positions left out of the y range: the first tokens are guessed from almost nothing
COLORS = ("#1f77b4", "#d62728", "#2ca02c")  # full attention, window, window + sinks


def running_perplexity(losses, span: int = SPAN) -> np.ndarray:
    """At each position, exp of the mean of the ``span`` losses up to it (fewer at the start)."""
    losses = np.asarray(losses, dtype=float)
    total = np.concatenate([[0.0], np.cumsum(losses)])
    end = np.arange(1, len(losses) + 1)
    begin = np.maximum(end - span, 0)
    return np.exp((total[end] - total[begin]) / (end - begin))


def sinks_data(run) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per setting (full, window, window + sinks): positions of the predicted tokens and the running perplexity;
    empty arrays for a setting not run yet."""
    curves = []
    for name, _, _ in run.settings:
        losses = run.losses.get(name)
        if losses is None:
            curves.append((np.zeros(0), np.zeros(0)))
        else:
            curves.append((np.arange(1, len(losses) + 1), running_perplexity(losses)))
    return curves


EMPTY = ("The running perplexity of each setting appears here once you press Run the sink experiment: full "
         "attention, a sliding window, and the window that keeps the first tokens.")


def sinks_figure(run=None, height: int = 300) -> go.Figure:
    """Running perplexity against position, one line per setting, with the token where the window first leaves
    the opening tokens out marked; three traces in the order of ``run.settings``. Before any run, a figure with no
    traces (the page shows ``EMPTY`` instead of empty axes)."""
    fig = go.Figure()
    if run is None:
        return fig
    names = [name for name, _, _ in run.settings]
    for (x, y), name, color in zip(sinks_data(run), names, COLORS):
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(color=color, width=2),
                                 hovertemplate=f"{name}<br>token %{{x}}<br>perplexity %{{y:.1f}}<extra></extra>"))
    fig.update_xaxes(title_text="position in the text (token)", rangemode="tozero")
    # ticks at 1, 2 and 5 of each decade: plotly labels every digit of a short log range, and they run together
    fig.update_yaxes(title_text=f"perplexity of the last {SPAN} tokens", type="log", dtick="D2",
                     ticklabelstandoff=6)  # and clear of the x axis' first label at the corner
    settled = np.concatenate([y[SETTLE:] for _, y in sinks_data(run)])
    if len(settled):  # the first few tokens, predicted from almost nothing, would squash the rest against the axis
        fig.update_yaxes(range=[np.log10(settled.min() / 1.5), np.log10(settled.max() * 1.5)])
    fig.add_vline(x=run.window, line=dict(color="#555", dash="dash", width=1))
    fig.add_annotation(x=run.window, y=1, yref="paper", xanchor="left", showarrow=False, font=dict(size=11),
                       text=f" from token {run.window} the window no longer sees the first tokens")
    fig.update_layout(title=dict(text="What a sliding window does without, and with, the attention sinks",
                                 font=dict(size=13)), height=height, margin=dict(l=60, r=20, t=40, b=45),
                      legend=dict(orientation="h", y=-0.25, font=dict(size=11)))
    return fig


def sinks_html(run) -> str:
    """Each setting's perplexity past the window's edge, its ratio to full attention, and its seconds."""
    if run is None:
        return ""
    found = run.perplexities()
    if not found:
        return "<i>No pass finished yet.</i>"
    full = found.get("full attention")
    cell = "<td style='padding:2px 12px'>"
    rows = "".join(
        f"<tr>{cell}{html.escape(name)}</td>{cell}{value:.1f}</td>"
        f"{cell}{'' if full is None else f'{value / full:.2f}x'}</td>{cell}{run.seconds[name]:.0f} s</td></tr>"
        for name, value in found.items())
    missing = 3 - len(found)
    note = f"<br><i>Stopped: {missing} setting{'s' * (missing != 1)} not run.</i>" if run.stopped else ""
    head = "".join(f"<th style='padding:2px 12px;text-align:left'>{title}</th>" for title in
                   ("setting", f"perplexity past token {run.window}", "vs full attention", "time"))
    return (f"<table class='ae-sinks-table'><tr>{head}</tr>{rows}</table>"
            f"<small>{run.tokens} tokens read, one pass per setting.</small>{note}")
