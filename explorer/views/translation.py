"""Figures of a translator in training: how exact its answers are and how well its cross-attention aligns.

Pure functions: snapshots (``Snapshot`` with ``exact_match`` and ``alignment``) in, plotly figures, arrays and
HTML out.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from explorer.alignment import best_head
from explorer.views.training import RUN_COLORS


def scored(snapshots) -> list:
    """The snapshots that carry a translation probe's numbers."""
    return [s for s in snapshots if s.exact_match is not None]


def translation_curve_data(snapshots, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and ``exact_match`` or the best head's ``alignment`` score of each snapshot."""
    picked = scored(snapshots)
    if key == "alignment":
        picked = [s for s in picked if s.alignment is not None]
        values = [float(np.max(s.alignment)) for s in picked]
    else:
        values = [s.exact_match for s in picked]
    return np.array([s.step for s in picked]), np.array(values, dtype=float)


def translation_curves_figure(names: list[str], height: int = 220) -> go.Figure:
    """Exact match (solid) and the best head's alignment score (dotted) against step, two traces per run:
    ``[exact run 0, alignment run 0, exact run 1, ...]``."""
    fig = go.Figure()
    for i, name in enumerate(names):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        for key, dash, label in (("exact", "solid", "exact match"), ("alignment", "dot", "alignment (best head)")):
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name=f"{name}: {label}", marker=dict(size=4),
                                     line=dict(color=color, dash=dash, width=2),
                                     hovertemplate="%{fullData.name}<br>step %{x}<br>%{y:.3f}<extra></extra>"))
    fig.update_xaxes(title_text="step", rangemode="tozero")
    fig.update_yaxes(range=[0, 1.02], title_text="share")
    fig.update_layout(title=dict(text="probe dates: exact match and alignment", font=dict(size=13)), height=height,
                      margin=dict(l=50, r=20, t=40, b=40), legend=dict(font=dict(size=10)))
    return fig


def head_score_titles(n_layers: int, n_heads: int, scores) -> list[str]:
    """Titles of the head grid with each head's alignment score; the best head is starred."""
    best = best_head(scores)
    return [f"{'★ ' if (layer, head) == best else ''}L{layer} H{head} · align {scores[layer][head]:.2f}"
            for layer in range(n_layers) for head in range(n_heads)]


def alignment_html(snapshot, title: str = "") -> str:
    """Exact match and every head's alignment score as a table (layers x heads), the best head highlighted."""
    if snapshot is None or snapshot.exact_match is None:
        return ""
    parts = [f"<b>{html.escape(title)}</b> " if title else "",
             f"<span class='ae-exact'>exact match {snapshot.exact_match:.0%}</span>"]
    if snapshot.alignment is None:
        parts.append(" <span style='color:#555'>(no known alignment to score)</span>")
        return f"<div class='ae-alignment'>{''.join(parts)}</div>"
    scores = np.asarray(snapshot.alignment)
    best = best_head(scores)
    header = "".join(f"<th style='padding:0 6px'>head {h}</th>" for h in range(scores.shape[1]))
    rows = []
    for layer, row in enumerate(scores):
        cells = "".join(
            f"<td style='padding:0 6px;text-align:center;background:rgba(8,81,156,{min(max(v, 0), 1) * 0.6:.2f});"
            f"{'outline:2px solid #d62728;font-weight:bold' if (layer, h) == best else ''}'"
            f"{' class=ae-best-head' if (layer, h) == best else ''}>{v:.2f}</td>" for h, v in enumerate(row))
        rows.append(f"<tr><td style='color:#555;padding-right:6px'>layer {layer}</td>{cells}</tr>")
    parts.append(f" <span style='color:#555'>· alignment score (attention on the right source characters; best "
                 f"layer {best[0]} head {best[1]}: {scores[best]:.2f})</span>"
                 f"<table style='font-size:12px'><tr><td></td>{header}</tr>{''.join(rows)}</table>")
    return f"<div class='ae-alignment' style='margin-right:24px'>{''.join(parts)}</div>"
