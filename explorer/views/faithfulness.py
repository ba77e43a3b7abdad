"""Figures of a faithfulness check (``explorer.faithfulness.Faithfulness``): every method's importance of each token
as bars, the scores as a small table, and the deletion and insertion curves.

Each method's bars are scaled to its largest absolute value, so methods of different units share one look;
the hover gives the number itself. The method whose map is on screen is starred.
"""

from __future__ import annotations

import html
import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.faithfulness import METHOD_NAMES

POSITIVE, NEGATIVE, FIXED = "#1f77b4", "#d62728", "#9aa0a6"
METHOD_COLORS = {"attention": "#1f77b4", "rollout": "#ff7f0e", "value_norm": "#2ca02c", "grad_x_input": "#9467bd",
                 "integrated_gradients": "#8c564b", "leave_one_out": "#111111"}
STAR = " ★"
ROW_HEIGHT = 62


def title(method: str, starred: str | None = None) -> str:
    return METHOD_NAMES[method] + (STAR if method == starred else "")


def importance_figure(record, starred: str | None = None) -> go.Figure:
    """One row of bars per method over the tokens, each scaled to its largest absolute value."""
    methods, n = record.methods, len(record.tokens)
    fig = make_subplots(rows=len(methods), cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=[title(m, starred) for m in methods])
    positions = list(range(n))
    for row, method in enumerate(methods, start=1):
        values = [float(v) for v in record.importances[method]]
        top = max((abs(v) for v in values), default=0.0) or 1.0
        colors = [FIXED if not movable else POSITIVE if v >= 0 else NEGATIVE
                  for v, movable in zip(values, record.movable)]
        fig.add_trace(go.Bar(x=positions, y=[v / top for v in values], marker_color=colors, customdata=values,
                             text=list(record.tokens), textposition="none", name=METHOD_NAMES[method],
                             showlegend=False,
                             hovertemplate="%{text}: %{customdata:.4g}<extra>" + METHOD_NAMES[method] + "</extra>"),
                      row=row, col=1)
        fig.update_yaxes(range=[-1.08 if min(values, default=0) < 0 else 0, 1.08], showticklabels=False,
                         zeroline=True, zerolinecolor="#888", row=row, col=1)
    fig.update_xaxes(tickmode="array", tickvals=positions, ticktext=[_short(t) for t in record.tokens],
                     tickangle=-60, tickfont=dict(size=11), row=len(methods), col=1)
    fig.update_annotations(font=dict(size=13))
    fig.update_layout(height=ROW_HEIGHT * len(methods) + 140, margin=dict(l=20, r=10, t=60, b=90), bargap=0.15,
                      title=dict(text=f"Importance of each token for {html.escape(record.what)} (layer {record.layer})",
                                 font=dict(size=13), x=0, xanchor="left", yref="container", y=0.985))
    return fig


def _short(token: str, width: int = 12) -> str:
    return token if len(token) <= width else token[: width - 1] + "…"


def _number(value: float) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.2f}"


def scores_html(record, starred: str | None = None) -> str:
    """The scores as a table: methods across, Spearman with leave-one-out, deletion and insertion down (the
    random orders' deletion and insertion in the row names); the best of each row in bold."""
    methods = [m for m in record.methods if m in record.scores]
    if not methods:
        return ""
    rows = [("Spearman ρ with leave-one-out", "spearman", None),
            (f"deletion AOPC (random {_number(record.random.deletion)})", "deletion", record.random.deletion),
            (f"insertion (random {_number(record.random.insertion)})", "insertion", record.random.insertion)]
    head = "".join(f"<th style='padding:2px 6px'>{html.escape(title(m, starred))}</th>" for m in methods)
    body = []
    for label, name, _random in rows:
        values = {m: getattr(record.scores[m], name) for m in methods}
        compared = [v for m, v in values.items() if math.isfinite(v) and not (name == "spearman" and m == "leave_one_out")]
        best = max(compared, default=None)
        cells = "".join(_cell(values[m], best, name == "spearman" and m == "leave_one_out") for m in methods)
        body.append(f"<tr><td style='padding:2px 6px;text-align:left'>{html.escape(label)}</td>{cells}</tr>")
    return ("<table class='ae-faith-scores' style='border-collapse:collapse;font-size:13px;text-align:right'>"
            f"<tr><th></th>{head}</tr>{''.join(body)}</table>" + _footer(record))


def _cell(value: float, best, itself: bool) -> str:
    text = "(itself)" if itself else _number(value)
    bold = not itself and best is not None and math.isfinite(value) and value == best
    return f"<td style='padding:2px 6px'>{'<b>' + text + '</b>' if bold else text}</td>"


def _footer(record) -> str:
    lines = [f"Output: {record.what} = {record.value:.3f} for the unchanged input, {record.blank_value:.3f} with every "
             f"token replaced by {record.baseline}. Higher is more faithful in every row."]
    if record.ig_steps:
        lines.append(f"Integrated gradients: {record.ig_steps} steps; Captum's convergence delta "
                     f"{record.ig_delta:.2g} ({record.ig_error:.1%} of the output's change).")
    if record.seconds:
        wall = sum(w for w, _ in record.seconds.values())
        cpu = sum(c for _, c in record.seconds.values())
        lines.append(f"Took {wall:.1f} s ({cpu:.1f} s of CPU).")
    lines += list(record.notes)
    return "".join(f"<div style='font-size:12px;margin-top:3px'>{html.escape(line)}</div>" for line in lines)


def curves_figure(record, height: int = 300) -> go.Figure:
    """Deletion (the output as the most important tokens go) and insertion (as they come back), per method, with
    the random orders' mean dashed."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("deletion: most important first", "insertion: most important first"),
                        horizontal_spacing=0.1)
    x = list(record.fractions)
    for col, curves in ((1, record.deletion), (2, record.insertion)):
        for name, values in curves.items():
            random = name == "random"
            fig.add_trace(go.Scatter(x=x, y=list(values), mode="lines+markers", name="random order" if random else
                                     METHOD_NAMES[name], legendgroup=name, showlegend=col == 1,
                                     line=dict(color="#777" if random else METHOD_COLORS[name], width=2,
                                               dash="dash" if random else "solid"), marker=dict(size=4)),
                          row=1, col=col)
    fig.update_xaxes(title_text="share of the tokens replaced", range=[0, 1], row=1, col=1)
    fig.update_xaxes(title_text="share of the tokens back", range=[0, 1], row=1, col=2)
    fig.update_yaxes(title_text=_short(record.what, 40), row=1, col=1)
    fig.update_layout(height=height, margin=dict(l=50, r=10, t=40, b=50), legend=dict(font=dict(size=11)))
    return fig
