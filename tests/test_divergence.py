"""A diverging step never wrecks a tab's model: train well, explode at learning rate 1e9, train on at a sane rate."""

from __future__ import annotations

import pytest
import torch

from explorer.sessions.transformer_lab import TransformerLabSession
from explorer.sessions.vision import VisionSession


def weights(model) -> dict:
    return {name: value.clone() for name, value in model.state_dict().items()}


def same(before: dict, model) -> bool:
    return all(torch.equal(before[name], value) for name, value in model.state_dict().items())


@pytest.fixture
def lab():
    session = TransformerLabSession()
    yield session
    session.stop_work()


def lab_train(session, steps):
    session.train(steps)
    assert session.wait(300)


def test_the_transformer_lab_recovers_from_learning_rate_1e9(lab):
    lab_train(lab, 200)
    trainer = lab.runs[0].trainer
    good = trainer.evaluate()["sequence_accuracy"]
    assert good > 0.9
    kept, step, rows = weights(trainer.model), trainer.step, list(trainer.history)
    lab.update(lr=1e9)
    lab_train(lab, 30)
    assert lab.status_kind == "error" and "paused" in lab.status and "Lower the learning rate" in lab.status
    assert trainer.step == step and trainer.history == rows and same(kept, trainer.model)
    assert trainer.evaluate()["sequence_accuracy"] == good
    lab.update(lr=1e-3)
    lab_train(lab, 30)
    assert lab.status_kind == "ok" and trainer.step == step + 30
    assert trainer.evaluate()["sequence_accuracy"] > 0.9


@pytest.fixture
def vision():
    session = VisionSession(n_train=600, n_test=200)
    yield session
    session.stop_work()


def vision_train(session, steps):
    session.train(steps)
    assert session.wait(300)


def accuracies(session) -> dict:
    return {name: trainer.evaluate()["accuracy"] for name, trainer in session.trainers.items()}


def test_the_vision_tab_recovers_from_learning_rate_1e9(vision):
    vision_train(vision, 60)
    good = accuracies(vision)
    assert good["cbam"] > 0.9 and good["plain"] > 0.9  # chance is 0.25 with four shapes; the ViT learns slower
    kept = {name: weights(t.model) for name, t in vision.trainers.items()}
    steps = {name: t.step for name, t in vision.trainers.items()}
    vision.update(lr=1e9)
    vision_train(vision, 30)
    assert vision.status_kind == "error" and "paused" in vision.status and "Lower the learning rate" in vision.status
    assert {name: t.step for name, t in vision.trainers.items()} == steps
    assert all(same(kept[name], t.model) for name, t in vision.trainers.items())
    assert accuracies(vision) == good
    vision.update(lr=3e-3)
    vision_train(vision, 30)
    assert vision.status_kind == "ok"
    assert all(t.step == steps[name] + 30 for name, t in vision.trainers.items())
    after = accuracies(vision)
    assert after["cbam"] > 0.9 and after["plain"] > 0.9 and after["vit"] >= good["vit"] - 0.1
