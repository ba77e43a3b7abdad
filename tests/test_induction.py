"""The induction task, attention-only models, the probe's scores, and the phase change found in a curve."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer import heads
from explorer.data.sequences import make_task
from explorer.induction import induction_scores
from explorer.phase import CROSSING, induction_curves, phase_change, phase_change_of
from explorer.maps import AttentionMaps, InductionScores, Snapshot
from explorer.models.transformer import TinyTransformer, TransformerConfig


@pytest.fixture(scope="module")
def rows():
    return make_task("induction", n_train=300, n_test=50, length=8, vocab_size=20, seed=3)["train"]


def test_each_row_holds_its_segment_twice_and_the_distance_varies(rows):
    distances = set()
    for row in rows:
        x, (first, second) = row["input_ids"], row["starts"]
        assert len(x) == 24 and second - first >= 8 and second + 8 <= 24
        assert x[first:first + 8] == x[second:second + 8]
        distances.add(second - first)
    assert distances == set(range(8, 17))  # every distance from L to 2L turns up


def test_labels_are_the_next_token_and_the_marks_cover_each_copy_but_its_last_token(rows):
    for row in rows.select(range(40)):
        x, y, (first, second) = row["input_ids"], row["labels"], row["starts"]
        assert y == x[1:] + [-100]
        assert [i for i, m in enumerate(row["second_copy"]) if m] == list(range(second, second + 7))
        assert [i for i, m in enumerate(row["first_copy"]) if m] == list(range(first, first + 7))
        for i in range(second, second + 7):  # the first copy gives the answer away
            assert y[i] == x[i - (second - first) + 1]


def test_same_seed_same_rows():
    a, b = (make_task("induction", n_train=20, n_test=5, length=6, vocab_size=9, seed=1) for _ in range(2))
    assert a["train"]["input_ids"] == b["train"]["input_ids"] and a["test"]["starts"] == b["test"]["starts"]


@pytest.mark.parametrize("options, match", [
    (dict(length=1), "segment of `length` tokens: it needs at least 2"),
    (dict(length=171), "at most 170"),
    (dict(vocab_size=1), "with one token every sequence is the same"),
])
def test_bad_induction_requests_are_clear(options, match):
    with pytest.raises(ValueError, match=match):
        make_task("induction", **{"length": 8, "vocab_size": 16, **options})


def test_attention_only_layers_have_no_feed_forward_and_the_same_attention():
    torch.manual_seed(0)
    full = TinyTransformer(TransformerConfig(vocab_size=12, n_layers=3, causal=True))
    torch.manual_seed(0)
    alone = TinyTransformer(TransformerConfig(vocab_size=12, n_layers=3, causal=True, attention_only=True))
    assert all(block.feed_forward is None for block in alone.blocks)
    assert not any("feed_forward" in name or "norms.1" in name for name, _ in alone.named_parameters())
    # by hand: an attention-only block is x + MHA(LN(x))
    x = torch.randn(2, 5, 64)
    block = alone.blocks[0]
    expected = x + block.self_attention(block.norms[0](x), causal=True)
    assert torch.allclose(block(x, causal=True), expected)
    assert sum(p.numel() for p in alone.parameters()) < sum(p.numel() for p in full.parameters())


def test_copy_score_reads_the_weight_on_each_querys_key():
    weights = torch.zeros(1, 2, 4, 4)
    weights[0, 0, 2, 1] = weights[0, 0, 3, 0] = 1.0  # head 0 puts all on the keys asked for
    weights[0, 1, 2, 1] = 0.5
    scores = heads.copy_score(AttentionMaps(tokens=list("abcd"), weights=weights), [2, 3], [1, 0])
    assert scores.tolist() == [[1.0, 0.25]]


def test_probe_scores_equal_a_hand_computation():
    data = make_task("induction", n_train=20, n_test=6, length=5, vocab_size=11, seed=2)
    torch.manual_seed(1)
    model = TinyTransformer(TransformerConfig(vocab_size=11, n_layers=2, causal=True, attention_only=True)).eval()
    batch = data["test"].with_format("torch")[:]
    with torch.no_grad():
        scores = induction_scores(model, batch)
        logits = model(batch["input_ids"])
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch["labels"].clamp_min(0), reduction="none")
    assert scores.second_copy_loss == pytest.approx(float(losses[batch["second_copy"]].mean()), abs=1e-5)
    assert scores.first_copy_loss == pytest.approx(float(losses[batch["first_copy"]].mean()), abs=1e-5)
    # induction score from a recomputation of the weights: softmax(q k / sqrt(d)) with the causal mask
    x = model.embed(batch["input_ids"])
    block = model.blocks[0]
    q, k, _ = block.self_attention.project(block.norms[0](x), None)
    weights = torch.softmax((q @ k.transpose(-2, -1) / 4.0).masked_fill(~torch.ones(15, 15, dtype=bool).tril(), -1e9), -1)
    expected = []
    for b in range(6):
        first, second = batch["starts"][b].tolist()
        queries = torch.arange(second, second + 4)
        expected.append(weights[b, :, queries, queries - (second - first) + 1].mean(-1))
    assert np.allclose(scores.induction[0], torch.stack(expected).mean(0).tolist(), atol=1e-5)
    previous = torch.stack([weights[b].diagonal(-1, -2, -1).mean(-1) for b in range(6)]).mean(0)
    assert np.allclose(scores.previous_token[0], previous.tolist(), atol=1e-5)


def a_known_drop(seed=0, at=1200):
    """A plateau near chance, a slow creep, then a sudden fall at step ``at``, with the probe's noise."""
    steps = np.arange(0, 2001, 10)
    rng = np.random.default_rng(seed)
    loss = 4.2 - 0.4 * steps / 2000 - 3.0 / (1 + np.exp(-(steps - at) / 20)) + rng.normal(0, 0.05, len(steps))
    induction = 0.05 + 0.85 / (1 + np.exp(-(steps - at - 15) / 20))
    return steps, loss, induction


@pytest.mark.parametrize("seed, at", [(0, 1200), (1, 600), (2, 1750)])
def test_phase_change_is_found_where_a_synthetic_curve_drops(seed, at):
    steps, loss, induction = a_known_drop(seed, at)
    found = phase_change(steps, loss, induction)
    assert abs(found.step - at) <= 20
    assert found.fall == pytest.approx(3.0 / (4 * 20) * 100, rel=0.35)  # a logistic's steepest slope: height / 4w
    assert found.induction_step == int(steps[np.argmax(induction >= CROSSING)]) and abs(found.induction_step - at - 15) <= 10


def test_no_phase_change_on_a_flat_or_short_curve():
    steps = np.arange(0, 500, 10)
    assert phase_change(steps, np.full(len(steps), 3.0) + np.linspace(0, 0.1, len(steps))) is None  # never falls
    assert phase_change(steps[:4], [4.0, 3.0, 2.0, 1.0]) is None  # too few points to smooth
    found = phase_change(steps, np.linspace(4, 3, len(steps)), np.full(len(steps), 0.1))
    assert found.induction_step is None  # no head ever got to CROSSING
    with pytest.raises(ValueError, match="one length"):
        phase_change([0, 1, 2], [1.0, 2.0])


def test_phase_change_of_snapshots_reads_their_scores():
    steps, loss, induction = a_known_drop()
    maps = AttentionMaps(tokens=list("ab"), weights=torch.full((1, 2, 2, 2), 0.5))
    snapshots = [Snapshot(int(s), maps, induction=InductionScores(4.2, float(l), ((0.0, float(i)),), ((0.1, 0.2),)))
                 for s, l, i in zip(steps, loss, induction)]
    curves = induction_curves(snapshots + [Snapshot(2010, maps)])  # a snapshot without scores is left out
    assert curves["induction"].shape == (len(steps), 1, 2) and curves["steps"][-1] == 2000
    assert phase_change_of(snapshots) == phase_change(steps, loss, induction)


def induction_run(layers: int, steps: int = 400):
    """A small seeded budget: segments of 8 over 64 tokens, width 64, 4 heads, learned positions, lr 5e-3."""
    from explorer.training import Trainer

    data = make_task("induction", n_train=4000, n_test=64, length=8, vocab_size=64, seed=0)
    torch.manual_seed(0)
    model = TinyTransformer(TransformerConfig(vocab_size=64, n_layers=layers, causal=True, attention_only=True,
                                              positional="learned"))
    trainer = Trainer(model, data, lr=5e-3, seed=0, snapshot_every=50)
    trainer.run(steps)
    return trainer


def test_two_attention_layers_form_an_induction_head_and_one_layer_does_not():
    two, one = induction_run(2), induction_run(1)
    formed, control = two.snapshots[-1].induction, one.snapshots[-1].induction
    assert formed.top_induction > 0.8 and formed.second_copy_loss < 1.0
    best = np.unravel_index(np.argmax(formed.induction), np.shape(formed.induction))
    assert best[0] == 1  # the induction head is in the second layer, reading the first layer's previous-token head
    assert max(formed.previous_token[0]) > 0.4
    assert control.top_induction < 0.5 and control.second_copy_loss > 2.5
    assert two.snapshots[0].induction.top_induction < 0.2  # it was not there at the start
    phase = phase_change_of(two.snapshots)
    assert phase.induction_step is not None and abs(phase.step - phase.induction_step) <= 100
