"""A class caps one press of Train (on by default, the teacher can change or lift it); a single user has no cap."""

from __future__ import annotations

import pytest

from explorer.sessions.transformer_lab import TransformerLabSession
from explorer.sessions.vision import VisionSession
from explorer.limits import CLASSROOM_MAX_STEPS, step_cap


def test_a_class_has_a_cap_unless_the_teacher_lifts_it(monkeypatch):
    monkeypatch.delenv("AE_MAX_TRAIN_STEPS", raising=False)
    monkeypatch.delenv("AE_CLASSROOM", raising=False)
    assert step_cap() is None
    monkeypatch.setenv("AE_CLASSROOM", "1")
    assert step_cap() == CLASSROOM_MAX_STEPS
    monkeypatch.setenv("AE_MAX_TRAIN_STEPS", "500")
    assert step_cap() == 500
    monkeypatch.setenv("AE_MAX_TRAIN_STEPS", "0")
    assert step_cap() is None


def test_the_transformer_tab_refuses_a_run_over_the_cap_and_keeps_its_model(monkeypatch):
    monkeypatch.setenv("AE_CLASSROOM", "1")
    monkeypatch.delenv("AE_MAX_TRAIN_STEPS", raising=False)
    session = TransformerLabSession()
    session.wait()
    with pytest.raises(ValueError, match=f"at most {CLASSROOM_MAX_STEPS:,} steps"):
        session.update(steps=10**9)
    with pytest.raises(ValueError, match="press Train again"):
        session.train(CLASSROOM_MAX_STEPS + 1)
    assert not session.training and session.runs[0].trainer.step == 0
    session.train(5)
    assert session.wait(60) and session.runs[0].trainer.step == 5


def test_the_vision_tab_refuses_a_run_over_the_cap(monkeypatch):
    monkeypatch.setenv("AE_CLASSROOM", "1")
    monkeypatch.setenv("AE_MAX_TRAIN_STEPS", "50")
    session = VisionSession(n_train=200, n_test=50)
    session.wait()
    with pytest.raises(ValueError, match="at most 50 steps"):
        session.train(51)
    assert not session.training
