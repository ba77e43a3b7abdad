"""The Mechanism panel and its toy model, driven from Python as a user would through the controls."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.models.mechanism import PRESETS, ToyAttention, parse_vector
from explorer.widgets.mechanism import MechanismPanel


def drawn_weights(panel):
    return np.array(panel.weight_fig.data[0].z, dtype=float)


def test_toy_attention_matches_a_hand_computation():
    toy = ToyAttention.preset("one query matches one key")
    result = toy.run("dot", temperature=0.5)
    q, k, v = toy.queries[1], toy.keys, toy.values
    scores = torch.tensor([float(q @ kj) for kj in k])
    weights = torch.exp(scores / 0.5) / torch.exp(scores / 0.5).sum()
    torch.testing.assert_close(result.weights[1], weights)
    torch.testing.assert_close(result.context[1], weights @ v)


def test_every_preset_runs_with_every_score():
    for name in PRESETS:
        toy = ToyAttention.preset(name)
        for score in ("dot", "scaled_dot", "general", "additive"):
            result = toy.run(score)
            torch.testing.assert_close(result.weights.sum(-1), torch.ones(len(toy.tokens)))


def test_all_keys_alike_gives_uniform_weights():
    result = ToyAttention.preset("all keys alike").run("scaled_dot")
    torch.testing.assert_close(result.weights, torch.full((4, 4), 0.25))


@pytest.mark.parametrize("text", ["", "abc", "1", "1, 2, 3", "nan, 1", "1,,"])
def test_bad_vector_entries_are_clear_errors(text):
    if text == "1,,":
        assert parse_vector("1, 2") == (1.0, 2.0)
        return
    with pytest.raises(ValueError, match="number"):
        parse_vector(text)


def test_changing_score_and_temperature_redraws_in_place():
    panel = MechanismPanel()
    figure = panel.weight_fig
    before = drawn_weights(panel)
    panel.score.value = "additive"
    assert panel.weight_fig is figure  # the same on-screen figure, updated
    after = drawn_weights(panel)
    assert not np.allclose(before, after)
    panel.temperature.value = 0.1
    assert drawn_weights(panel).max(axis=1).mean() > after.max(axis=1).mean()


def test_bad_temperature_keeps_the_view_and_says_why():
    panel = MechanismPanel()
    before = drawn_weights(panel)
    panel.temperature_text.value = "0"
    assert panel.status.kind == "error" and "positive" in panel.status.text
    np.testing.assert_allclose(drawn_weights(panel), before)
    panel.temperature_text.value = "banana"
    assert "must be a finite number" in panel.status.text and "banana" in panel.status.text


def test_typed_vector_changes_the_weights_and_bad_text_is_explained():
    panel = MechanismPanel()
    before = drawn_weights(panel)
    panel.entries[0][1].value = "3, 3"  # the key of the first token
    assert not np.allclose(drawn_weights(panel), before)
    panel.entries[0][1].value = ""
    assert panel.status.kind == "error" and "empty" in panel.status.text


def test_masking_every_key_of_a_row_gives_zeros_not_nan():
    panel = MechanismPanel()
    for key in range(4):
        panel.toggle_mask_cell(1, key)
    weights = drawn_weights(panel)
    assert panel.mask_kind.value == "custom"
    assert np.all(weights[1] == 0) and np.all(np.isfinite(weights))
    assert "attend to nothing" in panel.status.text


def test_causal_mask_zeroes_the_upper_triangle():
    panel = MechanismPanel()
    panel.mask_kind.value = "causal"
    weights = drawn_weights(panel)
    assert np.all(np.triu(weights, 1) == 0)
    assert math.isclose(weights[0, 0], 1.0, rel_tol=1e-6)


def test_steps_show_the_chosen_formula_and_numbers():
    panel = MechanismPanel()
    panel.score.value = "additive"
    panel.query.value = "cat"
    assert r"\tanh" in panel.steps.value and "'cat'" in panel.steps.value


def test_presets_switch_tokens_and_unknown_preset_is_an_error():
    panel = MechanismPanel()
    panel.apply_preset("a distractor")
    assert list(panel.weight_fig.data[0].x) == list(PRESETS["a distractor"][0])
    with pytest.raises(ValueError, match="no preset called"):
        panel.apply_preset("nope")


def test_export_offers_figures_as_images_and_the_weights_as_data():
    import json

    panel = MechanismPanel()
    bar = panel.export_bar
    sent = []
    bar.downloader.send = lambda content, buffers=None: sent.append((content, buffers))
    bar.target.value = "attention maps"
    bar.format.value = "json"
    bar.export()
    message, buffers = sent[-1]
    assert message["event"] == "file" and message["filename"] == "mechanism-attention-maps.json"
    exported = json.loads(bytes(buffers[0]))
    np.testing.assert_allclose(np.array(exported["weights"])[0, 0], panel.session.result.weights.numpy(), atol=1e-5)
    bar.target.value = "weights"
    assert tuple(bar.format.options) == ("png", "svg")
    bar.format.value = "svg"
    bar.export()
    assert sent[-1][0] == {"event": "image", "target": "ae-weights", "format": "svg", "filename": "mechanism-weights"}


def test_a_typed_temperature_survives_the_slider_snapping_it_and_the_next_edit():
    panel = MechanismPanel()
    panel.temperature_text.value = "0.5"
    assert panel.session.temperature == 0.5
    panel.temperature.value = 10 ** -0.3  # what the page's log slider sends back: 0.5 snapped to its step
    assert panel.session.temperature == 0.5
    panel.score.value = "additive"
    assert panel.session.temperature == 0.5 and panel.temperature_text.value == "0.5"
    panel.temperature.value = 10 ** -0.2  # a real move of the slider still counts
    assert panel.session.temperature == pytest.approx(0.631, abs=1e-3)
