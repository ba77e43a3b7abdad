"""TinyViT against recomputations from its own weights; rollout by hand; its maps beside CBAM's; it learns shapes."""

import math

import pytest
import torch

from explorer.data.images import make_shapes
from explorer.maps import rollout_weights
from explorer.models.cbam import CBAMNet, cbam_maps, localization
from explorer.models.vit import (TinyViT, ViTConfig, attention_maps, patch_labels, pooled_rows, probe_vit, to_image,
                                 valid_patch_sizes, vit_attention, vit_maps)
from explorer.training import Trainer


def images(n=3, size=32, channels=1):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(1))


def attention_inputs(model, pixel_values):
    """What each block's attention read (its LayerNorm's output), kept by forward pre-hooks."""
    seen = []
    handles = [block.attention.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
               for block in model.blocks]
    try:
        model.eval()
        model(pixel_values)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def recomputed(attention, h):
    """softmax(q k^T / sqrt(d_head)) from the layer's own q and k projections, in float64."""
    b, t, _ = h.shape
    h = h.double()

    def heads(linear):
        y = h @ linear.weight.double().T + linear.bias.double()
        return y.view(b, t, attention.n_heads, attention.d_head).transpose(1, 2)

    q, k = heads(attention.q_proj), heads(attention.k_proj)
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(attention.d_head), dim=-1)


@pytest.mark.parametrize("pool, positional", [("cls", "learned"), ("mean", "sinusoidal")])
def test_attention_equals_a_recomputation_from_its_own_projections(pool, positional):
    torch.manual_seed(0)
    model = TinyViT(ViTConfig(patch_size=8, d_model=32, n_heads=4, n_layers=3, pool=pool, positional=positional))
    x = images()
    _, weights = vit_attention(model, x)  # [B, L, H, T, T]
    inputs = attention_inputs(model, x)
    n_tokens = 16 + (pool == "cls")
    assert weights.shape == (3, 3, 4, n_tokens, n_tokens)
    for layer, (block, h) in enumerate(zip(model.blocks, inputs)):
        torch.testing.assert_close(weights[:, layer].double(), recomputed(block.attention, h), atol=1e-6, rtol=1e-5)


def test_maps_are_labelled_cls_then_patches_row_by_row():
    torch.manual_seed(0)
    model = TinyViT(ViTConfig(patch_size=8, d_model=16, n_heads=2, n_layers=2))
    maps = attention_maps(model, images(1)[0])
    assert maps.tokens[:3] == ("CLS", "r0c0", "r0c1") and maps.tokens[-1] == "r3c3"
    assert maps.weights.shape == (2, 2, 17, 17)
    assert patch_labels(2, cls=False) == ["r0c0", "r0c1", "r1c0", "r1c1"]


def hand_example():
    """Two layers, two heads, three tokens (CLS, p0, p1)."""
    layer0 = torch.tensor([[[0, 1, 0], [0, 1, 0], [0, 0, 1]],
                           [[0, 0, 1], [0, 1, 0], [0, 0, 1]]], dtype=torch.float64)
    layer1 = torch.tensor([[0, 1, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.float64).expand(2, 3, 3)
    return torch.stack([layer0, layer1])[None]  # [B=1, L=2, H=2, T=3, T=3]


def test_rollout_of_a_two_layer_example_equals_the_hand_computation():
    # Layer 0: heads averaged give CLS row (0, .5, .5); with the residual, (.5, .25, .25); p0, p1 keep themselves.
    # Layer 1: 0.5 A + 0.5 I has rows (.5, .5, 0), (.5, .5, 0), (0, .5, .5); times layer 0's rollout:
    #   CLS: .5 (.5, .25, .25) + .5 (0, 1, 0) = (.25, .625, .125);  p1: .5 (0, 1, 0) + .5 (0, 0, 1) = (0, .5, .5).
    expected = torch.tensor([[[.5, .25, .25], [0, 1, 0], [0, 0, 1]],
                             [[.25, .625, .125], [.25, .625, .125], [0, .5, .5]]], dtype=torch.float64)
    rolled = rollout_weights(hand_example())
    torch.testing.assert_close(rolled[0], expected)
    torch.testing.assert_close(pooled_rows(rolled, "cls")[0], torch.tensor([[.25, .25], [.625, .125]], dtype=torch.float64))
    # Without CLS every token is a patch and the pooled output is their mean: the mean of the rows.
    torch.testing.assert_close(pooled_rows(rolled, "mean")[0, 1],
                               torch.tensor([1 / 6, 7 / 12, 1 / 4], dtype=torch.float64))


def test_patch_values_fill_their_patch_and_scale_to_one():
    config = ViTConfig(image_size=4, patch_size=2, d_model=8, n_heads=2)
    image = to_image(torch.tensor([[0.1, 0.2, 0.3, 0.4]]), config)
    assert image.shape == (1, 4, 4)
    torch.testing.assert_close(image[0, :2, :2], torch.full((2, 2), 0.25))
    torch.testing.assert_close(image[0, 2:, 2:], torch.ones(2, 2))


def test_vit_maps_have_the_shape_of_cbam_maps_and_both_go_to_localization():
    torch.manual_seed(0)
    x = images(5)
    vit = TinyViT(ViTConfig(patch_size=4, d_model=32, n_heads=4, n_layers=2))
    cbam = cbam_maps(CBAMNet(4, width=8, ratio=4), x)
    record = vit_maps(vit, x, heads=True)
    assert record.spatial[0].shape == cbam.spatial[0].shape == (5, 32, 32)
    assert len(record.spatial) == len(record.rollout) == len(record.heads) == 2
    assert record.heads[-1].shape == (5, 4, 32, 32) and record.channel == []
    assert all(float(m.amax(dim=(1, 2)).min()) == pytest.approx(1.0) for m in record.spatial + record.rollout)
    boxes = torch.tensor([[0, 0, 16, 16]] * 5)
    for maps in (cbam.spatial[0], record.spatial[-1], record.rollout[-1]):
        assert 0.0 <= localization(maps, boxes) <= 4.0  # at most all mass in a quarter of the image
    probed = probe_vit(vit, x, boxes, keep=2)
    assert set(probed.localization) == {"CLS map", "rollout"} and probed.spatial[0].shape == (2, 32, 32)
    assert probed.localization["CLS map"] == pytest.approx(localization(record.spatial[-1], boxes))


def test_the_cls_map_is_the_cls_rows_of_the_captured_weights():
    torch.manual_seed(0)
    model = TinyViT(ViTConfig(patch_size=8, d_model=16, n_heads=2, n_layers=2))
    x = images(2)
    _, weights = vit_attention(model, x)
    record = vit_maps(model, x, heads=True)
    cls_row = weights[:, -1, 1, 0, 1:].reshape(2, 4, 4)  # last layer, head 1, the CLS query, the 16 patches
    expected = cls_row / cls_row.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(record.heads[-1][:, 1, ::8, ::8], expected)


def test_vit_learns_the_shapes_above_90_percent_in_bounded_steps():
    data = make_shapes(n_train=2000, n_test=300, seed=0)
    torch.manual_seed(0)
    trainer = Trainer(TinyViT(ViTConfig(patch_size=8, d_model=32, n_heads=4, n_layers=2)), data, lr=3e-3, seed=0)
    accuracy = trainer.evaluate()["accuracy"]
    while accuracy <= 0.9 and trainer.step < 800:
        trainer.run(50)
        accuracy = trainer.evaluate()["accuracy"]
    assert accuracy > 0.9, f"{accuracy:.1%} after {trainer.step} steps"


@pytest.mark.parametrize("settings, words", [
    (dict(patch_size=5), "Valid patch sizes: 1, 2, 4, 8, 16"),
    (dict(patch_size=32), "Valid patch sizes"),
    (dict(image_size=8, patch_size=8), "Valid patch sizes: 1, 2, 4"),
    (dict(n_heads=0), "number of heads must be a whole number of at least 1"),
    (dict(d_model=30, n_heads=4), "Valid head counts for width 30"),
    (dict(pool="max"), "Unknown pooling"),
    (dict(positional="sinusoidal", d_model=6, n_heads=2), "multiple of 4"),
    (dict(n_classes=1), "number of classes n_classes must be a whole number from 2"),
])
def test_bad_configs_are_refused_with_the_reason(settings, words):
    with pytest.raises(ValueError, match=words):
        ViTConfig(**settings)


def test_images_of_another_size_are_refused():
    model = TinyViT(ViTConfig(patch_size=8, d_model=16, n_heads=2, n_layers=1))
    with pytest.raises(ValueError, match=r"shape \[B, 1, 32, 32\]"):
        vit_maps(model, torch.rand(1, 3, 32, 32))
    assert valid_patch_sizes(32) == [1, 2, 4, 8, 16]
