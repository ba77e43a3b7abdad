"""The Train a Transformer panel without a browser: training redraws, bad input is explained, nothing is lost."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from explorer.attention import valid_head_counts
from explorer.widgets.transformer_lab import PRESETS, TransformerLabPanel


@pytest.fixture
def panel():
    panel = TransformerLabPanel()
    yield panel
    panel.session.stop_work()


def train(panel, steps):
    panel.steps.value = steps
    panel.train()
    panel.wait()


def drawn_heads(panel, run=0):
    return [list(map(list, trace.z)) for trace in panel.monitor.grid_views[run].data]


def test_training_moves_the_step_counter_curves_heatmaps_and_timeline(panel):
    before = drawn_heads(panel)
    assert len(before) == 8 and panel.monitor.grid_views[0].figure.layout.annotations[5].text == "layer 1 · head 1"
    train(panel, 40)
    trainer = panel.runs[0].trainer
    assert "step 40" in panel.monitor.step_label.value
    assert list(panel.monitor.curves.data[0].x)[-1] == 40 and len(panel.monitor.curves.data[1].y) == 40
    after = drawn_heads(panel)
    assert after != before
    assert after[0] == trainer.snapshots[-1].maps.weights[0, 0].tolist()
    assert panel.monitor.timeline.max == len(trainer.snapshots) - 1 == 4
    assert "Test set" in panel.status.text and "sequence accuracy" in panel.status.text
    assert "correct at step 40" in panel.monitor.prediction_views[0].value
    panel.monitor.timeline.value = 0  # scrub back to the untrained model
    assert drawn_heads(panel) == before and panel.monitor.timeline_label.value == "step 0"


def test_heads_offered_always_divide_the_width(panel):
    for width in (16, 32, 64, 128):
        panel.arch["width"].value = width
        panel.wait()
        assert all(width % h == 0 for h in panel.arch["heads"].options)
        assert set(panel.arch["heads"].options) <= set(valid_head_counts(width))
        assert panel.runs[0].trainer.model.config.d_model == width


def test_changing_the_architecture_while_training_asks_to_stop_first(panel):
    panel.steps.value = 100_000
    panel.train()
    assert panel.session.home.wait_until(lambda: panel.runs[0].trainer.step > 0, 30)  # training has started
    model = panel.runs[0].trainer.model
    panel.arch["layers"].value = 3
    assert "press Stop" in panel.status.text and panel.arch["layers"].value == 2
    panel.train()
    assert "already running" in panel.status.text
    panel.stop()
    panel.wait()
    panel.stop()
    assert "not running" in panel.status.text
    trainer = panel.runs[0].trainer
    assert trainer.model is model and [r.step for r in trainer.history] == list(range(1, trainer.step + 1))


def test_bad_settings_are_explained_and_keep_the_model(panel):
    model = panel.runs[0].trainer.model
    panel.steps.value = 0
    assert "positive whole number" in panel.status.text and panel.steps.value == 300
    panel.lr.value = -1
    assert "learning rate" in panel.status.text and panel.lr.value == pytest.approx(1e-3)
    assert panel.runs[0].trainer.model is model and panel.runs[0].trainer.history == []


def test_a_diverging_learning_rate_pauses_with_a_message_and_keeps_the_history(panel):
    train(panel, 5)
    panel.lr.value = 1e30
    train(panel, 50)
    trainer = panel.runs[0].trainer
    assert "NaN" in panel.status.text and "Lower the learning rate" in panel.status.text
    assert [r.step for r in trainer.history] == list(range(1, trainer.step + 1))
    assert trainer.step < 55


def test_comparison_preset_trains_two_models_on_the_same_data(panel):
    panel.apply_preset("reverse: 1 head vs 4 heads")
    panel.wait()
    a, b = panel.runs
    assert (a.trainer.model.config.n_heads, b.trainer.model.config.n_heads) == (4, 1)
    assert a.trainer.data is b.trainer.data
    train(panel, 20)
    assert len(a.trainer.history) == len(b.trainer.history) == 20
    assert len(panel.monitor.grids.children) == 2 and len(panel.monitor.grid_views[1].data) == 2
    assert panel.monitor.curves.data[2].visible and panel.monitor.curves.data[2].name == "B: 1 head"
    assert "A: 4 heads" in panel.status.text and "B: 1 head" in panel.status.text


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds(panel, name):
    panel.apply_preset(name)
    panel.wait()
    assert panel.runs and "Press Train" in panel.status.text
    assert panel.path.value == f"checkpoints/{panel.arch['task'].value}"  # follows the task until typed over


def test_unknown_preset_lists_the_names(panel):
    with pytest.raises(ValueError, match="no preset called .* Choose one of"):
        panel.apply_preset("nonsense")


def test_save_and_load_continue_the_run(panel, tmp_path):
    train(panel, 10)
    panel.path.value = str(tmp_path / "run")
    panel.save()
    assert "Saved" in panel.status.text
    weights = panel.runs[0].trainer.model.head.weight.clone()
    panel.arch["heads"].value = 2
    panel.wait()
    panel.load()
    trainer = panel.runs[0].trainer
    assert "Loaded" in panel.status.text and trainer.step == 10 and panel.arch["heads"].value == 4
    assert trainer.model.head.weight.equal(weights)
    train(panel, 5)
    assert [r.step for r in trainer.history] == list(range(1, 16))


def test_loading_a_checkpoint_of_another_task_is_refused(panel, tmp_path):
    panel.path.value = str(tmp_path / "run")
    panel.save()
    panel.apply_preset("needle with a [CLS] token")
    panel.wait()
    model = panel.runs[0].trainer.model
    panel.path.value = str(tmp_path / "run")
    panel.load()
    assert "another task" in panel.status.text and panel.runs[0].trainer.model is model
    panel.path.value = str(tmp_path / "nowhere")
    panel.load()
    assert "no checkpoint" in panel.status.text


def upload(panel, name, content: bytes):
    panel.upload.value = ({"name": name, "type": "text/plain", "size": len(content), "content": memoryview(content),
                           "last_modified": datetime.datetime(2026, 1, 1)},)
    panel.wait()


def test_uploaded_text_becomes_a_causal_next_character_task(panel):
    upload(panel, "poem.txt", b"the quick brown fox jumps over the lazy dog. " * 30)
    assert panel.arch["task"].value == "text: poem.txt"
    config = panel.runs[0].trainer.model.config
    assert config.causal and config.vocab_size == len(set("the quick brown fox jumps over the lazy dog. "))
    train(panel, 5)
    assert panel.runs[0].trainer.step == 5


def test_empty_or_too_large_uploads_are_refused(panel):
    model = panel.runs[0].trainer.model
    upload(panel, "empty.txt", b"")
    assert "empty" in panel.status.text
    upload(panel, "big.txt", b"x" * 3_000_000)
    assert "MB" in panel.status.text
    assert panel.runs[0].trainer.model is model and panel.arch["task"].value == "reverse"


def test_curves_are_thinned_but_keep_the_last_step():
    from explorer.views.training import curve_data

    from explorer.training import HistoryRow

    history = [HistoryRow(step=i, loss=1.0 / i, accuracy=0.0, lr=1e-3) for i in range(1, 1001)]
    for rows in (history, tuple(history[:999])):  # a trainer's list, or a LabView's tuple
        steps, losses = curve_data(rows, "loss", max_points=100)
        assert len(steps) <= 101 and steps[0] == 1 and steps[-1] == len(rows)
        assert losses[-1] == 1.0 / len(rows)


def test_prediction_marks_each_wrong_token():
    import torch

    from explorer.maps import AttentionMaps, Snapshot
    from explorer.views.training import prediction_html

    maps = AttentionMaps(tokens=["1", "2", "3"], weights=torch.full((1, 1, 3, 3), 1 / 3))
    shown = prediction_html(Snapshot(7, maps, prediction=("3", "1", "1"), target=("3", "2", "1")), title="A")
    assert "2 of 3 correct at step 7" in shown
    assert shown.count("#ffd7d5") == 1 and shown.count("#dafbe1") == 2


def test_attention_pooling_weights_are_shown_under_the_input(panel):
    panel.apply_preset("majority with attention pooling")
    panel.wait()
    train(panel, 5)
    shown = panel.monitor.prediction_views[0].value
    weights = panel.runs[0].trainer.snapshots[-1].pooling
    assert "pooling %" in shown and f">{100 * weights[0]:.0f}<" in shown and len(weights) == 10


def test_encoder_decoder_probe_shows_the_source_as_input():
    import torch

    from explorer.maps import AttentionMaps, Snapshot
    from explorer.views.training import prediction_html

    maps = AttentionMaps(tokens=["c", "b", "a"], key_tokens=["a", "b", "c"], weights=torch.full((1, 1, 3, 3), 1 / 3))
    input_row = prediction_html(Snapshot(1, maps, prediction=("c", "b", "a"), target=("c", "b", "a"))).split("</tr>")[0]
    assert input_row.index(">a<") < input_row.index(">b<") < input_row.index(">c<")


def test_export_timeline_as_gif_and_html_after_training():
    import io

    from PIL import Image

    panel = TransformerLabPanel()
    bar, sent = panel.export_bar, []
    bar.downloader.send = lambda content, buffers=None: sent.append((content, buffers))
    bar.target.value = "timeline"
    bar.export()
    assert panel.status.kind == "error" and "train for a few steps" in panel.status.text
    panel.runs[0].trainer.run(20)
    bar.format.value = "gif"
    bar.export()
    gif = Image.open(io.BytesIO(sent[-1][1][0]))
    assert gif.n_frames == len(panel.runs[0].trainer.snapshots)
    bar.format.value = "html"
    bar.export()
    assert sent[-1][0]["mime"] == "text/html" and panel.status.kind == "ok"


def test_scrubbing_back_moves_the_header_and_the_curves_mark_and_a_clicked_head_opens_large(panel):
    train(panel, 40)
    monitor = panel.monitor
    assert "step 40" in monitor.step_label.value and "scrubbed" not in monitor.step_label.value
    assert [shape.x0 for shape in monitor.curves.figure.layout.shapes] == [40, 40]
    monitor.timeline.value = 2  # the snapshot of step 20
    assert "step 20" in monitor.step_label.value and "training is at step 40" in monitor.step_label.value
    history = panel.runs[0].trainer.history
    assert f"{[row.loss for row in history if row.step == 20][0]:.4f}" in monitor.step_label.value
    assert [shape.x0 for shape in monitor.curves.figure.layout.shapes] == [20, 20]
    monitor.grid_views[0].click(6, {"index": [0, 0]})  # layer 1, head 2 of a 2 x 4 grid
    snapshot = panel.runs[0].trainer.snapshots[2]
    assert monitor.large.layout.display is None and "layer 1, head 2 at step 20" in monitor.large.map.title
    assert np.allclose(monitor.large.map.matrix, snapshot.maps.head(1, 2).numpy(), atol=1e-3)
    monitor.timeline.value = 4  # the large head follows the timeline
    assert "at step 40" in monitor.large.map.title
    assert "step 40" in monitor.grid_words.value and "Click a head" in monitor.grid_words.value
