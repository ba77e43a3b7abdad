"""Long texts: maps worked out a layer at a time from kept inputs equal transformers' output_attentions, a head
switch runs nothing, and only a few layers are ever held."""

import pytest
import torch

from explorer import heads
from explorer.models import language
from explorer.models.layer_maps import LayerMaps
from explorer.views.export import export_scope
from tests.conftest import save_tiny_gpt2


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    return save_tiny_gpt2(tmp_path_factory.mktemp("gpt2-long"), n_layer=3, n_positions=256)


def full_and_layered(model, text):
    full = model.attend(text)
    budget = model.full_maps_bytes
    model.full_maps_bytes = 0  # every text counts as long
    try:
        layered = model.attend(text)
    finally:
        model.full_maps_bytes = budget
    return full, layered


def reference(model, text):
    ids, _ = model.encode(text)
    with torch.inference_mode():
        out = model.model(torch.tensor([ids]), output_attentions=True)
    return torch.stack(out.attentions)[:, 0]


def test_layered_maps_equal_output_attentions_on_gpt2(tiny_gpt2):
    model = language.load(tiny_gpt2)
    text = "the cat sat on the mat and looked at the dog " * 4
    full, layered = full_and_layered(model, text)
    assert isinstance(layered, LayerMaps) and not isinstance(full, LayerMaps)
    expected = reference(model, text)
    for layer in range(3):
        assert torch.allclose(layered.layer(layer), expected[layer], atol=1e-6)
    assert layered.meta.next_tokens == full.meta.next_tokens
    for score in (heads.previous_token_score, heads.first_token_score, heads.self_score, heads.entropy_score):
        assert torch.allclose(score(layered), score(full), atol=1e-6)


def test_a_head_switch_computes_nothing_and_few_layers_are_kept(tiny_gpt2):
    model = language.load(tiny_gpt2)
    _, layered = full_and_layered(model, "one two three four five six seven eight nine ten")
    layered.head(0, 0)
    assert layered.computed == 1
    layered.head(0, 3), layered.mean_over_heads(0)
    assert layered.computed == 1  # same layer: nothing worked out again
    layered.head(1, 0), layered.head(2, 0)
    assert len(layered._layers) == 2 and layered.computed == 3
    with pytest.raises(ValueError, match="Layer 3 does not exist"):
        layered.layer(3)


def test_ablation_reaches_the_layered_maps(tiny_gpt2):
    model = language.load(tiny_gpt2)
    model.full_maps_bytes = 0
    text = "one two three four five six seven eight nine ten"
    base, ablated = model.attend(text), model.attend(text, ablate=[(0, 1)])
    assert torch.equal(base.layer(0), ablated.layer(0))
    assert not torch.allclose(base.layer(1), ablated.layer(1))


def test_an_export_of_long_maps_is_one_layer(tiny_gpt2):
    model = language.load(tiny_gpt2)
    _, layered = full_and_layered(model, "one two three four five six seven eight nine ten")
    one, description = export_scope(layered, 2, limit=10)
    assert one.n_layers == 1 and one.meta.layer_offset == 2 and "layer 2 only" in description
    assert torch.equal(one.weights[0], layered.layer(2))


def test_smollm_at_2048_tokens_keeps_layers_not_all_maps(smollm):
    import random

    random.seed(0)
    words = [random.choice(["cat", "dog", "river", "stone", "blue", "runs", "the", "a", "of"]) for _ in range(3000)]
    maps = smollm.attend(" ".join(words), max_tokens=2048)
    assert isinstance(maps, LayerMaps) and len(maps.tokens) == 2048
    weights = maps.layer(18)
    assert weights.shape == (9, 2048, 2048)
    assert torch.allclose(weights.sum(-1), torch.ones(9, 2048), atol=1e-4)
    assert torch.triu(weights, diagonal=1).abs().max() == 0
    tensors = {a.data_ptr(): a for _, args, kwargs in maps._inputs for value in (*args, *kwargs.values())
               for a in (value if isinstance(value, tuple) else (value,)) if isinstance(a, torch.Tensor)}
    kept = sum(a.numel() * a.element_size() for a in tensors.values())
    assert kept < 250e6  # the inputs of 30 layers (one mask shared by all); all maps would be 4.5 GB


def test_smollm_layered_layer_equals_output_attentions(smollm):
    text = "The capital of France is Paris, and the capital of Italy is Rome."
    full, layered = full_and_layered(smollm, text)
    for layer in (0, 18, 29):
        assert torch.allclose(layered.layer(layer), full.layer(layer), atol=1e-5)
