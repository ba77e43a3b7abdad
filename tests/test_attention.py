"""The attention core against torch's own implementations and hand computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from explorer.attention import (SCORES, AdditiveScore, GeneralScore, MultiHeadAttention, attend, causal_mask,
                                 make_scorer, score_matrix, valid_head_counts)
from explorer.hooks import capture


@pytest.fixture
def qkv():
    torch.manual_seed(0)
    return torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 4)


def test_scores_are_listed_by_name():
    assert set(SCORES) == {"dot", "scaled_dot", "general", "additive"}


def test_scaled_dot_matches_torch_sdpa(qkv):
    q, k, v = qkv
    context, weights = attend(q, k, v)
    torch.testing.assert_close(context, F.scaled_dot_product_attention(q, k, v), atol=1e-6, rtol=1e-5)
    assert weights.shape == (2, 3, 5, 7)


def test_softmax_weights_sum_to_one(qkv):
    q, k, v = qkv
    for score in SCORES:
        _, weights = attend(q, k, v, score=score, scorer=make_scorer(score, 8, seed=0))
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))
        assert (weights >= 0).all()


def test_mask_matches_torch_sdpa_boolean_mask(qkv):
    q, k, v = qkv
    mask = torch.rand(5, 7, generator=torch.Generator().manual_seed(1)) > 0.4
    mask[:, 0] = True  # every query keeps at least one key, as torch needs
    context, weights = attend(q, k, v, mask=mask)
    torch.testing.assert_close(context, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-6, rtol=1e-5)
    assert (weights[..., ~mask] == 0).all()


def test_causal_mask_matches_torch_is_causal():
    torch.manual_seed(2)
    q, k, v = torch.randn(1, 6, 4), torch.randn(1, 6, 4), torch.randn(1, 6, 4)
    context, _ = attend(q, k, v, mask=causal_mask(6))
    torch.testing.assert_close(context, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-6, rtol=1e-5)


def test_all_masked_row_gives_zero_weights_and_context_not_nan(qkv):
    q, k, v = qkv
    mask = torch.ones(5, 7, dtype=torch.bool)
    mask[2] = False
    context, weights = attend(q, k, v, mask=mask)
    assert torch.isfinite(context).all() and torch.isfinite(weights).all()
    assert (weights[..., 2, :] == 0).all() and (context[..., 2, :] == 0).all()


def test_all_masked_row_keeps_gradients_finite():
    q = torch.randn(1, 3, 4, requires_grad=True)
    mask = torch.tensor([[True, True, False], [False, False, False], [True, False, False]])
    context, _ = attend(q, q, q, mask=mask)
    context.sum().backward()
    assert torch.isfinite(q.grad).all()


def test_temperature_divides_scores(qkv):
    q, k, v = qkv
    _, at_two = attend(q, k, v, temperature=2.0)
    expected = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8) / 2.0, dim=-1)
    torch.testing.assert_close(at_two, expected)


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), float("inf")])
def test_non_positive_temperature_is_a_clear_error(qkv, temperature):
    q, k, v = qkv
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        attend(q, k, v, temperature=temperature)


def test_dot_score_by_hand():
    q = torch.tensor([[1.0, 2.0]])
    k = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(score_matrix(q, k, "dot"), torch.tensor([[3.0, 2.0]]))
    torch.testing.assert_close(score_matrix(q, k, "scaled_dot"), torch.tensor([[3.0, 2.0]]) / math.sqrt(2))


def test_general_score_is_q_w_k():
    torch.manual_seed(3)
    scorer = GeneralScore(3, 2)
    with torch.no_grad():
        scorer.weight.copy_(torch.randn(3, 2))
    q, k = torch.randn(4, 3), torch.randn(5, 2)
    expected = torch.stack([torch.stack([qi @ scorer.weight @ kj for kj in k]) for qi in q])
    torch.testing.assert_close(score_matrix(q, k, "general", scorer), expected)


def test_additive_score_is_bahdanau():
    torch.manual_seed(4)
    scorer = AdditiveScore(3, 3, d_hidden=5)
    q, k = torch.randn(2, 3), torch.randn(4, 3)
    w_q, w_k, v = scorer.w_query.weight, scorer.w_key.weight, scorer.v.weight[0]
    expected = torch.stack([torch.stack([v @ torch.tanh(w_q @ qi + w_k @ kj) for kj in k]) for qi in q])
    torch.testing.assert_close(score_matrix(q, k, "additive", scorer), expected)


def test_learned_score_without_scorer_is_a_clear_error(qkv):
    q, k, v = qkv
    with pytest.raises(ValueError, match="make_scorer"):
        attend(q, k, v, score="additive")


def test_unknown_score_is_a_clear_error(qkv):
    q, k, v = qkv
    with pytest.raises(ValueError, match="Unknown score function"):
        attend(q, k, v, score="cosine")


def run(mha, *args, **kwargs):
    """The output of one pass and the weights its hook point saw."""
    with capture(mha) as captured:
        out = mha(*args, **kwargs)
    return out, captured.get("hook_pattern")


def test_multi_head_attention_equals_sdpa_on_its_own_projections():
    torch.manual_seed(5)
    mha = MultiHeadAttention(16, 4)
    x = torch.randn(3, 6, 16)
    out, weights = run(mha, x)
    split = lambda t: t.view(3, 6, 4, 4).transpose(1, 2)  # noqa: E731
    q, k, v = split(mha.q_proj(x)), split(mha.k_proj(x)), split(mha.v_proj(x))
    reference = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(3, 6, 16)
    torch.testing.assert_close(out, mha.out_proj(reference), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights, torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1))
    assert weights.shape == (3, 4, 6, 6)


def test_multi_head_attention_equals_torch_multihead_attention():
    torch.manual_seed(6)
    ours = MultiHeadAttention(12, 3)
    theirs = torch.nn.MultiheadAttention(12, 3, batch_first=True)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        theirs.out_proj.weight.copy_(ours.out_proj.weight)
        theirs.out_proj.bias.copy_(ours.out_proj.bias)
    x = torch.randn(2, 5, 12)
    out, weights = run(ours, x)
    their_out, their_weights = theirs(x, x, x, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, their_out, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights, their_weights, atol=1e-6, rtol=1e-5)


def test_cross_attention_takes_keys_and_values_from_context():
    torch.manual_seed(7)
    mha = MultiHeadAttention(8, 2)
    x, context = torch.randn(1, 3, 8), torch.randn(1, 5, 8)
    out, weights = run(mha, x, context=context)
    assert out.shape == (1, 3, 8) and weights.shape == (1, 2, 3, 5)


def test_multi_head_mask_blocks_keys():
    torch.manual_seed(8)
    mha = MultiHeadAttention(8, 2)
    _, weights = run(mha, torch.randn(2, 4, 8), mask=causal_mask(4))
    assert (weights.triu(1) == 0).all()


def test_heads_that_do_not_divide_the_width_name_the_choices():
    with pytest.raises(ValueError, match=r"d_model=64 is not divisible by n_heads=5.*1, 2, 4, 8, 16, 32, 64"):
        MultiHeadAttention(64, 5)
    with pytest.raises(ValueError):
        MultiHeadAttention(64, 0)
    assert valid_head_counts(12) == [1, 2, 3, 4, 6, 12]
