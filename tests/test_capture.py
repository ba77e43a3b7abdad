"""``capture_attention`` reads the weights of any model's attention calls: each test compares them with an
independent reference (transformers' eager ``output_attentions``, ``nn.MultiheadAttention``'s own weights, or a
hand computation)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import explorer
from explorer.capture import attention_weights, capture_attention
from tests.conftest import eager_attention

TOLERANCE = 1e-5


def tiny(config_class, model_class, **options):
    """A seeded random transformers model of width 32 with eager attention, in eval mode."""
    torch.manual_seed(0)
    config = config_class(**options)
    config._attn_implementation = "eager"
    return model_class(config).eval()


def eager_and_captured(model, lazy=False, **inputs):
    """The eager ``output_attentions`` of ``model`` and the capture of the same model switched to SDPA."""
    with torch.no_grad():
        eager = model(**inputs, output_attentions=True)
    model.set_attn_implementation("sdpa")
    with torch.no_grad(), capture_attention(model, lazy=lazy) as captured:
        model(**inputs)
    return eager, captured


def assert_calls_equal(captured, indices, expected):
    assert len(indices) == len(expected)
    for index, weights in zip(indices, expected):
        assert torch.allclose(captured.weights(index), weights, atol=TOLERANCE)


@pytest.mark.parametrize("lazy", [False, True])
def test_bert_with_padding_equals_eager(lazy):
    from transformers import BertConfig, BertModel

    model = tiny(BertConfig, BertModel, vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=64)
    ids = torch.randint(0, 99, (2, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    eager, captured = eager_and_captured(model, lazy, input_ids=ids, attention_mask=mask)
    assert captured.names == ["encoder.layer.0.attention.self", "encoder.layer.1.attention.self"]
    assert_calls_equal(captured, [0, 1], eager.attentions)


def test_gpt2_is_causal_equals_eager():
    from transformers import GPT2Config, GPT2Model

    model = tiny(GPT2Config, GPT2Model, vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_positions=32)
    eager, captured = eager_and_captured(model, input_ids=torch.arange(10)[None])
    assert_calls_equal(captured, [0, 1], eager.attentions)
    assert torch.all(captured.head(0, 0).triu(1) == 0)


@pytest.mark.parametrize("padded", [False, True])
def test_llama_grouped_query_heads_equal_eager(padded):
    from transformers import LlamaConfig, LlamaModel

    model = tiny(LlamaConfig, LlamaModel, vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, intermediate_size=64)
    ids = torch.randint(0, 99, (2, 9), generator=torch.Generator().manual_seed(2))
    mask = torch.ones(2, 9, dtype=torch.long)
    if padded:  # a mask makes transformers repeat the key heads itself; without one, SDPA's enable_gqa does
        mask[0, :3] = 0
    eager, captured = eager_and_captured(model, input_ids=ids, attention_mask=mask)
    assert captured.names == ["layers.0.self_attn", "layers.1.self_attn"]
    valid = mask[:, None, :, None].bool()  # rows of left padding see nothing in eager either: compare the rest
    for index, weights in enumerate(eager.attentions):
        assert torch.allclose(captured.weights(index) * valid, weights * valid, atol=TOLERANCE)


def test_bart_encoder_decoder_and_cross_equal_eager():
    from transformers import BartConfig, BartModel

    model = tiny(BartConfig, BartModel, vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2,
                 encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64)
    eager, captured = eager_and_captured(model, input_ids=torch.arange(3, 11)[None],
                                         decoder_input_ids=torch.arange(3, 8)[None])
    assert_calls_equal(captured, captured.find("encoder.layers.*"), eager.encoder_attentions)
    assert_calls_equal(captured, captured.find("decoder.layers.*.self_attn"), eager.decoder_attentions)
    assert_calls_equal(captured, captured.find("decoder.layers.*.encoder_attn"), eager.cross_attentions)
    cross = captured.layer(captured.find("*.encoder_attn")[0])
    assert cross.weights.shape == (1, 4, 5, 8) and len(cross.key_tokens) == 8


def test_vit_equals_eager():
    from transformers import ViTConfig, ViTModel

    model = tiny(ViTConfig, ViTModel, image_size=16, patch_size=4, num_channels=3, hidden_size=32,
                 num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    eager, captured = eager_and_captured(model, pixel_values=torch.randn(1, 3, 16, 16))
    assert_calls_equal(captured, [0, 1], eager.attentions)
    assert captured.layer(0).weights.shape == (1, 4, 17, 17)


def test_multihead_attention_matches_its_own_weights():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    x = torch.randn(2, 5, 16)
    padding = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    expected_out, expected = mha(x, x, x, key_padding_mask=padding, need_weights=True, average_attn_weights=False)
    with capture_attention(mha) as captured:
        out, averaged = mha(x, x, x, key_padding_mask=padding)  # the caller's own request: averaged weights
    assert captured.names == [""]
    assert torch.allclose(captured.weights(0), expected, atol=TOLERANCE)
    assert torch.allclose(out, expected_out, atol=TOLERANCE) and torch.allclose(averaged, expected.mean(1), atol=TOLERANCE)
    plain, _ = mha(x, x, x, need_weights=False)
    with capture_attention(mha) as captured:
        out, nothing = mha(x, x, x, need_weights=False)
    assert nothing is None and torch.allclose(out, plain, atol=TOLERANCE) and len(captured) == 1


def test_transformer_encoder_in_eval_mode_is_seen_and_named():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True)
    encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()
    x = torch.randn(1, 6, 16)
    with torch.no_grad(), capture_attention(encoder) as captured:
        out = encoder(x)
    assert captured.names == ["layers.0.self_attn", "layers.1.self_attn"]
    assert torch.allclose(out, encoder(x), atol=TOLERANCE)  # the fast path gives the same output
    first = encoder.layers[0]
    _, expected = first.self_attn(x, x, x, need_weights=True, average_attn_weights=False)
    assert torch.allclose(captured.weights(0), expected, atol=TOLERANCE)


class TimmStyleAttention(nn.Module):
    """timm's ``Attention``: one fused qkv projection, then SDPA (written here: timm needs torchvision)."""

    def __init__(self, dim=16, heads=4):
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(dim, dim * 3), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


def test_timm_style_block_matches_hand_computation():
    torch.manual_seed(0)
    block = nn.Sequential(nn.LayerNorm(16), TimmStyleAttention())
    x = torch.randn(3, 5, 16)
    with capture_attention(block) as captured:
        block(x)
    q, k, _ = block[1].qkv(block[0](x)).reshape(3, 5, 3, 4, 4).permute(2, 0, 3, 1, 4)
    expected = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1)  # scale 1 / sqrt(4)
    assert captured.names == ["1"]
    assert torch.allclose(captured.weights(0), expected, atol=TOLERANCE)


def sdpa_reference(q, k, mask=None, causal=False, scale=None):
    scores = q @ k.transpose(-2, -1) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    if causal:
        scores = scores.masked_fill(torch.ones(scores.shape[-2:], dtype=torch.bool).triu(1), -math.inf)
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else scores + mask
    return torch.softmax(scores, dim=-1)


@pytest.mark.parametrize("case", ["bool", "float", "causal", "scale", "gqa", "cross"])
@pytest.mark.parametrize("lazy", [False, True])
def test_sdpa_arguments(case, lazy):
    generator = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 4, 6, 8, generator=generator) for _ in range(3))
    options, reference = {}, {}
    if case == "bool":
        options["attn_mask"] = reference["mask"] = torch.rand(6, 6, generator=generator) > 0.3
        options["attn_mask"][:, 0] = True
    if case == "float":
        options["attn_mask"] = reference["mask"] = torch.randn(2, 1, 6, 6, generator=generator)
    if case == "causal":
        options["is_causal"] = reference["causal"] = True
    if case == "scale":
        options["scale"] = reference["scale"] = 0.7
    if case == "gqa":
        k, v = k[:, :2], v[:, :2]
        options["enable_gqa"] = True
    if case == "cross":
        k, v = k[:, :, :3], v[:, :, :3]
    with capture_attention(lazy=lazy) as captured:
        out = F.scaled_dot_product_attention(q, k, v, **options)
    assert torch.equal(out, F.scaled_dot_product_attention(q, k, v, **options))  # the call's own result
    keys = k.repeat_interleave(2, dim=1) if case == "gqa" else k
    expected = sdpa_reference(q, keys, **reference)
    assert torch.allclose(captured.weights(0), expected, atol=TOLERANCE)
    assert torch.allclose(captured.head(0, 1, item=1), expected[1, 1], atol=TOLERANCE)


def test_lazy_rows_in_blocks_equal_the_whole_map():
    q, k = torch.randn(1, 2, 40, 8), torch.randn(1, 2, 40, 8)
    with capture_attention(lazy=True) as captured:
        F.scaled_dot_product_attention(q, k, k, is_causal=True)
    call = captured.calls[0]
    assert call.weights is None and call.query is not None  # nothing T x T is kept
    whole = captured.head(0, 1)
    blocks = torch.cat([call.rows(0, [1], slice(start, start + 16))[0] for start in range(0, 40, 16)])
    assert torch.allclose(blocks, whole, atol=TOLERANCE)
    assert torch.allclose(whole, sdpa_reference(q, k, causal=True)[0, 1], atol=TOLERANCE)


def test_train_mode_half_precision_and_gradients():
    torch.manual_seed(0)
    q = torch.randn(1, 2, 5, 8, requires_grad=True)
    with capture_attention() as captured:
        out = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)  # train mode: weights before dropout
        F.scaled_dot_product_attention(q.bfloat16(), q.bfloat16(), q.bfloat16())
    out.sum().backward()  # the model's own graph is untouched
    assert q.grad is not None
    weights = captured.weights(0)
    assert weights.dtype == torch.float32 and not weights.requires_grad and weights.grad_fn is None
    assert torch.allclose(weights, sdpa_reference(q.detach(), q.detach()), atol=TOLERANCE)
    assert captured.weights(1).dtype == torch.float32
    assert torch.allclose(captured.weights(1), weights, atol=2e-2)


def test_contexts_nest_and_leave_nothing_behind_after_an_error():
    block = nn.Sequential(TimmStyleAttention())
    x = torch.randn(1, 4, 16)
    with pytest.raises(RuntimeError, match="planted"):
        with capture_attention(block) as outer:
            with capture_attention(block) as inner:
                block(x)
            raise RuntimeError("planted")
    assert len(outer) == 1 and len(inner) == 1 and outer.names == inner.names == ["0"]
    assert torch._C._len_torch_function_stack() == 0
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in block.modules())
    with pytest.raises(RuntimeError):  # a forward that raises inside the block: the capture is gone as well
        with capture_attention(block):
            block(torch.randn(1, 4, 15))
    assert torch._C._len_torch_function_stack() == 0
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in block.modules())


def test_other_threads_are_not_captured():
    import threading

    q = torch.randn(1, 1, 3, 4)
    with capture_attention() as captured:
        thread = threading.Thread(target=F.scaled_dot_product_attention, args=(q, q, q))
        thread.start()
        thread.join()
    assert len(captured) == 0


def test_bad_input_gets_words():
    with pytest.raises(TypeError, match="nn.Module"):
        with capture_attention("a model"):
            pass
    with torch.device("meta"):
        meta = nn.Linear(4, 4)
    with pytest.raises(ValueError, match="meta device"):
        with capture_attention(meta):
            pass
    with capture_attention(nn.Linear(4, 4)) as captured:
        nn.Linear(4, 4)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="scaled_dot_product_attention or nn.MultiheadAttention"):
        captured.layer(0)
    q = torch.randn(1, 2, 3, 4)
    with capture_attention() as captured:
        F.scaled_dot_product_attention(q, q, q)
    with pytest.raises(ValueError, match="Head 5 does not exist"):
        captured.head(0, 5)
    with pytest.raises(ValueError, match="Attention call 3 does not exist"):
        captured.layer(3)


def test_maps_too_large_to_keep_point_to_lazy():
    q = torch.randn(1, 2, 64, 4)
    with pytest.raises(ValueError, match="lazy=True"):
        with capture_attention(max_bytes=10_000):
            F.scaled_dot_product_attention(q, q, q)
    with capture_attention(lazy=True, max_bytes=10_000) as captured:
        F.scaled_dot_product_attention(q, q, q)
    assert captured.head(0, 0).shape == (64, 64)


def test_importable_from_the_package():
    assert explorer.capture_attention is capture_attention
    assert attention_weights(torch.zeros(1, 2, 4), torch.zeros(1, 3, 4)).shape == (1, 2, 3)


def test_packaged_minilm_in_sdpa_mode_equals_eager():
    from explorer.models.pretrained import load

    encoder = load()
    assert encoder.model.config._attn_implementation == "sdpa"
    inputs = encoder.tokenizer(["The animal was tired because it ran.", "Short."], padding=True, return_tensors="pt")
    with torch.no_grad(), eager_attention(encoder.model):
        eager = encoder.model(**inputs, output_attentions=True).attentions
    with torch.no_grad(), capture_attention(encoder.model) as captured:
        encoder.model(**inputs)
    assert len(captured) == len(eager) == 6
    keys = inputs["attention_mask"][:, None, None, :].bool()
    for index, weights in enumerate(eager):
        assert torch.allclose(captured.weights(index) * keys, weights * keys, atol=2e-5)


def test_packaged_smollm2_in_sdpa_mode_equals_eager(smollm):
    ids = smollm.tokenizer("The capital of France is Paris. The capital of Italy is", return_tensors="pt").input_ids
    assert smollm.model.config._attn_implementation == "sdpa"
    with torch.no_grad(), eager_attention(smollm.model):
        eager = smollm.model(ids, output_attentions=True, use_cache=False).attentions
    with torch.no_grad(), capture_attention(smollm.model, lazy=True) as captured:
        smollm.model(ids, use_cache=False)
    assert len(captured) == 30 and captured.names[18] == "model.layers.18.self_attn"
    assert captured.calls[0].key.shape[1] == 3  # grouped-query: 3 key heads kept for 9 query heads
    for index in (0, 18, 29):
        assert torch.allclose(captured.weights(index), eager[index], atol=2e-5)


def hand_weights(attention, x, mask=None):
    """softmax(q kᵀ / sqrt(d) + mask) from an explorer MultiHeadAttention's own projections of ``x``."""
    from explorer.attention import masked_softmax

    q, k, _ = attention.project(x, None)
    return masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(attention.d_head), mask)


def test_our_own_modules_run_sdpa_and_are_read_by_the_capture():
    from explorer.models.transformer import TinySeq2Seq, TinyTransformer, TransformerConfig
    from explorer.models.vit import TinyViT, ViTConfig

    torch.manual_seed(0)
    decoder = TinyTransformer(TransformerConfig(vocab_size=7, d_model=16, n_heads=2, n_layers=2, causal=True)).eval()
    inputs = {}
    decoder.blocks[1].self_attention.register_forward_pre_hook(lambda m, args: inputs.setdefault("x", args[0]))
    ids = torch.randint(0, 7, (2, 6))
    with torch.no_grad(), capture_attention(decoder) as captured:
        decoder(ids)
    assert captured.names == ["blocks.0.self_attention", "blocks.1.self_attention"]
    expected = hand_weights(decoder.blocks[1].self_attention, inputs["x"], torch.ones(6, 6, dtype=torch.bool).tril())
    assert torch.allclose(captured.weights(1), expected, atol=TOLERANCE)

    vit = TinyViT(ViTConfig(image_size=8, patch_size=4, channels=1, d_model=16, n_heads=2, n_layers=1)).eval()
    with torch.no_grad(), capture_attention(vit) as captured:
        vit(torch.randn(1, 1, 8, 8))
    assert captured.names == ["blocks.0.attention"] and captured.layer(0).weights.shape == (1, 2, 5, 5)

    seq2seq = TinySeq2Seq(TransformerConfig(vocab_size=7, d_model=16, n_heads=2, n_layers=1, cross_score="additive"))
    with torch.no_grad(), capture_attention(seq2seq.eval()) as captured:
        seq2seq(ids, seq2seq.decoder_inputs(ids))
    # Bahdanau's additive cross-attention computes its weights by hand: only the dot-product calls are SDPA
    assert captured.names == ["encoder.0.self_attention", "decoder.0.self_attention"]
