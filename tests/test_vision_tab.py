"""The Vision tab's ViT beside the two CNNs, driven from Python: its switch, its settings, its columns, Save/Load."""

import math

import numpy as np
import pytest
import torch

from explorer import checkpoints, links
from explorer.app import build_app
from explorer.models.vit import TinyViT, ViTConfig
from explorer.sessions.vision import VisionSession
from explorer.widgets.vision import VisionPanel


@pytest.fixture(scope="module")
def panel():
    return VisionPanel(VisionSession(n_train=300, n_test=100))


def fresh(panel, **settings):
    defaults = dict(vit=True, patch_size=4, vit_heads=4, vit_layers=2, vit_width=32, vit_pool="cls", vit_head=0)
    panel.session.update(**{**defaults, **settings})
    panel.wait()
    panel.session.reset()
    panel.wait()


def train(panel, steps):
    panel.session.train(steps)
    panel.wait()


def column(panel, title):
    """The map drawn over the first gallery image in the column titled ``title``."""
    figure = panel.figures["gallery"].figure
    titles = [a.text for a in figure.layout.annotations if a.text.startswith("<b>")][1:]  # without "image"
    index = [t.replace("-<br>", "-").replace("<br>", " ").strip("<b>/") for t in titles].index(title)
    return np.array(figure.data[2 + 2 * index].z)


def test_the_old_cbam_link_opens_the_vision_tab():
    app = build_app()
    app.apply_link("tab=cbam")
    assert app.tabs[app.tab.selected_index].key == "vision" and "vision" in app.panels
    assert app.link().startswith("?tab=vision") and "cbam" not in app.sessions


def test_switching_the_vit_off_and_on_keeps_the_cnns_and_their_history(panel):
    fresh(panel)
    train(panel, 10)
    session = panel.session
    cnn = session.trainers["cbam"].model
    panel.vit["vit"].value = False
    panel.wait()
    assert list(session.trainers) == ["cbam", "plain"] and session.trainers["cbam"].model is cnn
    assert session.trainers["cbam"].step == 10 and len(session.lab_view.run("cbam").evaluations) == 2
    assert not any("ViT" in a.text for a in panel.figures["gallery"].figure.layout.annotations)
    train(panel, 10)
    assert [t.step for t in session.trainers.values()] == [20, 20]
    panel.vit["vit"].value = True
    panel.wait()
    assert session.trainers["vit"].step == 0 and session.trainers["cbam"].step == 20 and panel.status.kind == "ok"
    assert column(panel, "rollout (ViT)").shape == (32, 32)


@pytest.mark.parametrize("settings, words", [
    (dict(vit_heads=3), "Valid head counts for width 32"), (dict(patch_size=5), "Valid patch sizes"),
    (dict(vit_layers=0), "1 to 8 layers"), (dict(vit_pool="max"), "Unknown ViT pooling")])
def test_bad_vit_settings_are_explained_and_the_three_nets_kept(panel, settings, words):
    fresh(panel)
    train(panel, 10)
    models = {name: t.model for name, t in panel.session.trainers.items()}
    with pytest.raises(ValueError, match=words):
        panel.session.update(**settings)
    assert {name: t.model for name, t in panel.session.trainers.items()} == models
    assert [t.step for t in panel.session.trainers.values()] == [10, 10, 10]


def test_controls_offer_only_patch_sizes_and_heads_that_fit(panel):
    fresh(panel)
    assert list(panel.vit["patch_size"].options) == [2, 4, 8]
    panel.vit["vit_width"].value = 16
    panel.wait()
    assert list(panel.vit["vit_heads"].options) == [1, 2, 4, 8, 16] and panel.session.vit_heads == 4
    assert panel.session.trainers["vit"].model.config.d_model == 16  # untrained: rebuilt at once


def test_the_picked_head_is_drawn_and_the_localization_plot_has_the_vit_lines(panel):
    fresh(panel)
    train(panel, 10)
    record = panel.session.trainers["vit"].snapshots[-1].maps
    panel.vit["vit_head"].value = 2
    np.testing.assert_allclose(column(panel, "head 2 (ViT)"), record.heads[-1][0, 2].numpy(), rtol=1e-6)
    np.testing.assert_allclose(column(panel, "CLS map (ViT)"), record.spatial[-1][0].numpy(), rtol=1e-6)
    names = [trace.name for trace in panel.figures["localization"].data]
    assert {"ViT CLS map", "ViT rollout"} <= set(names)
    assert [trace.name for trace in panel.figures["curves"].data][:3] == ["CBAM net", "plain baseline", "ViT"]


def test_save_and_load_cover_the_vit_and_a_save_without_it(panel, tmp_path):
    fresh(panel, patch_size=8, vit_pool="mean")
    train(panel, 10)
    session = panel.session
    panel.path.value = str(tmp_path / "lab")
    session.save()
    saved = {k: v.clone() for k, v in session.trainers["vit"].model.state_dict().items()}
    fresh(panel)
    session.load()
    panel.wait()
    assert panel.status.kind == "ok" and session.patch_size == 8 and session.vit_pool == "mean"
    assert session.trainers["vit"].step == 10
    assert all(torch.equal(saved[k], v) for k, v in session.trainers["vit"].model.state_dict().items())
    panel.vit["vit"].value = False
    panel.wait()
    session.save()
    assert not (tmp_path / "lab" / "vit.safetensors").exists()
    fresh(panel)
    session.load()
    panel.wait()
    assert list(session.trainers) == ["cbam", "plain"] and not panel.vit["vit"].value


def test_a_saved_vit_that_does_not_fit_the_data_is_refused_and_the_nets_kept(panel, tmp_path):
    fresh(panel)
    panel.path.value = str(tmp_path / "lab")
    panel.session.save()
    checkpoints.save(TinyViT(ViTConfig(n_classes=10, patch_size=8, d_model=16, n_heads=2)),
                     tmp_path / "lab" / "vit.safetensors")
    models = {name: t.model for name, t in panel.session.trainers.items()}
    panel.session.load()
    panel.wait()
    assert panel.status.kind == "error" and "10 classes" in panel.status.text and "Nothing was loaded" in panel.status.text
    assert {name: t.model for name, t in panel.session.trainers.items()} == models


def test_a_picked_patch_shows_its_attention_row_of_the_shown_head(panel):
    from explorer.models.vit import attention_maps

    fresh(panel, vit_head=1)
    train(panel, 5)
    session = panel.session
    session.pick_patch(x=13.0, y=9.0)  # patch size 4: column 3, row 2
    assert session.vit_patch == "r2c3" and links.decode(session.state())[1]["vit_patch"] == "r2c3"
    shown = session.patch_view()
    model, (pixels, _) = session.trainers["vit"].model, session.gallery()
    for i in range(len(pixels)):  # reference: the captured weights, indexed and upsampled by hand
        weights = attention_maps(model, pixels[i]).weights[-1, 1]  # [T, T] of the last layer, head 1
        row = weights[1 + 2 * 8 + 3, 1:].numpy().reshape(8, 8)  # the patch's row over the 8 x 8 patches
        expected = np.kron(row, np.ones((4, 4)))
        np.testing.assert_allclose(shown.maps[i].numpy(), expected / expected.max(), atol=1e-5)
    assert shown.box == (12, 8, 16, 12)
    np.testing.assert_allclose(column(panel, "r2c3, head 1 (ViT)"), shown.maps[0].numpy(), atol=1e-6)
    figure = panel.figures["gallery"].figure
    assert any(a.text == "r2c3" for a in figure.layout.annotations) and figure.layout.shapes[0].x0 == 11.5


def test_a_click_on_a_vit_map_picks_its_patch_and_other_clicks_do_not(panel):
    fresh(panel, vit_patch="")
    figure = panel.figures["gallery"]
    names = [trace.name for trace in figure.figure.data]
    cbam = names.index("stage 1")
    figure.click(cbam, {"x": 30, "y": 30})
    assert panel.session.vit_patch == ""
    figure.click(names.index("rollout (ViT)"), {"x": 2, "y": 31})
    assert panel.session.vit_patch == "r7c0" and "r7c0, head 0 (ViT)" in [t.name for t in figure.figure.data]
    panel.session.update(patch_size=8)  # another grid: the patch is dropped, not redrawn on the wrong square
    panel.wait()
    assert panel.session.vit_patch == "" and panel.session.patch_view() is None


def test_a_link_with_a_patch_draws_it_and_a_bad_patch_is_refused(panel):
    fresh(panel)
    assert panel.session.load_state(links.encode({"vit_patch": "r0c1"})) == []
    with pytest.raises(ValueError, match="r2c3"):
        panel.session.update(vit_patch="top left")
    assert panel.session.vit_patch == "r0c1"
    assert panel.session.patch_view().box == (4, 0, 8, 4)
    panel.session.update(vit_patch="r9c9")  # outside this ViT's 8 x 8 grid: nothing to draw, no error
    assert panel.session.patch_view() is None


def test_the_panel_draws_the_labs_record_and_updates_your_image_in_place(panel):
    import io

    from PIL import Image

    fresh(panel)
    train(panel, 10)
    record = panel.session.lab_view
    assert [run.name for run in record.runs] == ["cbam", "plain", "vit"] and record.status == "finished"
    curves = panel.figures["curves"].figure.data
    assert list(curves[0].x) == [row.step for row in record.run("cbam").history]
    assert list(curves[3].y) == [accuracy for _, accuracy in record.run("cbam").evaluations]
    figures = []
    for shade in (60, 200):
        buffer = io.BytesIO()
        Image.new("L", (32, 32), shade).save(buffer, format="PNG")
        panel.session.show_image(buffer.getvalue())
        figures.append(panel.yours.children[-1])
    assert figures[0] is figures[1] and figures[1].figure.layout.meta == "ae-cbam-yours"  # one figure, updated
    assert np.array(figures[1].data[0].z).mean() == pytest.approx(200 / 255, abs=0.02)  # the second image is drawn


def test_the_default_train_decays_the_rate_over_mirrored_batches_of_the_chosen_data_seed():
    from explorer.data.images import make_shapes, mirror

    session = VisionSession(n_train=128, n_test=32, data_seed=1, vit_width=32)
    try:
        first = make_shapes(n_train=128, n_test=32, seed=1)["train"].with_format("torch")[0]["pixel_values"]
        assert torch.equal(session.data["train"].with_format("torch")[0]["pixel_values"], first)
        session.train()
        assert session.wait(300) and "Finished" in session.status
        for trainer in session.trainers.values():
            rates = [row.lr for row in trainer.history]
            assert len(rates) == session.epochs * 2 == session.steps_for_epochs()  # 2 batches of 64 per epoch
            cosine = len(rates) - min(20, len(rates) // 2)  # the steps after the warm-up
            assert max(rates) == pytest.approx(session.lr)
            assert rates[-1] == pytest.approx(session.lr * 0.5 * (1 + math.cos(math.pi * (cosine - 1) / cosine)))
            assert trainer.augment is mirror
    finally:
        session.stop_work()
