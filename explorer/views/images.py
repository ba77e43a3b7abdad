"""Figures for the CBAM lab: training curves, a gallery of maps over images, channel-weight bars, localization,
deletion and insertion.

Arrays in, figures out. Maps and weights are drawn on a fixed 0..1 scale so frames compare; trace order is
fixed for each figure so a panel can update it in place.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

MAP_COLORS = "Inferno"
COLUMN_TITLE_SHIFT = 26  # px between a column's title and the first row's title, also at present mode's fonts
MAP_OPACITY = 0.55
MODEL_COLORS = {"CBAM net": "#d62728", "plain baseline": "#1f77b4", "ViT": "#2ca02c"}
LOCALIZATION_COLORS = ("#fdae61", "#f46d43", "#d73027", "#a50026", "#1a9850", "#4575b4", "#6a3d9a", "#b15928",
                       "#66c2a5", "#8c510a")


def grey(images) -> np.ndarray:
    """Images ``[N, C, H, W]`` as grey ``[N, H, W]`` (the mean over channels) for drawing under a map."""
    return np.asarray(images, dtype=float).mean(axis=1)


def curves_figure(histories: dict, evaluations: dict) -> go.Figure:
    """Training loss (left) and test accuracy (right) of each model.

    ``histories`` maps a model name to its history (``HistoryRow``s with step and loss); ``evaluations`` maps it
    to its ``(step, accuracy)`` pairs. Trace order: one loss per model, then one accuracy per model.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "test accuracy"), horizontal_spacing=0.1)
    for name, history in histories.items():
        fig.add_trace(go.Scatter(x=[r.step for r in history], y=[r.loss for r in history], name=name,
                                 mode="lines", line=dict(color=MODEL_COLORS.get(name), width=1.5),
                                 legendgroup=name), row=1, col=1)
    for name, pairs in evaluations.items():
        steps, accuracy = zip(*pairs) if pairs else ((), ())
        fig.add_trace(go.Scatter(x=list(steps), y=list(accuracy), name=name, mode="lines+markers", showlegend=False,
                                 line=dict(color=MODEL_COLORS.get(name)), legendgroup=name,
                                 cliponaxis=False), row=1, col=2)  # the point at step 0 sits on the axis
    fig.update_xaxes(title_text="step", rangemode="nonnegative")  # one point at step 0 would centre the axis on it
    fig.update_yaxes(title_text="cross-entropy", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=300, margin=dict(l=50, r=20, t=70, b=40), legend=dict(orientation="h", x=0, y=1.3))
    return fig


def gallery_figure(images, columns: dict, row_titles, height_per_row: int = 150, marks: dict | None = None) -> go.Figure:
    """One row per image: the image, then each map of ``columns`` (title -> ``[N, H, W]``) over it.

    Trace order: per row, the image, then for each map column a grey image trace and the map above it (named by
    its column's title, so a click tells its column). ``marks`` (column title -> ``(label, (x0, y0, x1, y1))``)
    outlines a square of pixels in every row of that column and labels it.
    """
    pictures = grey(images)
    n_rows, n_cols = len(pictures), 1 + len(columns)
    titles = [f"{row_titles[r]}" if c == 0 else "" for r in range(n_rows) for c in range(n_cols)]
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=0.06 if n_rows > 1 else 0.0, column_titles=None)
    maps = [np.asarray(m, dtype=float) for m in columns.values()]
    for r in range(n_rows):
        fig.add_trace(image_trace(pictures[r]), row=r + 1, col=1)
        for c, (title, stack) in enumerate(zip(columns, maps)):
            fig.add_trace(image_trace(pictures[r]), row=r + 1, col=c + 2)
            fig.add_trace(map_trace(stack[r], title, show_scale=r == 0 and c == 0), row=r + 1, col=c + 2)
            if title in (marks or {}):
                mark_square(fig, *marks[title], row=r + 1, col=c + 2)
    for annotation, r in zip(fig.layout.annotations, range(n_rows)):  # row titles start at the row's left edge
        annotation.update(x=fig.get_subplot(r + 1, 1).xaxis.domain[0], xanchor="left")
    for c, title in enumerate(["image", *columns]):
        x0, x1 = fig.get_subplot(1, c + 1).xaxis.domain
        fig.add_annotation(text=f"<b>{'<br>'.join(short_lines(title))}</b>", x=(x0 + x1) / 2, y=1.0, xref="paper",
                           yref="paper", yanchor="bottom", showarrow=False, yshift=COLUMN_TITLE_SHIFT,
                           font=dict(size=10))
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed", constrain="domain")
    for r in range(n_rows):
        for c in range(n_cols):
            axes = fig.get_subplot(r + 1, c + 1)
            fig.update_yaxes(scaleanchor=axes.yaxis.anchor, row=r + 1, col=c + 1)
    fig.update_layout(height=height_per_row * n_rows + 100, margin=dict(l=10, r=10, t=90, b=10),
                      plot_bgcolor="white")
    fig.update_annotations(font_size=10)
    return fig


SHORT_NAMES = {"(CBAM net)": "(CBAM)", "(plain baseline)": "(plain)"}  # in column titles, where room is short


def short_lines(title: str, width: int = 1) -> list[str]:
    """A column title in lines of about ``width`` characters (by default a word a line, split after hyphens), with
    the nets' short names, so that narrow columns' titles do not run together."""
    for name, short in SHORT_NAMES.items():
        title = title.replace(name, short)
    lines: list[str] = []
    # "Grad-CAM" is as wide as a column at 1280 px, so it breaks after its hyphen and two such titles side by side
    # keep a gap between them.
    for word in title.replace("-", "- ").split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def row_title(truth: str, answers: dict) -> str:
    """A gallery row's title: the true class (or "your image"), then what each net answered, by name."""
    said = ", ".join(f"{name} says {answer}" for name, answer in answers.items())
    return f"{truth}: {said}" if said else truth


def attention_gallery(images, records: dict, class_names, labels=None, height_per_row: int = 150,
                      head: int = 0, map_title: str = "CLS map", patch=None) -> go.Figure:
    """The gallery of several nets' records (name -> ImageAttention with ``predictions``) over the first
    ``len(images)`` images: the first net's spatial map of each stage, every CNN's Grad-CAM, then for a Vision
    Transformer (a record with ``rollout``) its last layer's CLS map, its rollout and head ``head`` of its last
    layer, and with ``patch`` (``label``, ``head``, ``maps`` ``[N, H, W]``, ``box``) what that patch attends to,
    the patch outlined and labelled. Row titles: the true class (or "your image") and each net's prediction."""
    n_images = len(images)
    first = next(iter(records.values()))
    columns = {f"stage {s + 1}": spatial[:n_images] for s, spatial in enumerate(first.spatial)}
    columns.update({f"Grad-CAM ({name})": r.grad_cam[:n_images] for name, r in records.items() if r.grad_cam is not None})
    for name, r in records.items():
        if r.rollout:
            columns.update(vit_columns(name, r, n_images, head, map_title))
    marks = {}
    if patch is not None:
        title = f"{patch.label}, head {patch.head} (ViT)"
        columns[title] = patch.maps[:n_images]
        marks[title] = (patch.label, patch.box)
    truth = ["your image"] * n_images if labels is None else [class_names[int(label)] for label in labels]
    titles = [row_title(truth[i], {name: class_names[r.predictions[i]] for name, r in records.items()})
              for i in range(n_images)]
    return gallery_figure(images, columns, titles, height_per_row, marks)


def vit_columns(name: str, record, n_images: int, head: int = 0, map_title: str = "CLS map") -> dict:
    """A ViT record's gallery columns: the last layer's CLS map (``map_title``: "mean-token map" without a CLS
    token), the rollout, and one head of the last layer (the last head when ``head`` is beyond them)."""
    columns = {f"{map_title} ({name})": record.spatial[-1][:n_images], f"rollout ({name})": record.rollout[-1][:n_images]}
    if record.heads:
        heads = record.heads[-1]  # [B, heads, H, W]
        head = min(max(int(head), 0), heads.shape[1] - 1)
        columns[f"head {head} ({name})"] = heads[:n_images, head]
    return columns


def image_trace(picture) -> go.Heatmap:
    return go.Heatmap(z=picture, colorscale="Greys", reversescale=True, zmin=0, zmax=1, showscale=False,
                      hovertemplate="x %{x}, y %{y}<br>pixel %{z:.2f}<extra></extra>")


def mark_square(fig: go.Figure, label: str, box, row: int, col: int) -> None:
    """Outline pixels ``x0 <= x < x1``, ``y0 <= y < y1`` of one subplot and write ``label`` on it."""
    x0, y0, x1, y1 = box
    fig.add_shape(type="rect", x0=x0 - 0.5, y0=y0 - 0.5, x1=x1 - 0.5, y1=y1 - 0.5, line=dict(color="#00e5ff", width=2),
                  row=row, col=col)
    fig.add_annotation(text=label, x=(x0 + x1 - 1) / 2, y=y0 - 0.5, yanchor="bottom", showarrow=False,
                       font=dict(size=9, color="#00e5ff"), row=row, col=col)


def map_trace(values, title: str, show_scale: bool) -> go.Heatmap:
    return go.Heatmap(z=values, name=title, colorscale=MAP_COLORS, zmin=0, zmax=1, opacity=MAP_OPACITY, showscale=show_scale,
                      colorbar=dict(title=dict(text="attention"), thickness=10, len=0.5, y=1, yanchor="top"),
                      hovertemplate=f"{title}<br>x %{{x}}, y %{{y}}<br>value %{{z:.3f}}<extra></extra>")


def channel_bars(channel_weights, title: str = "", width: int | None = None) -> go.Figure:
    """One bar chart per stage of the channel weights ``[C]`` of one image, on a fixed 0..1 axis."""
    n_stages = max(len(channel_weights), 1)
    fig = make_subplots(rows=1, cols=n_stages, subplot_titles=[f"stage {s + 1}" for s in range(n_stages)],
                        horizontal_spacing=0.12, shared_yaxes=True)
    for s, weights in enumerate(channel_weights):
        weights = np.asarray(weights, dtype=float)
        step = max(1, len(weights) // 4)  # ticks after channel 0, clear of the corner's "0" of the weight axis
        fig.update_xaxes(tickvals=list(range(step, len(weights), step)), row=1, col=s + 1)
        fig.add_trace(go.Bar(x=np.arange(len(weights)), y=weights, marker_color="#6a3d9a", showlegend=False,
                             hovertemplate=f"stage {s + 1}<br>channel %{{x}}<br>weight %{{y:.3f}}<extra></extra>"),
                      row=1, col=s + 1)
    fig.update_xaxes(title_text="channel")
    fig.update_yaxes(range=[0, 1], title_text="channel weight", col=1)
    fig.update_layout(title=dict(text=title, font=dict(size=13)), height=240, width=width, bargap=0.1,
                      margin=dict(l=50, r=20, t=60, b=40))
    return fig


def localization_history(snapshots) -> dict:
    """``{map name: (steps, scores)}`` from the snapshots of a net's probe (records with ``localization``)."""
    history: dict = {}
    for snapshot in snapshots:
        for name, score in snapshot.maps.localization.items():
            steps, scores = history.setdefault(name, ([], []))
            steps.append(snapshot.step)
            scores.append(score)
    return history


def named_maps(per_net: dict, vision_transformers) -> dict:
    """``{net: {map: value}}`` under the names the localization figure gives its lines: the first CNN's stages,
    every CNN's Grad-CAM ("Grad-CAM (net)"), and each Vision Transformer's maps ("net CLS map", ...)."""
    stages, cams, vits = {}, {}, {}
    for net, maps in per_net.items():
        if net in vision_transformers:
            vits.update({f"{net} {kind}": value for kind, value in maps.items()})
            continue
        stages = stages or {kind: value for kind, value in maps.items() if kind != "Grad-CAM"}
        if "Grad-CAM" in maps:
            cams[f"Grad-CAM ({net})"] = maps["Grad-CAM"]
    return {**stages, **cams, **vits}


def localization_lines(runs: dict) -> dict:
    """The lines of the localization figure from each net's snapshots (net name -> snapshots), by ``named_maps``."""
    return named_maps({name: localization_history(snapshots) for name, snapshots in runs.items()},
                      {name for name, snapshots in runs.items() if snapshots and snapshots[-1].maps.rollout})


def localization_figure(lines: dict, width: int | None = None) -> go.Figure:
    """Localization over training: one line per map (``lines``: name -> (steps, scores)); 1.0 is a uniform map."""
    fig = go.Figure()
    for (name, (steps, scores)), color in zip(lines.items(), LOCALIZATION_COLORS):
        fig.add_trace(go.Scatter(x=list(steps), y=list(scores), name=name, mode="lines+markers",
                                 line=dict(color=color, dash="dot" if "Grad-CAM" in name else None)))
    fig.add_hline(y=1.0, line=dict(color="#888", dash="dash"), annotation_text="uniform",
                  annotation_position="bottom right")
    title = "localization: map mass in the object's box ÷ box area" if lines else "localization: this data has no boxes"
    fig.update_layout(title=dict(text=title, font=dict(size=13)),
                      height=300, width=width, margin=dict(l=50, r=20, t=50, b=40), xaxis_title="step",
                      yaxis=dict(title="× uniform", rangemode="tozero"),
                      legend=dict(font=dict(size=10), orientation="h", y=-0.25))
    return fig


def deletion_figure(test, width: int | None = None) -> go.Figure:
    """Deletion and insertion of every map (``test``: a ``MapTest``), named as the localization figure names them,
    each beside a random order of the same images' pixels. Deletion is AOPC, the mean fall of the predicted class's
    probability as the map's top pixels go black first; insertion the mean rise from a black image as they come
    back first. A map that names the pixels the net uses beats the random order in both."""
    rows = named_maps(test.curves, {net for net, maps in test.curves.items() if "rollout" in maps})
    names = list(rows)[::-1]  # plotly draws the first category at the bottom
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("deletion: mean fall of p(class)", "insertion: mean rise of p(class)"))
    for col, kind in enumerate(("deletion", "insertion"), start=1):
        for order, color, field in (("the map's order", "#d62728", kind), ("random order", "#b0b0b0", f"random_{kind}")):
            values = [getattr(rows[name], field) for name in names]
            fig.add_trace(go.Bar(y=names, x=values, orientation="h", name=order, marker_color=color, legendgroup=order,
                                 showlegend=col == 1, hovertemplate=f"%{{y}}<br>{order}: %{{x:.3f}}<extra>{kind}</extra>"),
                          row=1, col=col)
    fig.update_xaxes(rangemode="tozero")
    fig.update_annotations(font=dict(size=12))
    fig.update_layout(barmode="group", height=190 + 34 * len(names), width=width, margin=dict(l=10, r=20, t=110, b=30),
                      title=dict(text=f"deletion and insertion: step {test.step}, {test.images} test images",
                                 font=dict(size=13), yref="container", y=0.97),
                      legend=dict(font=dict(size=11), orientation="h", x=0, y=1.09, yanchor="bottom"))
    return fig


def head_grid_figure(record) -> go.Figure:
    """Every layer (rows) and head (columns) of a pretrained ViT's CLS maps over its one image (``record``: an
    ImageAttention with ``heads``), the image first in each row."""
    n_layers, n_heads = len(record.heads), record.heads[0].shape[1]
    columns = {f"head {h}": np.stack([np.asarray(record.heads[layer][0, h]) for layer in range(n_layers)])
               for h in range(n_heads)}
    images = np.repeat(np.asarray(record.images), n_layers, axis=0)
    return gallery_figure(images, columns, [f"layer {layer}" for layer in range(n_layers)],
                          height_per_row=max(60, min(150, 900 // (n_heads + 1))))


def pretrained_vit_figure(record, layer: int, head: int, title: str) -> go.Figure:
    """One image through a pretrained ViT: the CLS map of ``head`` in ``layer``, of all heads, and the rollout."""
    columns = {f"CLS map, layer {layer} head {head}": record.heads[layer][:, head],
               f"CLS map, layer {layer} (mean of heads)": record.spatial[layer],
               f"rollout to layer {layer}": record.rollout[layer]}
    return gallery_figure(record.images, columns, [title], height_per_row=230)
