"""The tiny Transformer: its attention weights are the ones its own projections give, and its options work."""

from __future__ import annotations

import math

import pytest
import torch

from explorer.hooks import capture
from explorer.models.transformer import TinySeq2Seq, TinyTransformer, TransformerConfig, sinusoidal_positions


def run(model, *inputs):
    """Logits of one pass and the attention its hook points saw."""
    with capture(model) as captured:
        logits = model(*inputs)
    return logits, model.attention(captured)


def recompute_first_layer(model: TinyTransformer, input_ids: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_head)) by hand from the first block's own weights, ``[B, H, T, T]``."""
    block, config = model.blocks[0], model.config
    x = model.embed.tokens(input_ids) * math.sqrt(config.d_model) + sinusoidal_positions(config.max_len, config.d_model)[: input_ids.shape[1]]
    h = block.norms[0](x)
    attention = block.self_attention
    b, t, _ = h.shape
    q = (h @ attention.q_proj.weight.T + attention.q_proj.bias).view(b, t, config.n_heads, -1).transpose(1, 2)
    k = (h @ attention.k_proj.weight.T + attention.k_proj.bias).view(b, t, config.n_heads, -1).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(config.d_model // config.n_heads)
    if config.causal:
        scores = scores.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(scores, dim=-1)


@pytest.mark.parametrize("causal", [False, True])
def test_returned_weights_equal_a_recomputation_from_the_projections(causal):
    torch.manual_seed(0)
    model = TinyTransformer(TransformerConfig(vocab_size=7, d_model=32, n_heads=4, causal=causal)).eval()
    input_ids = torch.randint(0, 7, (3, 9))
    logits, attention = run(model, input_ids)
    attention = attention["self"]
    assert logits.shape == (3, 9, 7) and attention.shape == (3, 2, 4, 9, 9)
    torch.testing.assert_close(attention[:, 0], recompute_first_layer(model, input_ids), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 2, 4, 9))


def test_second_layer_weights_match_torch_multihead_attention():
    torch.manual_seed(1)
    model = TinyTransformer(TransformerConfig(vocab_size=5, d_model=16, n_heads=2, norm="post")).eval()
    input_ids = torch.randint(0, 5, (2, 6))
    attention = run(model, input_ids)[1]["self"]
    hidden = model.embed(input_ids)
    hidden = model.blocks[0](hidden)
    ours = model.blocks[1].self_attention
    reference = torch.nn.MultiheadAttention(16, 2, batch_first=True)
    reference.in_proj_weight.data = torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight])
    reference.in_proj_bias.data = torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias])
    _, expected = reference(hidden, hidden, hidden, average_attn_weights=False)
    torch.testing.assert_close(attention[:, 1], expected, rtol=1e-5, atol=1e-6)


def test_causal_model_never_attends_to_later_tokens():
    model = TinyTransformer(TransformerConfig(vocab_size=5, causal=True))
    attention = run(model, torch.randint(0, 5, (2, 8)))[1]["self"]
    assert attention.triu(diagonal=1).abs().max() == 0


def test_causal_logits_do_not_depend_on_later_tokens():
    torch.manual_seed(0)
    model = TinyTransformer(TransformerConfig(vocab_size=5, causal=True)).eval()
    a = torch.tensor([[1, 2, 3, 4]])
    b = torch.tensor([[1, 2, 0, 0]])
    torch.testing.assert_close(model(a)[:, :2], model(b)[:, :2])


@pytest.mark.parametrize("pooling", ["cls", "mean", "max", "attention"])
def test_pooling_gives_one_prediction_per_sequence(pooling):
    model = TinyTransformer(TransformerConfig(vocab_size=6, pooling=pooling, n_classes=3, positional="learned"))
    logits, attention = run(model, torch.randint(0, 6, (4, 5)))
    assert logits.shape == (4, 3)
    n = 6 if pooling == "cls" else 5
    assert attention["self"].shape == (4, 2, 4, n, n)
    if pooling == "attention":
        assert attention["pooling"].shape == (4, 5)
        torch.testing.assert_close(attention["pooling"].sum(-1), torch.ones(4))
    else:
        assert set(attention) == {"self"}


def test_mean_pooling_equals_the_average_of_the_token_states():
    torch.manual_seed(0)
    model = TinyTransformer(TransformerConfig(vocab_size=6, pooling="mean", n_classes=3)).eval()
    input_ids = torch.randint(0, 6, (2, 5))
    hidden = model.encode(input_ids)
    torch.testing.assert_close(model(input_ids), model.head(hidden.mean(dim=1)))


def test_sinusoidal_positions_follow_the_formula():
    table = sinusoidal_positions(10, 8)
    assert table[3, 2] == pytest.approx(math.sin(3 / 10000 ** (2 / 8)))
    assert table[3, 3] == pytest.approx(math.cos(3 / 10000 ** (2 / 8)))


@pytest.mark.parametrize("options, match", [
    (dict(d_model=64, n_heads=5), "not divisible"), (dict(pooling="median", n_classes=2), "pooling"),
    (dict(pooling="mean"), "n_classes"), (dict(norm="middle"), "norm"), (dict(positional="rotary"), "positional"),
    (dict(n_layers=0), "n_layers"), (dict(dropout=1.5), "dropout"), (dict(causal=True, pooling="cls", n_classes=2), "causal"),
])
def test_bad_configs_are_clear_value_errors(options, match):
    with pytest.raises(ValueError, match=match):
        TransformerConfig(vocab_size=10, **options)


def test_bad_inputs_are_clear_value_errors():
    model = TinyTransformer(TransformerConfig(vocab_size=5, max_len=8))
    with pytest.raises(ValueError, match="0..4"):
        model(torch.tensor([[1, 7]]))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_default_width_and_feed_forward_size():
    config = TransformerConfig(vocab_size=10)
    assert (config.d_model, config.n_heads, config.n_layers, config.d_ff, config.max_len) == (64, 4, 2, 256, 64)


def test_seq2seq_returns_decoder_and_cross_attention_and_is_causal():
    torch.manual_seed(0)
    model = TinySeq2Seq(TransformerConfig(vocab_size=6, d_model=16, n_heads=2)).eval()
    source, target = torch.randint(0, 6, (2, 7)), torch.randint(0, 6, (2, 5))
    logits, maps = run(model, source, model.decoder_inputs(target))
    assert logits.shape == (2, 5, 6)
    assert maps["encoder"].shape == (2, 2, 2, 7, 7)
    assert maps["decoder"].shape == (2, 2, 2, 5, 5) and maps["decoder"].triu(1).abs().max() == 0
    assert maps["cross"].shape == (2, 2, 2, 5, 7)
    torch.testing.assert_close(maps["cross"].sum(-1), torch.ones(2, 2, 2, 5))
    assert model.decoder_inputs(target)[:, 0].eq(6).all()
    assert model.generate(source).shape == (2, 7)
