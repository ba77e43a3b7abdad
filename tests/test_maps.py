"""The AttentionMaps record and the functions over it, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from explorer.maps import AttentionMaps, ImageAttention, MapsInfo, attention_distance, entropy, pattern_score, rollout


def tiny_maps():
    # 2 layers, 2 heads, 2 tokens; every row sums to 1.
    weights = torch.tensor([
        [[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]],
        [[[0.5, 0.5], [0.0, 1.0]], [[0.5, 0.5], [1.0, 0.0]]],
    ])
    return AttentionMaps(tokens=["a", "b"], weights=weights, meta=MapsInfo(source="toy"))


def test_record_is_validated_against_its_labels():
    with pytest.raises(ValueError, match="do not match"):
        AttentionMaps(tokens=["a", "b", "c"], weights=torch.ones(1, 1, 2, 2) / 2)
    with pytest.raises(ValueError, match=r"\[layers, heads, queries, keys\]"):
        AttentionMaps(tokens=["a"], weights=torch.ones(1, 1, 1))


def test_key_tokens_default_to_tokens_and_can_differ():
    maps = tiny_maps()
    assert maps.keys == ("a", "b") and maps.key_tokens is None
    cross = AttentionMaps(tokens=["x"], key_tokens=["a", "b", "c"], weights=torch.ones(1, 2, 1, 3) / 3)
    assert cross.keys == ("a", "b", "c") and cross.n_heads == 2


def test_weights_are_float32_and_frozen():
    maps = AttentionMaps(tokens=["a"], weights=torch.ones(1, 1, 1, 1, dtype=torch.float64))
    assert maps.weights.dtype == torch.float32
    with pytest.raises(AttributeError):
        maps.tokens = ("b",)


def test_head_and_mean_over_heads():
    maps = tiny_maps()
    torch.testing.assert_close(maps.head(0, 1), torch.tensor([[0.0, 1.0], [0.5, 0.5]]))
    torch.testing.assert_close(maps.mean_over_heads(0), torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="layers 0 to 1"):
        maps.head(2, 0)
    with pytest.raises(ValueError, match="heads 0 to 1"):
        maps.head(0, 5)


def test_entropy_by_hand():
    ln2 = math.log(2)
    # layer 0 head 0: rows [1, 0] (0 nats) and [.5, .5] (ln 2): mean ln2 / 2
    expected = torch.tensor([[ln2 / 2, ln2 / 2], [ln2 / 2, ln2 / 2]])
    torch.testing.assert_close(entropy(tiny_maps()), expected)


def test_rollout_by_hand():
    maps = tiny_maps()
    eye = torch.eye(2)
    a0 = 0.5 * torch.tensor([[0.5, 0.5], [0.5, 0.5]]) + 0.5 * eye
    a1 = 0.5 * torch.tensor([[0.5, 0.5], [0.5, 0.5]]) + 0.5 * eye
    result = rollout(maps)
    torch.testing.assert_close(result[0], a0)
    torch.testing.assert_close(result[1], a1 @ a0)
    torch.testing.assert_close(result.sum(-1), torch.ones(2, 2))
    torch.testing.assert_close(rollout(maps, add_residual=False)[1], torch.full((2, 2), 0.5))


def test_pattern_score_and_distance():
    maps = tiny_maps()
    anti_diagonal = torch.tensor([[False, True], [True, False]])
    torch.testing.assert_close(pattern_score(maps, anti_diagonal)[0], torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(attention_distance(maps)[0], torch.tensor([0.25, 0.75]))


def test_npz_and_json_round_trip(tmp_path):
    maps = tiny_maps()
    loaded = AttentionMaps.load_npz(maps.save_npz(tmp_path / "maps.npz"))
    torch.testing.assert_close(loaded.weights, maps.weights)
    assert loaded.tokens == maps.tokens and loaded.meta == MapsInfo(source="toy")
    again = AttentionMaps.from_dict(__import__("json").loads(maps.to_json()))
    torch.testing.assert_close(again.weights, maps.weights)


def test_image_attention_checks_stage_shapes():
    record = ImageAttention(channel=[torch.rand(2, 8)], spatial=[torch.rand(2, 16, 16)])
    assert record.n_stages == 1
    with pytest.raises(ValueError):
        ImageAttention(channel=[torch.rand(2, 8)], spatial=[torch.rand(3, 16, 16)])
