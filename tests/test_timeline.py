"""A training timeline exported as an animated GIF and as an HTML page, from real snapshots."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.maps import AttentionMaps, Snapshot
from explorer.views.timeline import colour, frame_image, timeline_figure, timeline_gif, timeline_html


def snapshots(n_steps: int = 5, n_heads: int = 4, n_tokens: int = 6):
    torch.manual_seed(0)
    out = []
    for step in range(n_steps):
        weights = torch.softmax(torch.randn(2, n_heads, n_tokens, n_tokens) * (step + 1), dim=-1)
        out.append(Snapshot(step * 10, AttentionMaps(tokens=[str(i) for i in range(n_tokens)], weights=weights)))
    return out


def test_colour_scale_runs_from_light_to_dark():
    assert tuple(colour(np.array([[0.0]]))[0, 0]) == (247, 251, 255)
    assert tuple(colour(np.array([[1.0]]))[0, 0]) == (8, 48, 107)


def test_gif_has_one_frame_per_snapshot_and_shows_the_weights():
    data = timeline_gif(snapshots(), layer=1)
    gif = Image.open(io.BytesIO(data))
    assert gif.format == "GIF" and gif.n_frames == 5
    frame = np.array(frame_image(snapshots()[-1].maps, 1, 40).convert("RGB"))
    assert frame.min() < 100  # dark cells where a head puts its weight


def test_gif_frames_are_capped():
    assert Image.open(io.BytesIO(timeline_gif(snapshots(30), max_frames=7))).n_frames == 7


def test_html_animation_has_a_frame_per_step_and_works_offline():
    figure = timeline_figure(snapshots(), layer=0)
    assert [f.name for f in figure.frames] == ["0", "10", "20", "30", "40"]
    np.testing.assert_allclose(np.array(figure.frames[-1].data[2].z), snapshots()[-1].maps.head(0, 2).numpy(), atol=1e-6)
    page = timeline_html(snapshots()).decode()
    assert not re.search(r"<script[^>]*\bsrc=", page) and "Plotly.newPlot" in page  # plotly.js inlined


def test_no_snapshots_or_a_wrong_layer_is_a_clear_error():
    with pytest.raises(ValueError, match="train for a few steps"):
        timeline_gif([])
    with pytest.raises(ValueError, match="layers 0 to 1"):
        timeline_html(snapshots(), layer=5)
