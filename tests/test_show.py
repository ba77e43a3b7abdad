"""``explorer.show(obj, inputs)`` on each kind of object, against an independent reference: transformers' eager
``output_attentions``, a hand computation from a model's own projections, TransformerLens's cached ``pattern``."""

import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import explorer
from explorer.maps import AttentionMaps
from tests.test_capture import TimmStyleAttention as TimmAttention  # timm's Attention, written by hand

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from explorer.models import pretrained

    return AutoTokenizer.from_pretrained(pretrained.default_model_dir())


def tiny(config_class, model_class, **options):
    """A seeded random transformers model of width 32 (SDPA attention, the default), in train mode as built."""
    torch.manual_seed(0)
    return model_class(config_class(**options))


def eager_attentions(model, **inputs):
    """The reference: the same model's eager ``output_attentions`` (the model is put back as it was)."""
    current, training = model.config._attn_implementation, model.training
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            return model.eval()(**inputs, output_attentions=True)
    finally:
        model.set_attn_implementation(current)
        model.train(training)


def maps_of(panel, part="self-attention"):
    return panel.session.reading.parts[part]


# ----- a nanoGPT-style GPT and a timm-style ViT, written here as a user would ------------------------------------
@dataclass
class GPTConfig:
    block_size: int = 32  # the longest text the model reads
    vocab_size: int = 20
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 32


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in self.c_attn(x).split(self.n_embd, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, d]
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte, self.wpe = nn.Embedding(config.vocab_size, config.n_embd), nn.Embedding(config.block_size, config.n_embd)
        self.h = nn.ModuleList([CausalSelfAttention(config) for _ in range(config.n_layer)])
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for attention in self.h:
            x = x + attention(x)
        return self.lm_head(x)


def hand_pattern(attention: CausalSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(d) + causal mask) from the block's own fused projection: [B, H, T, T]."""
    B, T, C = x.shape
    q, k, _ = (t.view(B, T, attention.n_head, -1).transpose(1, 2) for t in attention.c_attn(x).split(C, dim=2))
    scores = q @ k.transpose(-2, -1) / math.sqrt(C // attention.n_head)
    return torch.softmax(scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -math.inf), dim=-1)


def test_nanogpt_style_model_matches_a_hand_computation():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig())
    ids = torch.randint(0, 20, (1, 9))
    panel = explorer.show(gpt, ids, tokens=list("abcdefghi"))
    maps = maps_of(panel)
    assert panel.session.reading.layer_names["self-attention"] == ("h.0", "h.1")
    assert maps.tokens == tuple("abcdefghi") and maps.weights.shape == (2, 4, 9, 9)
    with torch.no_grad():
        expected = hand_pattern(gpt.h[0], gpt.wte(ids) + gpt.wpe(torch.arange(9)))[0]
    assert torch.allclose(maps.weights[0], expected, atol=TOLERANCE)
    assert gpt.training  # put back as it was


class TimmViT(nn.Module):
    def __init__(self, patch=4, dim=16):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.blocks = nn.Sequential(TimmAttention(dim), TimmAttention(dim))

    def forward(self, images):
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        return self.blocks(torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1))


def test_timm_style_vit_is_labelled_by_patches():
    torch.manual_seed(0)
    vit = TimmViT()
    images = torch.randn(1, 1, 12, 12)
    maps = maps_of(explorer.show(vit, images))
    assert maps.tokens[:3] == ("CLS", "r0c0", "r0c1") and maps.tokens[-1] == "r2c2"
    x = torch.cat([vit.cls_token, vit.patch_embed(images).flatten(2).transpose(1, 2)], dim=1)
    q, k, _ = vit.blocks[0].qkv(x).reshape(1, 10, 3, 4, 4).permute(2, 0, 3, 1, 4)
    assert torch.allclose(maps.weights[0], torch.softmax(q @ k.transpose(-2, -1) / 2.0, -1)[0], atol=TOLERANCE)


def test_transformer_encoder_batch_picks_an_item_and_says_so():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True)
    encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
    x = torch.randn(3, 5, 16)
    panel = explorer.show(encoder, x, item=2)
    assert "The batch has 3 items; item 2 is shown" in panel.session.reading.notice
    encoder.eval()
    with torch.no_grad():
        _, expected = encoder.layers[0].self_attn(x, x, x, need_weights=True, average_attn_weights=False)
    assert torch.allclose(maps_of(panel).weights[0], expected[2], atol=TOLERANCE)
    assert not panel.session.reader.can_ablate  # nn.MultiheadAttention merges its heads inside


# ----- transformers models in any attention implementation ----------------------------------------------------
@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_transformers_decoder_equals_eager_and_is_left_as_it_was(tokenizer, implementation):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = tiny(GPT2Config, GPT2LMHeadModel, vocab_size=tokenizer.vocab_size, n_positions=64, n_embd=32, n_layer=2,
                 n_head=4)
    model.set_attn_implementation(implementation)
    panel = explorer.show(model, "The cat sat on the mat.", tokenizer=tokenizer)
    inputs = tokenizer("The cat sat on the mat.", return_tensors="pt")
    expected = eager_attentions(model, **inputs)  # as a user calls it: model(**tokenizer(text))
    maps = maps_of(panel)
    assert maps.tokens[:3] == ("[CLS]", "the", "cat")
    assert torch.allclose(maps.weights, torch.stack(expected.attentions)[:, 0], atol=TOLERANCE)
    panel.session.toggle_ablation()  # an eager model runs in SDPA for the ablation, and goes back
    panel.wait()
    assert panel.session.reading.ablated == (("self-attention", 0, 0),) and panel.session.reading.cosine is not None
    assert model.config._attn_implementation == implementation and model.training


def test_transformers_encoder_decoder_parts_equal_eager(tokenizer):
    from transformers import BartConfig, BartForConditionalGeneration

    model = tiny(BartConfig, BartForConditionalGeneration, vocab_size=tokenizer.vocab_size, d_model=32,
                 encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
                 encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64)
    panel = explorer.show(model, "The cat sat.", tokenizer=tokenizer, target="Le chat.")
    source = tokenizer("The cat sat.", return_tensors="pt")["input_ids"]
    target = model.prepare_decoder_input_ids_from_labels(labels=tokenizer(text_target="Le chat.",
                                                                          return_tensors="pt")["input_ids"])
    expected = eager_attentions(model, input_ids=source, decoder_input_ids=target)
    reading = panel.session.reading
    assert list(reading.parts) == ["encoder", "decoder", "cross"]
    for part, reference in (("encoder", expected.encoder_attentions), ("decoder", expected.decoder_attentions),
                            ("cross", expected.cross_attentions)):
        assert torch.allclose(reading.parts[part].weights, torch.stack(reference)[:, 0], atol=TOLERANCE)
    assert reading.parts["cross"].keys[:2] == ("[CLS]", "the") and len(reading.parts["cross"].tokens) == target.shape[1]
    written = explorer.show(model, "The cat sat.", tokenizer=tokenizer)  # no target: the model's own greedy output
    assert "wrote itself" in written.session.reading.notice


def test_transformers_vit_with_its_processor(tokenizer):
    import numpy as np
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    model = tiny(ViTConfig, ViTModel, image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                 num_attention_heads=4, intermediate_size=64)
    processor = ViTImageProcessor(size={"height": 32, "width": 32})
    image = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    panel = explorer.show(model, image, processor=processor)
    maps = maps_of(panel)
    pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    expected = eager_attentions(model, pixel_values=pixels)
    assert maps.tokens[:2] == ("CLS", "r0c0") and len(maps.tokens) == 17
    assert torch.allclose(maps.weights, torch.stack(expected.attentions)[:, 0], atol=TOLERANCE)
    panel.session.update(view="image", layer=1, head=2)  # the CLS row of that head over the image, patch by patch
    figure = panel.main.children[0].figure
    drawn = next(trace for trace in figure.data if trace.name == "head 2")
    cls_row = maps.weights[1, 2, 0, 1:].reshape(4, 4)
    assert np.allclose(np.asarray(drawn.z)[::8, ::8], (cls_row / cls_row.max()).numpy(), atol=1e-5)


# ----- TransformerLens --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lens_model():
    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    torch.manual_seed(0)
    config = TransformerBridgeConfig(n_layers=2, d_model=32, n_ctx=16, d_head=8, n_heads=4, d_vocab=50, act_fn="relu",
                                     d_mlp=64)
    return TransformerBridge.boot_native(config)


def test_transformer_lens_model_matches_its_cache_pattern(lens_model):
    ids = torch.tensor([[1, 5, 9, 2, 7, 3]])
    _, cache = lens_model.run_with_cache(ids)
    expected = torch.stack([cache["pattern", layer][0] for layer in range(2)])
    panel = explorer.show(lens_model, ids, tokens=list("abcdef"))
    assert torch.allclose(maps_of(panel).weights, expected, atol=TOLERANCE)
    from_cache = explorer.show(cache, tokens=list("abcdef"))
    assert torch.allclose(maps_of(from_cache).weights, expected, atol=TOLERANCE)
    assert from_cache.session.reading.layer_names["self-attention"][1] == "blocks.1.attn.hook_pattern"
    panel.session.update(layer=0, head=2)
    panel.session.toggle_ablation()  # zeroing hook_z of layer 0, head 2 moves layer 1's maps, not layer 0's
    panel.wait()
    change = panel.session.reading.change["self-attention"]
    assert change[0] == 0 and change[1] > 0
    with pytest.raises(TypeError, match="tokens= only"):
        explorer.show(lens_model, ids, tokenizer=object())


# ----- raw weights ------------------------------------------------------------------------------------------------
def test_raw_weights_tuple_tensor_and_record():
    torch.manual_seed(0)
    attentions = tuple(torch.softmax(torch.randn(1, 2, 4, 4), -1) for _ in range(3))
    panel = explorer.show(attentions, tokens=list("wxyz"), layer=2, head=1, view="layer")
    assert maps_of(panel).weights.shape == (3, 2, 4, 4) and panel.session.layer == 2
    assert panel.main.children[0].figure.layout.title.text == "layer 2: every head"
    record = AttentionMaps(tokens=list("wxyz"), weights=torch.stack(attentions)[:, 0])
    assert torch.equal(maps_of(explorer.show(record)).weights, record.weights)
    assert maps_of(explorer.show(torch.stack(attentions)[:, 0])).tokens == ("0", "1", "2", "3")


def test_explorer_exports_the_notebook_surface():
    from explorer.widgets import dropins, show

    assert explorer.show is show.show
    assert explorer.head_view is dropins.head_view and explorer.model_view is dropins.model_view
    assert {"show", "head_view", "model_view"} <= set(dir(explorer))
