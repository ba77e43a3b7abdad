"""Training CBAM nets with the shared Trainer, checkpoints, and the Vision panel (CBAM net, plain CNN and ViT)
driven from Python."""

import io
from datetime import datetime, timezone

import numpy as np
import pytest
import torch
from datasets import DatasetDict
from PIL import Image

from explorer import checkpoints
from explorer.data.images import make_shapes
from explorer.models.cbam import CBAMNet, probe_maps
from explorer.models.cbam import PRESETS
from explorer.sessions.vision import VisionSession
from explorer.training import Trainer
from explorer.widgets.vision import VisionPanel


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(n_train=600, n_test=200, seed=0)


def test_short_training_on_shapes_beats_chance_by_a_wide_margin(shapes):
    torch.manual_seed(0)
    trainer = Trainer(CBAMNet(4), shapes, lr=3e-3, seed=0)
    before = trainer.evaluate()["accuracy"]
    trainer.run(60)
    after = trainer.evaluate()["accuracy"]
    assert after >= 0.6 > before + 0.2  # chance is 0.25 with four shapes
    assert trainer.history[-1].loss < trainer.history[0].loss


def test_probe_snapshots_hold_maps_and_localization(shapes):
    rows = shapes["test"].with_format("torch")[:8]
    trainer = Trainer(CBAMNet(4, width=8, ratio=4), shapes, probe=lambda m: probe_maps(m, rows["pixel_values"], rows["bbox"]),
                      snapshot_every=5)
    trainer.run(10)
    assert [snapshot.step for snapshot in trainer.snapshots] == [0, 5, 10]
    record = trainer.snapshots[-1].maps
    assert record.n_stages == 3 and set(record.localization) >= {"stage 1", "Grad-CAM"}


def test_checkpoint_round_trip_keeps_weights_config_and_history(tmp_path, shapes):
    model = CBAMNet(4, width=8, ratio=4, kernel_size=3, pool=("avg", "lse"), merge="concat", order="parallel")
    trainer = Trainer(model, shapes)
    trainer.run(3)
    path = checkpoints.save(model, tmp_path / "cbam.safetensors", history=trainer.history)
    loaded, history = checkpoints.load(path)
    images = torch.rand(2, 1, 32, 32)
    model.eval(), loaded.eval()
    torch.testing.assert_close(loaded(images), model(images))
    assert loaded.config["merge"] == "concat" and len(history) == 3


def test_nan_guard_pauses_and_keeps_the_weights(shapes):
    broken = shapes["train"].select(range(64)).map(lambda row: {"pixel_values": np.full((1, 32, 32), np.nan, "float32")})
    data = DatasetDict(train=broken, test=shapes["test"])
    model = CBAMNet(4, width=8, ratio=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, data)
    trainer.run(3)
    assert trainer.step == 0 and "NaN" in trainer.message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.fixture(scope="module")
def panel():
    return VisionPanel(VisionSession(n_train=300, n_test=100))


def gallery_maps(panel):
    """The maps drawn over the first image: per column a grey image trace, then the map."""
    return [np.array(trace.z) for trace in panel.figures["gallery"].data[2:11:2]]


def train(panel, steps):
    panel.session.train(steps)
    panel.wait()


def test_panel_trains_the_three_nets_and_redraws_the_overlay(panel):
    reset(panel)
    before = gallery_maps(panel)
    train(panel, 20)
    assert [t.step for t in panel.session.trainers.values()] == [20, 20, 20]
    assert "test accuracy" in panel.status.text and panel.status.kind == "ok"
    assert not np.allclose(before[0], gallery_maps(panel)[0])  # the stage-1 spatial map over image 1 changed
    assert len(panel.figures["curves"].data[0].x) == 20
    assert len(panel.figures["localization"].data[0].x) == 3  # snapshots at steps 0, 10, 20


def reset(panel):
    panel.session.reset()
    panel.wait()


@pytest.mark.parametrize("control, value, words", [
    ("ratio", 0, "ratio"), ("lr", -1.0, "learning rate"), ("epochs", 0, "at least 1 epoch")])
def test_bad_settings_are_explained_and_the_trained_nets_kept(panel, control, value, words):
    reset(panel)
    train(panel, 10)
    model = panel.session.trainers["cbam"].model
    widget = panel.options.get(control) or getattr(panel, control)
    old, widget.value = widget.value, value
    assert panel.status.kind == "error" and words in panel.status.text
    assert widget.value == old  # the control shows the value that holds
    assert panel.session.trainers["cbam"].model is model and panel.session.trainers["cbam"].step == 10


def test_no_pooling_ticked_is_explained(panel):
    for box in panel.pools.values():
        box.value = False
    assert panel.status.kind == "error" and "pooling" in panel.status.text
    panel.session.apply_preset("CBAM: paper defaults")
    panel.wait()
    assert panel.pools["avg"].value and panel.pools["max"].value and panel.status.kind == "ok"


def test_presets_rebuild_the_nets(panel):
    panel.session.apply_preset("CBAM: spatial attention only")
    panel.wait()
    assert not panel.options["channel"].value and panel.status.kind == "ok"
    cbam_model = panel.session.trainers["cbam"].model
    assert cbam_model.cbams[0].channel_gate is None and panel.session.trainers["cbam"].step == 0
    assert len(panel.figures["gallery"].data) == GALLERY_TRACES(stages=3)
    with pytest.raises(ValueError, match="no preset called .* Choose one of"):
        panel.session.apply_preset("nonsense")
    panel.session.apply_preset("CBAM: paper defaults")
    panel.wait()
    assert set(PRESETS) >= {"CBAM: average vs max pooling"}


def GALLERY_TRACES(stages, rows=4):
    return rows * (1 + 2 * (stages + 2 + 3))  # image, CBAM stages, 2 Grad-CAMs, the ViT's CLS map, rollout, head


def png(width=40, height=30):
    buffer = io.BytesIO()
    Image.new("L", (width, height), 200).save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_draws_maps_of_your_image_and_rejects_non_images(panel):
    panel.upload.value = ({"name": "notes.txt", "type": "text/plain", "size": 5, "content": memoryview(b"hello"),
                           "last_modified": datetime.now(timezone.utc)},)
    assert panel.status.kind == "error" and "not an image" in panel.status.text
    panel.upload.value = ({"name": "mine.png", "type": "image/png", "size": 10, "content": memoryview(png()),
                           "last_modified": datetime.now(timezone.utc)},)
    assert panel.status.kind == "ok" and "mine.png" in panel.status.text
    figure = panel.yours.children[-1]
    assert figure.figure.layout.meta == "ae-cbam-yours" and len(figure.data) == 1 + 2 * 8


def test_bad_folder_keeps_the_data_and_nets(panel, tmp_path):
    session = panel.session
    model = session.trainers["cbam"].model
    panel.dataset.value = "folder"
    panel.folder.value = str(tmp_path / "missing")
    session.load_data()
    panel.wait()
    assert panel.status.kind == "error" and "no folder" in panel.status.text
    assert session.data_name == "shapes" and session.trainers["cbam"].model is model
    panel.dataset.value = "shapes"
    panel.wait()


def test_save_and_load_the_three_nets(panel, tmp_path):
    session = panel.session
    reset(panel)
    train(panel, 10)
    panel.path.value = str(tmp_path / "lab")
    session.save()
    expected = {name: t.model.state_dict() for name, t in session.trainers.items()}
    panel.options["kernel_size"].value = 3
    reset(panel)
    session.load()
    panel.wait()
    assert panel.options["kernel_size"].value == 7  # the controls show the loaded net's settings
    assert panel.status.kind == "ok" and [t.step for t in session.trainers.values()] == [10, 10, 10]
    for name, trainer in session.trainers.items():
        assert all(torch.equal(expected[name][k], v) for k, v in trainer.model.state_dict().items())
    panel.path.value = str(tmp_path / "nothing")
    session.load()
    panel.wait()
    assert panel.status.kind == "error" and [t.step for t in session.trainers.values()] == [10, 10, 10]


def test_digits_and_your_own_colour_folder_train_with_fresh_nets(panel, tmp_path):
    session = panel.session
    panel.dataset.value = "digits"
    panel.wait()
    assert panel.status.kind == "ok" and "10 classes" in panel.status.text
    assert session.trainers["cbam"].model.config["n_classes"] == 10
    assert "no boxes" in panel.figures["localization"].figure.layout.title.text
    for k, name in enumerate(("red", "blue")):
        (tmp_path / name).mkdir()
        for i in range(6):
            colour = (200, 30 * i, 0) if k == 0 else (0, 30 * i, 200)
            Image.new("RGB", (40, 40), colour).save(tmp_path / name / f"{i}.png")
    panel.dataset.value = "folder"
    panel.folder.value = str(tmp_path)
    session.load_data()
    panel.wait()
    assert panel.status.kind == "ok" and "2 classes" in panel.status.text
    assert session.trainers["cbam"].model.config["in_channels"] == 3
    train(panel, 3)
    assert panel.status.kind == "ok" and session.trainers["plain"].step == 3
    panel.dataset.value = "shapes"
    panel.wait()
    assert session.data_name == "shapes"
