"""Per-token importances and their faithfulness scores, against hand-made models, Captum's delta and the models'
own maps; and every bad input refused in words."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from explorer import faithfulness
from explorer.deletion import Stopped
from explorer.faithfulness import METHODS, compare_methods, token_importance
from explorer.maps import rollout
from explorer.models.transformer import TinySeq2Seq, TinyTransformer, TransformerConfig
from tests.test_language import tiny_gpt2  # noqa: F401  (the fixture)

IDS = [3, 1, 4, 1, 5, 9, 2, 6]


def lab_model(seed: int = 0, **config) -> TinyTransformer:
    torch.manual_seed(seed)
    options = dict(vocab_size=10, d_model=32, n_heads=4, n_layers=2) | config
    return TinyTransformer(TransformerConfig(**options)).eval()


def one_token_model(seed: int = 0) -> TinyTransformer:
    """A per-token model whose output at a position depends on that position's token only: every attention
    layer's output projection is zero, so nothing moves between positions."""
    model = lab_model(seed)
    with torch.no_grad():
        for block in model.blocks:
            block.self_attention.out_proj.weight.zero_()
            block.self_attention.out_proj.bias.zero_()
    return model


@pytest.mark.parametrize("method", ["leave_one_out", "grad_x_input", "integrated_gradients"])
def test_methods_that_ask_the_model_find_the_one_token_it_reads(method):
    values = token_importance(one_token_model(), IDS, method, position=5)
    others = torch.cat([values[:5], values[6:]])
    assert values.abs().argmax() == 5
    assert values[5].abs() > 1e-3
    assert torch.count_nonzero(others) == 0  # no path from another token to the output


def test_integrated_gradients_are_complete_by_captums_delta():
    for model in (lab_model(1), lab_model(2, pooling="cls", n_classes=3)):
        record = compare_methods(model, IDS, position=-1 if model.config.pooling else 2,
                                 methods=("integrated_gradients",), scored=False)
        total = record.importances["integrated_gradients"].sum().item()
        assert record.ig_error < 0.02
        assert total == pytest.approx(record.value - record.blank_value, rel=0.02)


def test_the_true_order_falls_faster_than_a_random_one():
    record = compare_methods(one_token_model(), IDS, position=5, seed=0)
    assert record.scores["leave_one_out"].deletion > record.random.deletion
    assert record.scores["integrated_gradients"].deletion > record.random.deletion
    assert record.scores["leave_one_out"].insertion > record.random.insertion
    curve = record.deletion["leave_one_out"]
    assert curve[0] == pytest.approx(record.value) and curve[-1] == pytest.approx(record.blank_value)


def test_scores_are_deterministic_with_a_seed():
    model = lab_model(3)
    first, again = (compare_methods(model, IDS, position=4, seed=7) for _ in range(2))
    assert first.scores == again.scores and first.random == again.random
    for method in METHODS:
        assert torch.equal(first.importances[method], again.importances[method])


def test_raw_attention_and_rollout_are_the_maps_rows(smollm):
    text = "The cat sat on the mat because it was tired."
    maps = smollm.attend(text)
    for position, layer in ((4, 3), (-1, None)):
        row = position % len(maps.tokens)
        chosen = maps.n_layers - 1 if layer is None else layer
        attention = token_importance(smollm, text, "attention", position, layer)
        torch.testing.assert_close(attention, maps.mean_over_heads(chosen)[row, :row + 1], atol=1e-5, rtol=1e-4)
        rolled = token_importance(smollm, text, "rollout", position, layer)
        torch.testing.assert_close(rolled, rollout(maps)[chosen][row, :row + 1], atol=1e-5, rtol=1e-4)


def test_an_encoders_rows_are_the_mean_row_its_embedding_reads():
    from explorer.models import pretrained

    encoder = pretrained.load()
    text = "The keys to the cabinet are on the table."
    maps = encoder.attend(text)
    attention = token_importance(encoder, text, "attention", layer=2)
    torch.testing.assert_close(attention, maps.mean_over_heads(2).mean(dim=0), atol=1e-5, rtol=1e-4)


def test_value_norm_is_the_norm_of_the_weighted_transformed_values():
    """By hand from the attention module's own input: v = x W_V + b_V, f_h = v_h W_O^h, || sum_h a_h f_h ||."""
    model, position, layer = lab_model(4), 3, 1
    attention_module = model.blocks[layer].self_attention
    seen = {}
    handle = attention_module.register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0]))
    try:
        values = token_importance(model, IDS, "value_norm", position, layer)
        readout = faithfulness.readout_for(model, IDS, position)
    finally:
        handle.remove()
    x = seen["x"][0]  # [T, d]
    heads, d_head = attention_module.n_heads, attention_module.d_head
    v = attention_module.v_proj(x).view(len(IDS), heads, d_head)  # [T, H, d_head]
    weights = readout.weights[layer][:, position]  # [H, T]
    out = attention_module.out_proj.weight  # [d, H * d_head]
    added = sum(weights[h][:, None] * (v[:, h] @ out[:, h * d_head:(h + 1) * d_head].T) for h in range(heads))
    torch.testing.assert_close(values, added.norm(dim=-1).detach(), atol=1e-5, rtol=1e-4)


def test_an_sdpa_model_is_read_at_its_attention_call_as_eager_output_attentions(tiny_gpt2):  # noqa: F811
    """A model that attends through SDPA returns no weights: explorer.capture reads them at the call; they and the
    value-weighted norms equal those of the same weights in eager mode (output_attentions)."""
    from explorer.models import language

    text = "the cat sat on the mat"
    eager, sdpa = language.load(tiny_gpt2), language.load(tiny_gpt2)
    sdpa.model.set_attn_implementation("sdpa")
    assert sdpa.model.config._attn_implementation == "sdpa"
    for method in ("attention", "rollout", "value_norm"):
        torch.testing.assert_close(token_importance(sdpa, text, method, 3, 0), token_importance(eager, text, method, 3, 0),
                                   atol=1e-5, rtol=1e-4)


def test_an_encoder_decoder_is_read_over_its_source():
    torch.manual_seed(5)
    model = TinySeq2Seq(TransformerConfig(vocab_size=10, d_model=32, n_heads=4, n_layers=2)).eval()
    record = compare_methods(model, IDS, position=2)
    assert all(len(values) == len(IDS) for values in record.importances.values())
    assert record.ig_error < faithfulness.IG_TOLERANCE
    assert "written at position 2" in record.what


def test_a_classifier_with_a_cls_token_is_scored_over_its_input_tokens():
    record = compare_methods(lab_model(6, pooling="cls", n_classes=3), IDS)
    assert record.tokens == tuple(str(i) for i in IDS)
    assert all(len(values) == len(IDS) for values in record.importances.values())
    assert record.importances["attention"].sum() < 1.0  # [CLS]'s own key is not an input token


# ----- bad input --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ids, position, words", [
    ([4], -1, "only one token"),
    (IDS, len(IDS), "Position 8 does not exist"),
    (IDS, -9, "Position -9 does not exist"),
    (list(range(10)) * 7, 0, "at most 64 tokens"),
    ([1.5, 2.0], 0, "token ids"),
    ([1, 12], 0, "0..9"),
])
def test_bad_input_is_refused_in_words(ids, position, words):
    with pytest.raises(ValueError, match=words):
        compare_methods(lab_model(), ids, position)


def test_an_unknown_method_or_layer_is_refused():
    with pytest.raises(ValueError, match="Choose one of: attention"):
        token_importance(lab_model(), IDS, "saliency")
    with pytest.raises(ValueError, match="Layer 5 does not exist"):
        token_importance(lab_model(), IDS, "attention", position=1, layer=5)


def test_a_classifier_has_no_position_and_an_encoder_none_either():
    with pytest.raises(ValueError, match="leave the position at -1"):
        compare_methods(lab_model(pooling="mean", n_classes=2), IDS, position=3)


def test_nan_in_the_output_is_refused():
    model = lab_model()
    with torch.no_grad():
        model.head.weight[0, 0] = math.nan
    with pytest.raises(ValueError, match="not a number"):
        compare_methods(model, IDS, position=2)


def test_an_integer_quantized_model_has_no_gradients():
    from torch.ao.quantization import quantize_dynamic

    from explorer.models import pretrained

    encoder = pretrained.load()
    quantized = pretrained.PretrainedEncoder(quantize_dynamic(copy.deepcopy(encoder.model), {torch.nn.Linear},
                                                              dtype=torch.qint8), encoder.tokenizer, "quantized")
    text = "A quantized model reads this."
    for method in ("grad_x_input", "integrated_gradients"):
        with pytest.raises(ValueError, match="integer-quantized"):
            token_importance(quantized, text, method)
    assert len(token_importance(quantized, text, "value_norm")) == len(quantized.attend(text).tokens)


def test_stop_in_the_middle_ends_the_check():
    told = []
    with pytest.raises(Stopped, match="stopped"):
        compare_methods(lab_model(), IDS, position=2, progress=lambda f, words: told.append(words),
                        stop=lambda: len(told) >= 2)
    assert len(told) == 2


def test_spearman_is_scipys_and_nan_for_a_constant():
    assert faithfulness.spearman(torch.tensor([1.0, 2, 3]), torch.tensor([3.0, 2, 1])) == pytest.approx(-1.0)
    assert math.isnan(faithfulness.spearman(torch.tensor([1.0, 1, 1]), torch.tensor([3.0, 2, 1])))


# ----- images -----------------------------------------------------------------------------------------------------
class BoxReader(torch.nn.Module):
    """A hand-made classifier whose class-0 logit is the brightness inside one box; nothing else counts."""

    def forward(self, images):
        inside = images[:, :, 2:6, 3:7].sum(dim=(1, 2, 3))
        return torch.stack([inside, torch.full_like(inside, 8.0)], dim=1)


def test_an_image_map_on_what_the_model_reads_beats_a_random_order():
    from explorer.deletion import image_curves

    torch.manual_seed(0)
    images = torch.rand(6, 1, 12, 12) * 0.5
    images[:, :, 2:6, 3:7] += 0.6
    right = torch.zeros(6, 12, 12)
    right[:, 2:6, 3:7] = 1.0
    found = image_curves(BoxReader(), images, right)
    assert found.deletion > found.random_deletion + 0.1
    assert found.insertion > found.random_insertion + 0.1
    assert found.deletion_curve[0] > 0.9 and found.fractions[0] == 0.0 and found.fractions[-1] == 1.0
    wrong = image_curves(BoxReader(), images, 1.0 - right)
    assert wrong.deletion < found.deletion


def test_every_vision_map_is_scored_under_its_localization_name():
    from explorer.models.cbam import CBAMNet
    from explorer.models.map_deletion import map_curves
    from explorer.models.vit import TinyViT, ViTConfig

    torch.manual_seed(0)
    nets = {"cbam": CBAMNet(n_classes=3, in_channels=1, width=8, stages=2),
            "plain": CBAMNet(n_classes=3, in_channels=1, width=8, stages=2, cbam=False),
            "vit": TinyViT(ViTConfig(image_size=16, patch_size=4, channels=1, d_model=16, n_heads=2, n_layers=1,
                                     pool="cls", n_classes=3))}
    found = map_curves(nets, torch.rand(4, 1, 16, 16))
    assert {name: list(maps) for name, maps in found.items()} == {
        "cbam": ["stage 1", "stage 2", "Grad-CAM"], "plain": ["Grad-CAM"], "vit": ["CLS map", "rollout"]}
    assert all(0.0 <= c.deletion_curve[0] <= 1.0 for maps in found.values() for c in maps.values())


def test_image_maps_of_another_size_are_refused():
    from explorer.deletion import image_curves

    with pytest.raises(ValueError, match="same size"):
        image_curves(BoxReader(), torch.rand(2, 1, 12, 12), torch.rand(2, 10, 10))
