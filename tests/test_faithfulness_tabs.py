"""The "how faithful is this map?" section of the Pretrained and Language model tabs, from plain Python and in the
kernel-less panels: it runs in the worker, is kept per input, never reruns on a head switch, and keeps the previous
result on a refusal or Stop."""

from __future__ import annotations

import pytest

from explorer.faithfulness import METHODS
from explorer.models import language
from explorer.sessions.language import LanguageSession
from explorer.sessions.pretrained import PretrainedSession
from tests.test_language import tiny_gpt2  # noqa: F401  (the fixture)

SHORT = "The cat sat."


@pytest.fixture(scope="module")
def encoder():
    from explorer.models import pretrained

    return pretrained.load()


@pytest.fixture
def checked(encoder):
    session = PretrainedSession(encoder=encoder, text_a=SHORT)
    assert session.wait()
    session.faithful.run()
    assert session.wait(600)
    return session


def test_the_check_reads_the_text_on_screen(checked):
    record = checked.faithful.record
    assert record.tokens == checked.reading.maps.tokens
    assert set(record.importances) == set(METHODS) and record.layer == checked.layer
    assert checked.status_kind == "ok" and "Faithfulness of 6 methods" in checked.status


def test_a_head_switch_reruns_nothing_and_the_same_input_is_kept(checked):
    runs, record = checked.faithful.runs, checked.faithful.record
    checked.update(head=3, view="layer")
    checked.faithful.run()
    assert checked.wait()
    assert checked.faithful.runs == runs and checked.faithful.record is record
    checked.update(text_a="Another text here.")
    assert checked.wait()
    assert checked.faithful.record is record  # the new text has no result yet: the old one stays on screen
    checked.update(text_a=SHORT)
    assert checked.wait() and checked.faithful.record is record


def test_too_long_a_text_is_refused_and_the_result_stays(checked):
    record = checked.faithful.record
    checked.update(text_a=" ".join(["word"] * 80))
    assert checked.wait()
    checked.faithful.run()
    assert checked.wait()
    assert "at most 64 tokens" in checked.status and checked.status_kind == "error"
    assert checked.faithful.record is record


def test_stop_ends_the_check_and_keeps_the_result(checked):
    record = checked.faithful.record
    checked.update(text_a="A different sentence to check.")
    assert checked.wait()
    checked.faithful.run()
    checked.faithful.stop()
    assert checked.wait()
    assert "stopped" in checked.status and checked.faithful.record is record


def test_the_language_tab_checks_the_picked_position(tiny_gpt2):  # noqa: F811
    session = LanguageSession(language_model=language.load(tiny_gpt2), prompt="the cat sat on the mat",
                              max_new_tokens=3)
    with pytest.raises(ValueError, match="Press Generate first"):
        session.faithful.run()
    session.generate()
    assert session.wait()
    session.update(token=4)
    session.faithful.run()
    assert session.wait(300)
    record = session.faithful.record
    assert record.tokens == session.generation.tokens[:5]
    assert f"'{session.generation.tokens[5]}'" in record.what
    runs = session.faithful.runs
    session.update(head=1)
    assert session.faithful.runs == runs and session.faithful.record is record


def test_the_panel_stars_the_method_on_screen_without_rerunning(encoder):
    from explorer.widgets.pretrained import PretrainedPanel

    panel = PretrainedPanel(PretrainedSession(encoder=encoder, text_a=SHORT, layer=5, view="mean"))
    panel.wait()
    section = panel.faithfulness
    assert section.results.layout.display == "none"
    section.run_button.click()
    panel.wait(600)
    bars = section.bars.figure
    assert len(bars.data) == len(METHODS)
    assert [a.text for a in bars.layout.annotations][0] == "raw attention ★"
    assert "raw attention ★" in section.table.value and section.progress.value == 1.0
    runs = panel.session.faithful.runs
    panel.session.update(view="rollout")
    panel.wait()
    titles = [a.text for a in section.bars.figure.layout.annotations]
    assert titles[:2] == ["raw attention", "rollout ★"]
    panel.session.update(layer=2)
    panel.wait()
    assert "★" not in section.table.value  # the maps on screen are of another layer than the check
    assert panel.session.faithful.runs == runs


def test_the_transformer_tab_checks_its_first_model_on_the_probe_input():
    from explorer.sessions.transformer_lab import TransformerLabSession
    from explorer.widgets.transformer_lab import TransformerLabPanel

    session = TransformerLabSession(task="needle", pooling="cls", layers=1, width=32)
    assert session.wait()
    panel = TransformerLabPanel(session)
    panel.faithfulness.run_button.click()
    assert session.wait(300)
    record = session.faithful.record
    names = session.runs[0].trainer.data["train"].features["input_ids"].feature.names
    assert record.tokens == tuple(names[i] for i in session.runs[0].trainer.data["test"][0]["input_ids"])
    assert record.what.startswith("log P(class ") and len(panel.faithfulness.bars.figure.data) == len(METHODS)
    assert "raw attention ★" in panel.faithfulness.table.value
    session.train(3)
    assert session.wait()
    panel.faithfulness.run_button.click()
    assert session.wait(300)
    assert session.faithful.runs == 2 and session.faithful.record is not record  # new weights, a new check
    record = session.faithful.record
    session.train(10_000)
    panel.faithfulness.run_button.click()  # the weights would change under the check
    assert "Training is running" in session.status and session.status_kind == "error"
    session.stop()
    assert session.wait(300) and session.faithful.runs == 2 and session.faithful.record is record
    with pytest.raises(ValueError, match="position"):
        session.update(faith_position=-2)


def test_the_vision_tab_puts_every_localized_map_to_deletion_and_insertion():
    from explorer.data.images import first_images
    from explorer.deletion import image_curves
    from explorer.models.cbam import grad_cam
    from explorer.sessions.vision import DELETION_IMAGES, VisionSession
    from explorer.widgets.vision import VisionPanel

    session = VisionSession(n_train=120, n_test=40, vit=True, patch_size=4, vit_heads=2, vit_layers=1, vit_width=32)
    panel = VisionPanel(session)
    session.train(10)
    assert session.wait(300)
    panel.deletion_run.click()
    assert session.wait(300) and session.status_kind == "ok"
    test = session.map_test
    assert test.step == 10 and test.images == min(DELETION_IMAGES, 40)
    bars = panel.figures["deletion"].figure.data
    localized = {trace.name for trace in panel.figures["localization"].figure.data}
    assert set(bars[0].y) == localized and len(localized) == 7  # 3 stages, 2 Grad-CAMs, the ViT's CLS map and rollout
    pixels, _, _ = first_images(session.data["test"], test.images)
    model = session.trainers["plain"].model
    reference = image_curves(model, pixels, grad_cam(model, pixels))  # the plain net's Grad-CAM, measured here
    row = list(bars[0].y).index("Grad-CAM (plain baseline)")
    assert bars[0].x[row] == pytest.approx(reference.deletion) and bars[2].x[row] == pytest.approx(reference.insertion)

    session.train(10_000)
    with pytest.raises(ValueError, match="Busy training"):
        session.measure_deletion()
    session.stop()
    assert session.wait(300) and session.map_test is test
    session.measure_deletion()
    session.stop()
    assert session.wait(300) and session.map_test is test and "stopped" in session.status
