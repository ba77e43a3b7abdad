"""A refused Load keeps the tab's model, history and settings, and says why in words."""

from __future__ import annotations

import pytest
import torch

from explorer import checkpoints
from explorer.models.cbam import CBAMNet
from explorer.models.transformer import TinyTransformer, TransformerConfig
from explorer.sessions.transformer_lab import TransformerLabSession
from explorer.sessions.vision import VisionSession


@pytest.fixture
def lab():
    session = TransformerLabSession()
    session.train(5)
    assert session.wait(120)
    yield session
    session.stop_work()


def lab_state(session):
    trainer = session.runs[0].trainer
    return trainer.model, list(trainer.history), session.settings()


def nan_transformer():
    model = TinyTransformer(TransformerConfig(vocab_size=10, d_model=64, n_heads=4))
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    return model


@pytest.mark.parametrize("make, words", [
    (lambda: CBAMNet(4), "not a Transformer"),
    (nan_transformer, "NaN"),
    (lambda: TinyTransformer(TransformerConfig(vocab_size=10, d_model=48, n_heads=4)), "cannot show"),
    (lambda: TinyTransformer(TransformerConfig(vocab_size=10, n_layers=6)), "cannot show"),
    (lambda: TinyTransformer(TransformerConfig(vocab_size=10, max_len=8)), "at most 7 tokens"),
])
def test_the_transformer_lab_refuses_a_checkpoint_and_keeps_its_state(lab, tmp_path, make, words):
    checkpoints.save(make(), tmp_path / checkpoints.FILE_NAME)
    lab.update(path=str(tmp_path))
    before = lab_state(lab)
    with pytest.raises(ValueError, match=words) as refused:
        lab.load()
    assert "Nothing was loaded" in str(refused.value) or "nothing was loaded" in str(refused.value)
    assert lab_state(lab) == before
    lab.update(layers=1)  # the architecture still rebuilds: the refusal left nothing half-set
    assert lab.wait(60) and lab.runs[0].trainer.model.config.n_layers == 1


def test_the_transformer_lab_points_at_the_vision_tab_for_its_nets(lab, tmp_path):
    checkpoints.save(CBAMNet(4), tmp_path / "cbam.safetensors")
    lab.update(path=str(tmp_path))
    with pytest.raises(ValueError, match="Vision tab"):
        lab.load()


@pytest.fixture(scope="module")
def vision():
    session = VisionSession(n_train=200, n_test=50)
    session.train(10)
    assert session.wait(120)
    yield session
    session.stop_work()


def vision_state(session):
    return ({name: (t.model, list(t.history)) for name, t in session.trainers.items()}, session.settings())


@pytest.mark.parametrize("files, words", [
    ({checkpoints.FILE_NAME: lambda: TinyTransformer(TransformerConfig(vocab_size=10))}, "Train a Transformer"),
    ({"cbam.safetensors": lambda: TinyTransformer(TransformerConfig(vocab_size=10)),
      "plain.safetensors": lambda: CBAMNet(4, cbam=False)}, "not the CBAM net"),
    ({"cbam.safetensors": lambda: CBAMNet(7), "plain.safetensors": lambda: CBAMNet(7, cbam=False)}, "classes"),
])
def test_the_vision_tab_refuses_a_checkpoint_and_keeps_its_nets(vision, tmp_path, files, words):
    for name, make in files.items():
        checkpoints.save(make(), tmp_path / name)
    vision.update(path=str(tmp_path))
    before = vision_state(vision)
    vision.load()
    assert vision.wait(60)
    assert vision.status_kind == "error" and words in vision.status and "nothing was loaded" in vision.status.lower()
    assert vision_state(vision) == before
