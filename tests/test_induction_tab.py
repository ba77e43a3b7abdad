"""The induction task in the Train a Transformer tab: presets, the copy losses, each head's scores, the phase change."""

from __future__ import annotations

import pytest

from explorer.phase import phase_change_of
from explorer.sessions.transformer_lab import TransformerLabSession
from explorer.widgets.transformer_lab import TransformerLabPanel

SMALL = dict(length=8, vocab=64, lr=5e-3)  # the preset's model on shorter rows: it forms within 400 steps


@pytest.fixture
def panel():
    panel = TransformerLabPanel(TransformerLabSession(preset="2 layers vs 1 layer"))
    panel.wait()
    yield panel
    panel.session.stop_work()


def test_presets_build_attention_only_causal_models():
    session = TransformerLabSession(preset="induction heads form (Olsson et al. 2022)")
    session.wait()
    config = session.runs[0].trainer.model.config
    assert (config.n_layers, config.attention_only, config.causal, config.positional) == (2, True, True, "learned")
    assert session.runs[0].trainer.data["train"].column_names[-1] == "second_copy"
    session.apply_preset("one layer cannot")
    session.wait()
    assert [run.trainer.model.config.n_layers for run in session.runs] == [1]


def test_two_layers_against_one_side_by_side(panel):
    s = panel.session
    s.update(**SMALL)
    panel.wait()
    assert [run.name for run in s.runs] == ["A: 2 layers, 4 heads", "B: 1 layer, 4 heads"]
    s.train(400)
    panel.wait(1200)
    monitor = panel.monitor.induction
    assert monitor.layout.display is None
    two, one = (run.trainer.snapshots for run in s.runs)
    assert two[-1].induction.top_induction > 0.8 and one[-1].induction.top_induction < 0.5
    losses = monitor.losses.figure.data
    assert [trace.name for trace in losses] == ["A: 2 layers, 4 heads: second copy", "A: 2 layers, 4 heads: first copy",
                                                "B: 1 layer, 4 heads: second copy", "B: 1 layer, 4 heads: first copy"]
    assert list(losses[0].y) == [snap.induction.second_copy_loss for snap in two]
    assert len(monitor.scores.figure.data) == 2 * (8 + 4)  # induction and previous-token: 2x4 heads of A, 4 of B
    phase = phase_change_of(two)
    marks = monitor.losses.figure.layout
    assert any(shape.x0 == phase.step and shape.line.dash == "dash" for shape in marks.shapes)
    assert f"A: 2 layers, 4 heads: phase change, step {phase.step}" in marks.annotations[0].text
    assert "no head has reached an induction score of 0.5" in monitor.summary.value  # the 1-layer run
    early = next(i for i, snap in enumerate(two) if snap.step >= phase.step - 100)
    panel.monitor.timeline.value = early  # scrub back across the phase change
    assert f"before the phase change at step {phase.step}" in panel.monitor.timeline_label.value
    assert any(shape.x0 == two[early].step and shape.line.dash == "solid" for shape in monitor.losses.figure.layout.shapes)


def test_other_tasks_hide_the_induction_curves(panel):
    panel.session.update(preset="reverse with 2 layers and 4 heads")
    panel.wait()
    assert panel.monitor.induction.layout.display == "none"


@pytest.mark.parametrize("changes, words", [
    (dict(length=1), "length must be between 4 and 24"), (dict(vocab=1), "vocabulary must be between 3 and 128"),
    (dict(layers_b=5), "second model's layers must be between 1 and 4"), (dict(kind="encoder-decoder"), "encoder"),
])
def test_bad_induction_settings_are_explained_and_the_models_kept(panel, changes, words):
    s = panel.session
    runs = s.runs
    try:
        s.update(**changes)
    except ValueError as error:
        assert words in str(error)
    else:
        panel.wait()
        assert words in s.status and s.status_kind == "error"
    assert s.runs is runs or [r.trainer for r in s.runs] == [r.trainer for r in runs]
