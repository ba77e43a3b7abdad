"""Hostile arguments for the notebook surface and the findings' functions: ``explorer.show``, the bertviz drop-ins,
``capture_attention``, the speech reader, the sink experiment and the induction probe. Each call works (its result
has the documented type) or is refused with a sentence that names the argument, and leaves the model as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.display import HTML
from torch import nn

import explorer
from explorer.capture import CapturedAttention
from explorer.data.audio import RATE, clip_path, read_audio
from explorer.data.sequences import make_task
from explorer.induction import induction_probe
from explorer.maps import AttentionMaps
from explorer.phase import PhaseChange, phase_change
from explorer.sinks import check_window, perplexity, window_mask
from explorer.widgets.show import ShowPanel
from tests.fuzzing import FUZZ_TAB, KINDS, finite
from tests.test_fuzz_api import Case, built, draw_call, expect, outcome, shaped, tiny_transformer


class Attention(nn.Module):
    """A nanoGPT-style causal self-attention, as a user writes it: one fused projection, then SDPA."""

    def __init__(self, width: int = 8, heads: int = 2):
        super().__init__()
        self.heads, self.qkv = heads, nn.Linear(width, 3 * width)

    def forward(self, x):  # [B, T, C]
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in self.qkv(x).split(C, dim=2))
        return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)


torch.manual_seed(0)
MODULE = nn.Sequential(Attention(), Attention())
X = torch.randn(1, 5, 8)
ATTENTIONS = tuple(torch.softmax(torch.randn(1, 2, 4, 4), -1) for _ in range(2))  # bertviz's input: per layer [B, H, Q, K]
TOKENS = list("wxyz")
WORDS = read_audio(clip_path("English")).samples[:RATE]  # one second of speech: a few tokens to write
TONE = (0.2 * np.sin(np.arange(RATE) * 2 * np.pi * 440 / RATE)).astype(np.float32)  # a second of A4 at 16 kHz


def captured(model, lazy, max_bytes) -> AttentionMaps:
    with explorer.capture_attention(model, lazy=lazy, max_bytes=max_bytes) as calls:
        MODULE(X)
    return calls.layer(0)


def a_capture() -> CapturedAttention:
    with explorer.capture_attention(MODULE) as calls:
        MODULE(torch.randn(2, 5, 8))
    return calls


CAPTURE = a_capture()
INDUCTION = make_task("induction", n_train=4, n_test=8, length=4, vocab_size=5, seed=0)  # the model's 5 tokens
INDUCTION_MODEL = tiny_transformer()
panel = built(ShowPanel)
html = expect(lambda result: isinstance(result, HTML) and "plotly" in result.data)
CASES = {
    "show weights": Case(lambda obj, tokens, layer, head, view, item: explorer.show(obj, tokens=tokens, layer=layer,
                                                                                      head=head, view=view, item=item),
                         dict(obj=ATTENTIONS, tokens=TOKENS, layer=1, head=0, view="head", item=0),
                         good=dict(view=["layer", "mean", "rollout", "model"], layer=[0, np.int64(1)], tokens=[None]),
                         names=dict(obj=["show", "attention", "weights"], tokens=["token"], view=["view"]),
                         check=panel),
    "show module": Case(lambda inputs, tokens, layer, part, token: explorer.show(MODULE, inputs, tokens=tokens,
                                                                               layer=layer, part=part, token=token),
                        dict(inputs=X, tokens=list("abcde"), layer=0, part=None, token=None),
                        good=dict(token=[0, 4], layer=[1, -1], inputs=[(X,)]),
                        names=dict(inputs=["input", "call", "model", "forward"], tokens=["token"], part=["attention"]),
                        model=lambda: MODULE, check=panel),
    "head_view": Case(explorer.head_view, dict(attention=ATTENTIONS, tokens=TOKENS, sentence_b_start=None, layer=None,
                                                heads=None, include_layers=None, prettify_tokens=True,
                                                html_action="return"),
                      good=dict(sentence_b_start=[2], layer=[1], heads=[[0, 1]], include_layers=[[1]]),
                      names=dict(attention=["attention"], tokens=["token"], include_layers=["layer"], heads=["head"],
                                 sentence_b_start=["sentence_b_start"], prettify_tokens=["prettify"]),
                      check=html),
    "model_view": Case(explorer.model_view, dict(attention=ATTENTIONS, tokens=TOKENS, display_mode="dark",
                                                  include_layers=None, include_heads=None, html_action="return"),
                       good=dict(display_mode=["light"], include_heads=[[1]], include_layers=[[0, 1]]),
                       names=dict(attention=["attention"], tokens=["token"], include_layers=["layer"],
                                  include_heads=["head"]),
                       check=html),
    "capture_attention": Case(captured, dict(model=MODULE, lazy=False, max_bytes=10**6), good=dict(lazy=[True], model=[None]),
                              names=dict(max_bytes=["bytes"]), model=lambda: MODULE, check=built(AttentionMaps)),
    "captured.head": Case(CAPTURE.head, dict(i=0, h=1, item=0), good=dict(i=[1, -1], item=[1, np.int64(1)]),
                          names=dict(i=["call"], h=["head"], item=["item"]), check=shaped(5, 5)),
    "captured.maps": Case(CAPTURE.maps, dict(calls=None, tokens=None, item=0), good=dict(calls=[[0], [1, 0]],
                                                                                      tokens=[list("abcde")]),
                          names=dict(calls=["call"], tokens=["token"], item=["item"]), check=built(AttentionMaps)),
    "read_audio": Case(read_audio, dict(audio=TONE, sample_rate=RATE, name=""),
                       good=dict(sample_rate=[8000, np.int32(44_100)], audio=[torch.from_numpy(TONE)]),
                       names=dict(audio=["audio", "samples", "sound"], sample_rate=["sample rate"], name=["name"]),
                       check=expect(lambda heard: heard.samples.ndim == 1 and finite(torch.from_numpy(heard.samples)))),
    "check_window": Case(check_window, dict(window=8, sinks=2), good=dict(window=[None, np.int64(4)], sinks=[0]),
                         names=dict(window=["window"], sinks=["sink"])),
    "window_mask": Case(window_mask, dict(n_queries=4, n_keys=None, window=2, sinks=1),
                        good=dict(n_keys=[6], window=[None]), names=dict(n_queries=["queries"], n_keys=["keys"],
                                                                          window=["window"], sinks=["sink"]),
                        check=expect(lambda mask: mask.dtype == torch.bool and mask.dim() == 2)),
    "perplexity": Case(perplexity, dict(losses=torch.rand(6), start=0), good=dict(start=[5, np.int64(2)]),
                       names=dict(losses=["loss"], start=["start", "position"]),
                       check=expect(lambda value: value >= 1)),  # inf past a mean loss of 709 nats: exp overflows
    "phase_change": Case(phase_change, dict(steps=list(range(0, 100, 5)), losses=[3.0] * 10 + [1.0] * 10,
                                            top_induction=None, smooth=None),
                         good=dict(smooth=[1, 3], top_induction=[[0.1] * 15 + [0.9] * 5]),
                         names=dict(steps=["step"], losses=["loss"], top_induction=["induction"], smooth=["average"]),
                         check=expect(lambda change: change is None or isinstance(change, PhaseChange))),
    "induction_probe": Case(lambda index, n_examples: induction_probe(INDUCTION, index, n_examples)(INDUCTION_MODEL),
                            dict(index=0, n_examples=4), good=dict(index=[7, -1], n_examples=[1, 100]),
                            names=dict(index=["row", "index", "example"], n_examples=["examples"]),
                            model=lambda: INDUCTION_MODEL,
                            check=expect(lambda snapshot: snapshot.induction is not None)),
    "make_task induction": Case(make_task, dict(name="induction", n_train=4, n_test=2, length=4, vocab_size=5, seed=0),
                                names=dict(name=["task"], length=["length", "segment"], vocab_size=["vocabulary"]),
                                check=lambda data, arguments: len(data["train"][0]["input_ids"]) == 3 * int(arguments["length"])),
}


@pytest.mark.parametrize("name", sorted(CASES))
@FUZZ_TAB
@given(data=st.data())
def test_a_notebook_function_works_or_refuses_in_words(name, data):
    case = CASES[name]
    argument, arguments = draw_call(data, case)
    outcome(case, argument, arguments)


ARGUMENTS = [(name, argument) for name in sorted(CASES) for argument in sorted(CASES[name].arguments)]


@pytest.mark.parametrize("name, argument", ARGUMENTS, ids=[f"{n}-{a}" for n, a in ARGUMENTS])
def test_every_argument_refuses_every_kind_of_wrong_value_in_words(name, argument):
    case = CASES[name]
    for value in KINDS:
        outcome(case, argument, {**case.arguments, argument: value})


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    from explorer.models import language
    from tests.conftest import save_tiny_gpt2

    return language.load(str(save_tiny_gpt2(tmp_path_factory.mktemp("gpt2"))))


@pytest.mark.parametrize("name", ["sink_experiment", "token_losses"])
@FUZZ_TAB
@given(data=st.data())
def test_the_sink_experiment_runs_or_refuses_in_words(gpt2, name, data):
    from explorer.sinks import SinkRun, sink_experiment

    text = "the cat sat on the mat and the dog sat on the log " * 2
    cases = {
        "sink_experiment": Case(lambda text, window, sinks, max_tokens: sink_experiment(gpt2, text, window, sinks,
                                                                                       max_tokens),
                                dict(text=text, window=4, sinks=1, max_tokens=20), good=dict(max_tokens=[3, 10**6]),
                                names=dict(text=["prompt", "text"], window=["window"], sinks=["sink"],
                                           max_tokens=["max_tokens"]),
                                model=lambda: gpt2.model, check=built(SinkRun)),
        "token_losses": Case(gpt2.token_losses, dict(text=text, window=None, sinks=0), good=dict(window=[4]),
                             names=dict(text=["prompt", "text"], window=["window"], sinks=["sink"]),
                             model=lambda: gpt2.model, check=expect(lambda losses: finite(losses))),
    }
    argument, arguments = draw_call(data, cases[name])
    outcome(cases[name], argument, arguments)


@settings(FUZZ_TAB, max_examples=5)  # a valid draw is a whole Whisper pass, seconds on a busy machine
@given(data=st.data())
def test_whisper_hears_or_refuses_in_words(whisper, data):
    """Refusals come before the encoder runs; a valid draw hears the first second of the English clip."""
    case = Case(lambda **arguments: heard(whisper, **arguments),
                dict(audio=(WORDS, RATE), task="transcribe", language="en", sample_rate=None, name=""),
                good=dict(task=["translate"], language=[None, "de"]),
                names=dict(audio=["audio", "samples", "sound"], task=["task"], language=["language"],
                           sample_rate=["sample rate"], name=["name"]),
                model=lambda: whisper.model, check=expect(lambda text: text is None or isinstance(text, str)))
    argument, arguments = draw_call(data, case)
    outcome(case, argument, arguments)


def heard(whisper, **arguments) -> str | None:
    """What Whisper wrote, or None when it heard no words in a valid sound (its refusal says so in words)."""
    try:
        return whisper.run(**arguments).text
    except ValueError as error:
        if "wrote nothing" in str(error):
            return None
        raise
