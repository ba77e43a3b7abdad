"""Wrong types and values in the public API raise ValueError or TypeError with a sentence a student understands."""

from __future__ import annotations

import re

import pytest
import torch

from explorer import checkpoints
from explorer.attention import MultiHeadAttention, attend, masked_softmax, score_matrix
from explorer.data.sequences import make_task
from explorer.lab import Lab
from explorer.maps import AttentionMaps, entropy, pattern_score, rollout
from explorer.models.cbam import CBAMNet, grad_cam
from explorer.models.transformer import TinyTransformer, TransformerConfig
from explorer.sessions.mechanism import MechanismSession
from explorer.sessions.pretrained import PretrainedSession
from explorer.sessions.transformer_lab import TransformerLabSession
from explorer.training import Trainer

INTERNALS = ("could not convert string to float", "invalid literal for int()", "TraitError", "Traceback",
             "object has no attribute", "must be real number", "not supported between", "NoneType")

q = torch.randn(3, 4)
v = torch.randn(3, 2)
maps = AttentionMaps(tokens=list("abc"), weights=torch.softmax(torch.randn(1, 2, 3, 3), -1))
data = make_task("reverse", n_train=64, n_test=16, seed=0)
model = TinyTransformer(TransformerConfig(vocab_size=10, d_model=16, n_heads=2, n_layers=1))
cnn = CBAMNet(4, width=8, ratio=4)


def trainer(**options):
    return Trainer(model, data, **options)


def session_update(cls, **settings):
    def call():
        session = cls()
        try:
            session.update(**settings)
        finally:
            session.stop_work()
    return call


def importance(*args, **options):
    from explorer.faithfulness import compare_methods, token_importance

    return lambda: (compare_methods if "seed" in options else token_importance)(*args, **options)


CASES = {
    "token_importance not a model": importance("a model", "text", "attention"),
    "token_importance method unknown": importance(model, [1, 2, 3], "saliency"),
    "token_importance position text": importance(model, [1, 2, 3], "attention", position="2"),
    "token_importance layer text": importance(model, [1, 2, 3], "attention", position=1, layer="0"),
    "token_importance text for a lab model": importance(model, "1 2 3", "attention"),
    "compare_methods seed text": importance(model, [1, 2, 3], position=1, seed="x"),
    "attend score unknown": lambda: attend(q, q, v, score="cosine"),
    "attend temperature text": lambda: attend(q, q, v, temperature="hot"),
    "attend temperature nan": lambda: attend(q, q, v, temperature=float("nan")),
    "attend mask shape": lambda: attend(q, q, v, mask=torch.ones(2, 5, dtype=torch.bool)),
    "attend values count": lambda: attend(q, q, torch.randn(4, 2)),
    "attend query not a tensor": lambda: attend("abc", q, v),
    "score_matrix lengths": lambda: score_matrix(q, torch.randn(3, 5)),
    "masked_softmax mask shape": lambda: masked_softmax(torch.randn(3, 3), torch.ones(4, 4, dtype=torch.bool)),
    "MultiHeadAttention heads": lambda: MultiHeadAttention(64, 5),
    "MultiHeadAttention text": lambda: MultiHeadAttention("wide", 4),
    "MultiHeadAttention mask shape": lambda: MultiHeadAttention(8, 2)(torch.randn(1, 3, 8), mask=torch.ones(5, 5)),
    "Trainer lr None": lambda: trainer(lr=None),
    "Trainer lr text": lambda: trainer(lr="abc"),
    "Trainer lr nan": lambda: trainer(lr=float("nan")),
    "Trainer steps nan": lambda: trainer().run(float("nan")),
    "Trainer steps text": lambda: trainer().run("ten"),
    "Trainer batch text": lambda: trainer(batch_size="big"),
    "Lab of nothing": lambda: Lab({}),
    "Lab of a list": lambda: Lab([trainer()]),
    "Lab of a model": lambda: Lab({"a": model}),
    "Lab chunk 0": lambda: Lab({"a": trainer()}, chunk=0),
    "Lab start text": lambda: Lab({"a": trainer()}, evaluate=False).start("ten"),
    "checkpoints.load wrong path": lambda: checkpoints.load("/no/such/folder/model.safetensors"),
    "checkpoints.load not a path": lambda: checkpoints.load(None),
    "rollout not maps": lambda: rollout("maps"),
    "entropy not maps": lambda: entropy([1, 2]),
    "pattern_score shape": lambda: pattern_score(maps, torch.ones(5, 5, dtype=torch.bool)),
    "AttentionMaps tokens count": lambda: AttentionMaps(tokens=list("ab"), weights=torch.rand(1, 1, 3, 3)),
    "grad_cam class missing": lambda: grad_cam(cnn, torch.rand(1, 1, 32, 32), target=7),
    "grad_cam class text": lambda: grad_cam(cnn, torch.rand(1, 1, 32, 32), target="cat"),
    "Mechanism temperature text": session_update(MechanismSession, temperature="warm"),
    "Mechanism queries text": session_update(MechanismSession, queries="abc"),
    "Lab steps text": session_update(TransformerLabSession, steps="many"),
    "Lab lr None": session_update(TransformerLabSession, lr=None),
    "Lab layers 2.5": session_update(TransformerLabSession, layers=2.5),
    "Pretrained ablated 5": session_update(PretrainedSession, ablated=5),
    "Pretrained ablated text": session_update(PretrainedSession, ablated=[["a", "b"]]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_arguments_raise_a_sentence(name):
    with pytest.raises((ValueError, TypeError)) as raised:
        CASES[name]()
    message = str(raised.value)
    assert not any(words in message for words in INTERNALS), message
    assert re.match(r"^['\"A-Z0-9(/]", message) and message.rstrip().endswith((".", ".)")), message
    assert len(message) < 400, message
