"""CBAM modules against hand computations from their own weights; maps, Grad-CAM and localization."""

import pytest
import torch
import torch.nn.functional as F

from explorer.hooks import capture
from explorer.models.cbam import (CBAM, ORDERS, POOL_TYPES, CBAMNet, ChannelAttention, SpatialAttention, cbam_maps,
                                  grad_cam, hidden_units, localization, probe_maps)


def run(module, x):
    """The output of one pass and what its hook points saw."""
    with capture(module) as captured:
        out = module(x)
    return out, captured


def hand_pool(x, kind, dim):
    """Pooling written out from its definition, in float64."""
    x = x.double()
    if kind == "avg":
        return x.mean(dim=dim)
    if kind == "max":
        return x.amax(dim=dim)
    if kind == "lp":
        return (x ** 2).sum(dim=dim) ** 0.5
    return torch.log(torch.exp(x).sum(dim=dim))


def hand_mlp(gate, v):
    w1, b1 = gate.mlp[0].weight.double(), gate.mlp[0].bias.double()
    w2, b2 = gate.mlp[2].weight.double(), gate.mlp[2].bias.double()
    return torch.clamp(v @ w1.T + b1, min=0) @ w2.T + b2


def hand_channel_weights(gate, x):
    pooled = [hand_pool(x, kind, (2, 3)) for kind in gate.pool]  # each [B, C]
    if gate.merge == "sum":
        return torch.sigmoid(sum(hand_mlp(gate, p) for p in pooled))
    return torch.sigmoid(hand_mlp(gate, torch.cat(pooled, dim=1)))


def hand_spatial_map(gate, x):
    pooled = torch.stack([hand_pool(x, kind, 1) for kind in gate.pool], dim=1)  # [B, n_pool, H, W]
    conv = F.conv2d(pooled, gate.conv.weight.double(), gate.conv.bias.double(), padding=gate.conv.padding)
    return torch.sigmoid(conv)


@pytest.fixture
def x():
    return torch.randn(3, 8, 6, 5, generator=torch.Generator().manual_seed(0))


POOLS = [(p,) for p in POOL_TYPES] + [("avg", "max"), ("avg", "max", "lp", "lse")]


@pytest.mark.parametrize("merge", ["sum", "concat"])
@pytest.mark.parametrize("pool", POOLS)
def test_channel_attention_equals_hand_computation(x, pool, merge):
    torch.manual_seed(1)
    gate = ChannelAttention(8, ratio=2, pool=pool, merge=merge)
    out, captured = run(gate, x)
    weights = captured.get("hook_weights")
    expected = hand_channel_weights(gate, x)
    assert weights.shape == (3, 8)
    torch.testing.assert_close(weights.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.double(), x.double() * expected[:, :, None, None], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
@pytest.mark.parametrize("pool", [("avg", "max"), ("avg",), ("max",), ("lp", "lse")])
def test_spatial_attention_equals_convolution_over_pooled_maps(x, kernel_size, pool):
    torch.manual_seed(2)
    gate = SpatialAttention(kernel_size, pool=pool)
    out, captured = run(gate, x)
    weights = captured.get("hook_map")
    expected = hand_spatial_map(gate, x)
    assert weights.shape == (3, 1, 6, 5)
    torch.testing.assert_close(weights.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.double(), x.double() * expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("order", ORDERS)
def test_orders_follow_their_definitions(x, order):
    torch.manual_seed(3)
    cbam = CBAM(8, ratio=2, kernel_size=3, order=order)
    out, captured = run(cbam, x)
    out = out.double()
    channel, spatial = cbam.channel_gate, cbam.spatial_gate
    xd = x.double()
    if order == "channel-spatial":  # F' = Mc(F) F, F'' = Ms(F') F'
        mc = hand_channel_weights(channel, xd)[:, :, None, None]
        ms = hand_spatial_map(spatial, xd * mc)
    elif order == "spatial-channel":
        ms = hand_spatial_map(spatial, xd)
        mc = hand_channel_weights(channel, xd * ms)[:, :, None, None]
    else:  # both from the input
        mc = hand_channel_weights(channel, xd)[:, :, None, None]
        ms = hand_spatial_map(spatial, xd)
    torch.testing.assert_close(out, xd * mc * ms, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(captured.get("channel_gate.hook_weights").double(), mc[:, :, 0, 0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(captured.get("spatial_gate.hook_map").double(), ms, rtol=1e-5, atol=1e-6)


def test_default_output_is_input_times_captured_weights(x):
    cbam = CBAM(8, ratio=16, kernel_size=3)  # as written in tutorials; 8 // 16 = 0 hidden units -> 1
    out, captured = run(cbam, x)
    channel, spatial = captured.get("channel_gate.hook_weights"), captured.get("spatial_gate.hook_map")
    assert not channel.requires_grad and not spatial.requires_grad
    torch.testing.assert_close(out, x * channel[:, :, None, None] * spatial)


def test_ratio_larger_than_channels_keeps_one_hidden_unit():
    gate = ChannelAttention(8, ratio=32)
    assert gate.mlp[0].out_features == 1 == hidden_units(8, 32)
    assert ChannelAttention(32, ratio=16).mlp[0].out_features == 2 == hidden_units(32, 16)


@pytest.mark.parametrize("options, words", [
    (dict(ratio=0), "ratio"), (dict(kernel_size=4), "odd"), (dict(pool=()), "at least one pooling"),
    (dict(pool=("avg", "median")), "median"), (dict(order="sideways"), "order"), (dict(merge="mean"), "merge"),
    (dict(channel=False, spatial=False), "Switch on"),
])
def test_bad_options_raise_clear_errors(options, words):
    with pytest.raises(ValueError, match=words):
        CBAM(16, **options)


def test_switched_off_gate_keeps_no_weights(x):
    cbam = CBAM(8, ratio=2, channel=False)
    _, captured = run(cbam, x)
    assert captured.names("channel_gate.*") == [] and captured.get("spatial_gate.hook_map").shape == (3, 1, 6, 5)


def test_plain_baseline_has_the_identical_backbone():
    with_cbam, plain = CBAMNet(4, width=16), CBAMNet(4, width=16, cbam=False)
    backbone = {k: v.shape for k, v in with_cbam.state_dict().items() if ".cbam." not in k}
    assert backbone == {k: v.shape for k, v in plain.state_dict().items()}
    assert len(with_cbam.cbams) == 3 and plain.cbams == []
    again = CBAMNet(**with_cbam.config)
    assert again.state_dict().keys() == with_cbam.state_dict().keys()


def test_cbam_maps_have_the_right_shapes_and_ranges():
    torch.manual_seed(4)
    model = CBAMNet(4, width=16, stages=3, ratio=4, kernel_size=3)
    images = torch.rand(5, 1, 32, 32)
    record = cbam_maps(model, images)
    assert record.n_stages == 3 and model.training
    model.eval()
    _, captured = run(model, images)  # the same forward, read here directly
    for stage, (channel, spatial) in enumerate(zip(record.channel, record.spatial)):
        assert channel.shape == (5, 16) and spatial.shape == (5, 32, 32)
        assert 0 <= channel.min() and channel.max() <= 1 and 0 <= spatial.min() and spatial.max() <= 1
        kept = captured.get(f"stages.{stage}.cbam.spatial_gate.hook_map")  # [5, 1, 32 / 2**(stage+1), ...]
        assert kept.shape[-1] == 32 // 2 ** (stage + 1)
        torch.testing.assert_close(spatial, F.interpolate(kept, size=(32, 32), mode="bilinear")[:, 0])
    assert len(record.predictions) == 5


def test_grad_cam_equals_autograd_reference():
    torch.manual_seed(5)
    model = CBAMNet(3, width=8, ratio=4).eval()
    images = torch.rand(4, 1, 32, 32)
    cam = grad_cam(model, images, target=2)
    features = model.features(images)
    logits = model.head(features.mean(dim=(2, 3)))
    grads, = torch.autograd.grad(logits[:, 2].sum(), features)
    reference = F.relu((grads.mean(dim=(2, 3), keepdim=True) * features).sum(dim=1, keepdim=True)).detach()
    reference = F.interpolate(reference, size=(32, 32), mode="bilinear")[:, 0]
    reference = reference / reference.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    torch.testing.assert_close(cam, reference)
    assert all(p.grad is None for p in model.parameters())


def test_localization_equals_hand_computation():
    maps = torch.zeros(2, 4, 4)
    maps[0, 0:2, 0:2] = 1.0  # all mass in the box (a quarter of the image): 1 / 0.25 = 4
    maps[1] = 1.0  # uniform: 1
    boxes = torch.tensor([[0, 0, 2, 2], [1, 1, 3, 4]])
    assert localization(maps, boxes) == pytest.approx((4.0 + 1.0) / 2)
    toy = torch.tensor([[[1.0, 3.0], [0.0, 4.0]]])  # box = right column: mass 7/8, area 1/2
    assert localization(toy, [[1, 0, 2, 2]]) == pytest.approx((7 / 8) / (1 / 2))
    assert localization(torch.zeros(1, 2, 2), [[0, 0, 1, 1]]) == 1.0  # a map pointing nowhere is uniform
    with pytest.raises(ValueError, match="no pixels"):
        localization(toy, [[2, 0, 2, 2]])
    with pytest.raises(ValueError, match="negative"):
        localization(-toy, [[0, 0, 2, 2]])


def test_probe_scores_every_stage_and_grad_cam():
    model = CBAMNet(4, width=8, ratio=4)
    images = torch.rand(3, 1, 32, 32)
    record = probe_maps(model, images, boxes=torch.tensor([[0, 0, 16, 16]] * 3))
    assert set(record.localization) == {"stage 1", "stage 2", "stage 3", "Grad-CAM"}
    assert record.grad_cam.shape == (3, 32, 32)


def test_wrong_image_channels_say_what_is_expected():
    with pytest.raises(ValueError, match="1 channel"):
        cbam_maps(CBAMNet(4, width=8, ratio=4), torch.rand(2, 3, 32, 32))
