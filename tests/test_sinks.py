"""Attention sinks: the sliding-window mask, the mode that puts it on any SDPA call, and token losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from explorer import sinks
from explorer.views.sinks import running_perplexity


def hand_built(n: int, window: int | None, n_sinks: int) -> torch.Tensor:
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(i + 1):
            mask[i, j] = window is None or i - j < window or j < n_sinks
    return mask


@pytest.mark.parametrize("n, window, n_sinks", [(9, None, 0), (9, 3, 0), (9, 3, 1), (12, 5, 4), (4, 8, 2), (5, 2**64, 3)])
def test_window_mask_equals_a_hand_built_mask(n, window, n_sinks):
    assert torch.equal(sinks.window_mask(n, window=window, sinks=n_sinks), hand_built(n, window, n_sinks))


def test_window_mask_of_later_queries_is_the_last_rows():
    assert torch.equal(sinks.window_mask(3, 10, window=4, sinks=2), hand_built(10, 4, 2)[-3:])


@pytest.mark.parametrize("mask_kind", [None, "bool", "float"])
def test_the_mode_gives_sdpa_the_window_and_keeps_the_calls_own_mask(mask_kind):
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 10, 8).unbind(0)
    window = hand_built(10, 4, 2)
    own = torch.rand(10, 10) > 0.3  # a padding-like mask of the call's own
    own.fill_diagonal_(True)
    given = {None: None, "bool": own, "float": torch.zeros(10, 10).masked_fill(~own, -math.inf)}[mask_kind]
    with sinks.sliding_window(4, 2) as mode:
        windowed = F.scaled_dot_product_attention(q, k, v, attn_mask=given, is_causal=given is None)
    expected_mask = window if mask_kind is None else window & own
    reference = torch.softmax((q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(~expected_mask, -math.inf), -1) @ v
    assert mode.calls == 1
    assert torch.allclose(windowed, reference, atol=1e-6)


def test_full_attention_leaves_the_call_alone_and_each_call_can_stop_it():
    q = torch.randn(1, 2, 6, 4)
    reference = F.scaled_dot_product_attention(q, q, q, is_causal=True)
    with sinks.sliding_window(None) as mode:
        assert torch.equal(F.scaled_dot_product_attention(q, q, q, is_causal=True), reference)
    assert mode.calls == 1

    def stop():
        raise sinks.Stopped
    with pytest.raises(sinks.Stopped), sinks.sliding_window(4, 1, each_call=stop):
        F.scaled_dot_product_attention(q, q, q)


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=128)
    config._attn_implementation = "eager"
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("window, n_sinks", [(None, 0), (8, 0), (8, 3), (40, 0)])
def test_windowed_losses_equal_transformers_with_a_hand_built_4d_mask(tiny_llama, window, n_sinks):
    """The reference runs transformers' eager attention with the window given as its own 4-D attention mask."""
    ids = torch.randint(0, 50, (30,), generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 1, 30, 30).masked_fill(~hand_built(30, window, n_sinks), -math.inf)
    with torch.no_grad():
        logits = tiny_llama(ids[None], attention_mask=mask, use_cache=False).logits[0]
    reference = F.cross_entropy(logits[:-1], ids[1:], reduction="none")
    losses = sinks.next_token_losses(tiny_llama, ids.tolist(), window, n_sinks)
    assert losses.shape == (29,)
    assert torch.allclose(losses, reference, atol=1e-5)
    assert tiny_llama.config._attn_implementation == "eager"  # the model is back in its own mode


@pytest.mark.parametrize("window, n_sinks, match", [
    (0, 0, "at least 2 tokens"), (1, 0, "at least 2 tokens"), (8, 8, "fewer sink tokens than the window"),
    (8, 9, "fewer sink tokens"), (None, 4, "beside a sliding window"), (8, -1, "whole number"), (2.5, 0, "at least 2"),
])
def test_bad_windows_are_clear(window, n_sinks, match):
    with pytest.raises(ValueError, match=match):
        sinks.check_window(window, n_sinks)


def test_a_text_of_one_token_is_refused(tiny_llama):
    with pytest.raises(ValueError, match="1 token: a loss needs a token and one after it"):
        sinks.next_token_losses(tiny_llama, [7])


def test_running_and_plain_perplexity_by_hand():
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert running_perplexity(losses.numpy(), span=2).tolist() == pytest.approx([math.e, math.exp(1.5),
                                                                                 math.exp(2.5), math.exp(3.5)])
    assert sinks.perplexity(losses, start=2) == pytest.approx(math.exp(3.5))
    with pytest.raises(ValueError, match="no token losses"):
        sinks.perplexity(losses, start=4)


def test_the_bundled_text_is_long_enough_and_says_where_it_comes_from():
    text = sinks.bundled_text()
    assert text.startswith("The Book of Ruth") and "Boaz" in text and len(text.split()) > 2000
    assert "public domain" in sinks.TEXT_SOURCE


def test_token_losses_of_smollm(smollm):
    """Full attention equals transformers' own loss; a window longer than the text is full attention."""
    text = "The cat sat on the mat. The dog sat on the log. The cat sat on the"
    full = smollm.token_losses(text)
    ids = smollm.encode(text)[0]
    with torch.no_grad():
        reference = smollm.model(torch.tensor([ids]), labels=torch.tensor([ids]), use_cache=False).loss
    assert full.shape == (len(ids) - 1,)
    assert float(full.mean()) == pytest.approx(float(reference), abs=1e-4)
    assert torch.allclose(smollm.token_losses(text, window=len(ids) + 5, sinks=2), full, atol=1e-4)
    windowed = smollm.token_losses(text, window=4)
    assert torch.allclose(windowed[:3], full[:3], atol=1e-4)  # the first tokens see the same keys either way
    assert not torch.allclose(windowed, full, atol=1e-3)
    with pytest.raises(ValueError, match="1 token"):
        smollm.token_losses("Hello")
