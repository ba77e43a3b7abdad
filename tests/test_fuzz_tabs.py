"""Hostile settings, actions and links for the Speech tab and the panel of ``explorer.show``, as
``tests/test_fuzz_sessions.py`` does for the other tabs: taken, or refused in words with every setting as before."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzzing import FUZZ_TAB, HOSTILE
from tests.test_fuzz_sessions import try_action, try_link, try_setting

# A changed task, language or clip makes Whisper hear again (seconds): few examples per setting keep it to a minute.
FEW = settings(FUZZ_TAB, max_examples=4)
SPEECH_SETTINGS = ("preset", "clip", "task", "language", "part", "layer", "head", "token", "overlay")
SHOW_SETTINGS = ("part", "layer", "head", "view", "token", "zoom", "item", "text", "new_tokens")


@pytest.fixture(scope="module")
def tabs(whisper):
    from explorer.models.readers import reader_for
    from explorer.sessions.show import ShowSession
    from explorer.sessions.speech import SpeechSession

    speech = SpeechSession(speech_model=whisper)
    attentions = tuple(torch.softmax(torch.randn(1, 2, 5, 5, generator=torch.Generator().manual_seed(i)), -1)
                       for i in range(2))
    show = ShowSession(reader_for(attentions, tokens=list("abcde")))
    made = {"speech": speech, "show": show}
    for session in made.values():
        session.wait(120)
    yield made
    for session in made.values():
        session.stop_work()


def candidates(session, name: str) -> list:
    return [getattr(session, name), *(list(session.presets) if name == "preset" else [])]


PAIRS = [("speech", name) for name in SPEECH_SETTINGS] + [("show", name) for name in SHOW_SETTINGS]


@pytest.mark.parametrize("key, name", PAIRS, ids=[f"{k}-{n}" for k, n in PAIRS])
@FEW
@given(data=st.data())
def test_a_tab_setting_takes_a_value_or_refuses_it_in_words(tabs, key, name, data):
    session = tabs[key]
    try_setting(session, name, data.draw(HOSTILE | st.sampled_from(candidates(session, name)), label=name))


def actions(session, key: str, data):
    number = HOSTILE
    own = {
        "speech": {"select_token": lambda: session.select_token(data.draw(number)),
                   "select_head": lambda: session.select_head(data.draw(number), data.draw(number)),
                   "select_time": lambda: session.select_time(data.draw(number)),
                   "hear": lambda: session.hear(data.draw(HOSTILE), data.draw(HOSTILE), data.draw(HOSTILE))},
        "show": {"select_token": lambda: session.select_token(data.draw(number)),
                 "zoom_to": lambda: session.zoom_to(data.draw(number), data.draw(number)),
                 "show_text": lambda: session.show_text(data.draw(HOSTILE))},
    }[key]
    return own[data.draw(st.sampled_from(sorted(own)), label="action")]


@pytest.mark.parametrize("key", ["speech", "show"])
@FUZZ_TAB
@given(data=st.data())
def test_a_tab_action_works_or_refuses_in_words(tabs, key, data):
    try_action(tabs[key], actions(tabs[key], key, data))


@FEW
@given(data=st.data())
def test_a_forged_speech_link_applies_what_it_can_and_says_the_rest(tabs, data):
    """(A panel of explorer.show lives in a notebook and has no link.)"""
    try_link(tabs["speech"], data, slow=lambda settings: "model" in settings)
