"""Finite in, finite out: huge queries and keys or a tiny temperature give the softmax's limit or a message, never
NaN under an OK status."""

from __future__ import annotations

import pytest
import torch

from explorer.attention import attend, masked_softmax
from explorer.sessions.mechanism import MechanismSession


@pytest.mark.parametrize("temperature", [1e-45, 1e-46, 1e-300, 5e-324])
def test_a_tiny_temperature_puts_all_weight_on_the_largest_score(temperature):
    scores = torch.tensor([[0.5, 2.0, 1.0], [3.0, 3.0, -1.0]])
    weights = masked_softmax(scores, temperature=temperature)
    torch.testing.assert_close(weights, torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]))


def test_huge_scores_and_a_tiny_temperature_with_a_mask_stay_finite():
    scores = torch.tensor([[3e38, -3e38, 1.0], [1e30, 0.0, -1e30]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    weights = masked_softmax(scores, mask, temperature=1e-45)
    torch.testing.assert_close(weights, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))


def test_scores_that_overflow_are_refused_with_a_message():
    q = torch.tensor([[1e30, 0.0]])
    with pytest.raises(ValueError, match="too large"):
        attend(q, q, torch.ones(1, 2))


def mechanism_cases():
    for score in ("dot", "scaled_dot", "general", "additive"):
        for temperature in (1.0, 1e-45, 1e-46, 1e30):
            for big in (1e19, 1e30, 3e38):
                yield score, temperature, big


def test_the_mechanism_tab_never_shows_nan_under_an_ok_status():
    session = MechanismSession()
    for score, temperature, big in mechanism_cases():
        queries = [list(v) for v in session.queries]
        keys = [list(v) for v in session.keys]
        queries[0], keys[0], keys[1] = [big, 0.0], [big, 0.0], [-big, 0.0]
        try:
            session.update(score=score, temperature=temperature, queries=queries, keys=keys)
        except ValueError as error:
            assert str(error).endswith(".") and "nan" not in str(error).lower()
            continue
        result = session.result
        assert session.status_kind == "ok"
        assert torch.isfinite(result.weights).all() and torch.isfinite(result.context).all(), (score, temperature, big)


@pytest.mark.parametrize("score", ["dot", "scaled_dot", "general", "additive"])
def test_the_mechanism_tab_computes_a_temperature_of_1e_minus_46(score):
    session = MechanismSession()
    session.update(score=score, temperature=1e-46)
    weights = session.result.weights
    assert session.status_kind == "ok" and session.temperature == 1e-46
    assert torch.isfinite(weights).all() and torch.allclose(weights.sum(-1), torch.ones(len(weights)))
    assert ((weights == 0) | (weights == 1) | (weights == 0.5)).all()  # the limit: all weight on the top score
    session.update(mask="causal")
    assert session.temperature == 1e-46  # the typed temperature survives the next change
