"""The alignment score, the lab's cross-attention scores (Bahdanau's additive among them) and source padding."""

from __future__ import annotations

import math

import pytest
import torch

from explorer.alignment import alignment_mask, alignment_masks, alignment_score, best_head
from explorer.attention import SCORES, MultiHeadAttention
from explorer.data.sequences import make_task, vocabulary
from explorer.hooks import capture
from explorer.models.transformer import TinySeq2Seq, TransformerConfig
from explorer.training import Trainer

ALIGNMENT = [[0, 1], [2], [], [3, 4, 5]]  # target 2 (a dash) aligns with nothing


def test_a_perfect_map_scores_one_and_a_uniform_map_its_aligned_share():
    mask = alignment_mask(ALIGNMENT, 4, 6)
    perfect = mask.float() / mask.float().sum(dim=-1, keepdim=True).clamp_min(1)
    perfect[2] = 1 / 6  # the unaligned row may look anywhere: it does not count
    weights = torch.stack([perfect, torch.full((4, 6), 1 / 6)])[None]  # [1 layer, 2 heads, 4, 6]
    scores = alignment_score(weights, mask)
    assert scores.shape == (1, 2)
    assert scores[0, 0].item() == pytest.approx(1.0)
    assert scores[0, 1].item() == pytest.approx((2 / 6 + 1 / 6 + 3 / 6) / 3)  # the mean aligned share of the rows
    assert best_head(scores) == (0, 0)


def test_batched_scores_average_every_aligned_row_of_every_example():
    masks = alignment_masks([ALIGNMENT, [[5], [], [], []]], 4, 6)
    weights = torch.rand(2, 1, 1, 4, 6).softmax(dim=-1)
    by_hand = [weights[0, 0, 0, 0, :2].sum(), weights[0, 0, 0, 1, 2], weights[0, 0, 0, 3, 3:].sum(), weights[1, 0, 0, 0, 5]]
    assert alignment_score(weights, masks)[0, 0].item() == pytest.approx(float(sum(by_hand) / 4))


def test_scores_refuse_mismatched_or_empty_alignments():
    with pytest.raises(ValueError, match="nothing to score"):
        alignment_score(torch.ones(1, 1, 2, 3) / 3, torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="targets x sources"):
        alignment_score(torch.ones(1, 1, 2, 3) / 3, torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="3 keys"):
        alignment_mask([[7]], 1, 3)


@pytest.mark.parametrize("score", SCORES)
def test_every_score_of_the_cross_attention_equals_a_hand_computation(score):
    torch.manual_seed(0)
    attention = MultiHeadAttention(8, 2, score=score)
    if score == "general":
        torch.nn.init.normal_(attention.scorers[1].weight)  # away from the identity, so it differs from dot
    x, context = torch.randn(1, 3, 8), torch.randn(1, 5, 8)
    with capture(attention) as captured:
        attention(x, context=context)
    weights = captured.get("hook_pattern")[0]  # [H, Q, K]
    q, k = attention.q_proj(x)[0], attention.k_proj(context)[0]  # [T, 8]
    for h in range(2):
        qh, kh = q[:, 4 * h: 4 * h + 4], k[:, 4 * h: 4 * h + 4]
        e = torch.zeros(3, 5)
        for i in range(3):
            for j in range(5):
                if score == "dot":
                    e[i, j] = qh[i] @ kh[j]
                elif score == "scaled_dot":
                    e[i, j] = qh[i] @ kh[j] / math.sqrt(4)
                elif score == "general":
                    e[i, j] = qh[i] @ attention.scorers[h].weight @ kh[j]
                else:  # Bahdanau: v^T tanh(W_q q_i + W_k k_j)
                    s = attention.scorers[h]
                    e[i, j] = s.v.weight[0] @ torch.tanh(s.w_query.weight @ qh[i] + s.w_key.weight @ kh[j])
        assert torch.allclose(weights[h], torch.softmax(e, dim=-1), atol=1e-5)


def test_no_query_attends_to_source_padding_and_padding_changes_nothing():
    torch.manual_seed(0)
    model = TinySeq2Seq(TransformerConfig(vocab_size=9, d_model=16, n_heads=2, pad_id=0, cross_score="additive")).eval()
    short, padded = torch.tensor([[3, 4, 5]]), torch.tensor([[3, 4, 5, 0, 0]])
    target = torch.tensor([[9, 1, 2]])
    with capture(model) as captured:
        logits = model(padded, target)
    cross = model.attention(captured)["cross"]
    assert cross[..., 3:].abs().max() == 0 and captured.stack("encoder.*.self_attention.hook_pattern")[..., 3:].max() == 0
    assert torch.allclose(logits, model(short, target), atol=1e-5)


def test_a_bad_cross_score_or_pad_is_a_clear_error():
    with pytest.raises(ValueError, match="cross-attention score"):
        TransformerConfig(vocab_size=9, cross_score="cosine")
    with pytest.raises(ValueError, match="pad_id"):
        TransformerConfig(vocab_size=9, pad_id=9)


def test_a_small_date_model_learns_to_write_iso_dates():
    """The fast setting's date model: above 90% exact match on the test dates within a bounded number of steps."""
    data = make_task("dates", n_train=4000, n_test=200, seed=0)
    torch.manual_seed(0)
    model = TinySeq2Seq(TransformerConfig(vocab_size=len(vocabulary(data)), d_model=64, n_heads=4, n_layers=2,
                                          pad_id=vocabulary(data).index("<pad>")))
    trainer = Trainer(model, data, lr=3e-3, batch_size=64, snapshot_every=100)
    exact = 0.0
    while trainer.step < 900 and exact <= 0.9:
        trainer.run(100)
        exact = trainer.evaluate()["sequence_accuracy"]
    assert exact > 0.9, f"exact match {exact:.1%} after {trainer.step} steps"
    snapshot = trainer.snapshots[-1]
    assert snapshot.exact_match > 0.8 and max(map(max, snapshot.alignment)) > max(map(max, trainer.snapshots[0].alignment))
    assert snapshot.maps.meta.kind == "cross-attention" and snapshot.maps.weights.shape[2:] == (11, len(data["test"][0]["source"]))
