"""Hostile values for every setting of every tab, its actions and its links: a value is taken (and the settings still
make a link) or refused with a sentence that names the setting, with every setting and the model as before."""

from __future__ import annotations

import base64
import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from traitlets import Bool, Float, Int, List, Unicode

from explorer import links
from tests.conftest import save_tiny_gpt2
from tests.fuzzing import FUZZ_TAB, HOSTILE, timed, words


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    from explorer.models import language, pretrained
    from explorer.sessions.language import LanguageSession
    from explorer.sessions.mechanism import MechanismSession
    from explorer.sessions.pretrained import PretrainedSession
    from explorer.sessions.transformer_lab import TransformerLabSession
    from explorer.sessions.vision import VisionSession

    folder = save_tiny_gpt2(tmp_path_factory.mktemp("gpt2"))
    made = {"mechanism": MechanismSession(), "pretrained": PretrainedSession(encoder=pretrained.load()),
            "llm": LanguageSession(language_model=language.load(str(folder)), model=str(folder)),
            "transformer": TransformerLabSession(), "vision": VisionSession(n_train=64, n_test=16)}
    for session in made.values():
        session.wait(120)
    yield made
    for session in made.values():
        session.stop_work()


SETTINGS = {"mechanism": "explorer.sessions.mechanism:MechanismSession",
            "pretrained": "explorer.sessions.pretrained:PretrainedSession",
            "llm": "explorer.sessions.language:LanguageSession",
            "transformer": "explorer.sessions.transformer_lab:TransformerLabSession",
            "vision": "explorer.sessions.vision:VisionSession"}


def session_class(key: str):
    import importlib

    module, name = SETTINGS[key].split(":")
    return getattr(importlib.import_module(module), name)


PAIRS = [(key, name) for key in SETTINGS for name in session_class(key).all_setting_names()]
KINDS = {Bool: bool, Int: int, Float: float, Unicode: str, List: list}
GENERIC = {"number", "second", "model's", "with", "that", "first"}  # words of a label that name no one setting


def state(session) -> dict:
    """Every setting, and which models the session holds (a refusal must keep them all)."""
    held = {name: repr(getattr(session, name)) for name in session.all_setting_names()}
    for name in ("encoder", "language_model"):
        held[name] = id(getattr(session, name, None))
    runs = getattr(session, "runs", None)  # a lab's runs; the Language session's ``runs`` counts its jobs
    held["runs"] = [id(run.trainer.model) for run in runs if hasattr(run, "trainer")] if isinstance(runs, (list, tuple)) else runs
    held["trainers"] = {name: id(t.model) for name, t in (getattr(session, "trainers", None) or {}).items()}
    return held


def candidates(session, name: str) -> list:
    """Values the setting may take besides hostile ones: its own, and for ``preset`` the tab's examples."""
    return [getattr(session, name), *(session.presets if name == "preset" else [])]


def taken(session, name: str) -> None:
    """An accepted value: the session settles, every setting keeps its kind and the settings still make a link."""
    assert session.wait(120), "the session did not settle"
    for setting, trait in session.traits().items():
        if setting in session.all_setting_names():
            kind = next((k for t, k in KINDS.items() if isinstance(trait, t)), None)
            assert kind is None or isinstance(getattr(session, setting), kind), (setting, getattr(session, setting))
    links.decode(links.encode(session.settings()))


def refused(session, error, name: str, before: dict) -> None:
    label = session.label(name)
    words(error, name, name.replace("_", " "), label, *(w for w in label.split() if len(w) > 3 and w not in GENERIC))
    assert state(session) == before, "a refused value changed the session"


@pytest.mark.parametrize("key, name", PAIRS, ids=[f"{k}-{n}" for k, n in PAIRS])
@FUZZ_TAB
@given(data=st.data())
def test_every_setting_takes_a_value_or_refuses_it_in_words(sessions, key, name, data):
    session = sessions[key]
    value = data.draw(HOSTILE | st.sampled_from(candidates(session, name)), label=name)
    if key == "llm" and name == "model" and isinstance(value, str) and not value.strip():
        value = "a-model-that-is-not-here"  # "" is the packaged SmolLM2: a load of seconds, not a hostile value
    try_setting(session, name, value)


def try_setting(session, name: str, value) -> None:
    """``update(name=value)``: taken, or refused in words with the session as before."""
    before = state(session)
    try:
        timed(lambda: session.update(**{name: value}))
    except ValueError as error:
        refused(session, error, name, before)
    else:
        taken(session, name)


def actions(session, key: str, data):
    """One action of the tab with hostile arguments, as a function of no arguments."""
    number = HOSTILE
    common = {"apply_preset": lambda: session.apply_preset(data.draw(HOSTILE | st.sampled_from(list(session.presets))))}
    own = {
        "mechanism": {"set_vector": lambda: session.set_vector(data.draw(HOSTILE | st.just("keys")), data.draw(number),
                                                               data.draw(HOSTILE)),
                      "toggle_cell": lambda: session.toggle_cell(data.draw(number), data.draw(number))},
        "pretrained": {"select_token": lambda: session.select_token(data.draw(number)),
                       "select_head": lambda: session.select_head(data.draw(number), data.draw(number))},
        "llm": {"select_token": lambda: session.select_token(data.draw(number)),
                "zoom_to": lambda: session.zoom_to(data.draw(number), data.draw(number))},
        "transformer": {"train": lambda: session.train(data.draw(number)),
                        "translate": lambda: session.translate(data.draw(HOSTILE)),
                        "add_text": lambda: session.add_text(data.draw(HOSTILE), data.draw(HOSTILE))},
        "vision": {"train": lambda: session.train(data.draw(number)),
                   "pick_patch": lambda: session.pick_patch(data.draw(number), data.draw(number)),
                   "show_image": lambda: session.show_image(data.draw(HOSTILE))},
    }[key]
    choices = {**common, **own}
    return choices[data.draw(st.sampled_from(sorted(choices)), label="action")]


@pytest.mark.parametrize("key", sorted(SETTINGS))
@FUZZ_TAB
@given(data=st.data())
def test_actions_work_or_refuse_in_words(sessions, key, data):
    session = sessions[key]
    try_action(session, actions(session, key, data))


def try_action(session, action) -> None:
    """``action()``: it works, or it is refused in words with the session as before and not left training."""
    before = state(session)
    try:
        timed(action)
    except (ValueError, TypeError) as error:
        words(error)
        assert state(session) == before, "a refused action changed the session"
        assert not getattr(session, "training", False), "a refused action left the session training"
    finally:
        if getattr(session, "training", False):  # a valid number of steps started training: end it
            session.stop_work()
        session.wait(120)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=8)


def state_of(settings: dict) -> str:
    """A link's state of anything JSON can spell, NaN and Infinity included (a forged link)."""
    text = json.dumps(settings, allow_nan=True)
    return "1." + base64.urlsafe_b64encode(zlib.compress(text.encode("utf-8", "surrogatepass"))).decode().rstrip("=")


@pytest.mark.parametrize("key", sorted(SETTINGS))
@FUZZ_TAB
@given(data=st.data())
def test_a_forged_link_applies_what_it_can_and_says_the_rest(sessions, key, data):
    try_link(sessions[key], data, slow=lambda settings: key == "llm" and not str(settings.get("model", "x")).strip())


def try_link(session, data, slow=lambda settings: False) -> None:
    """A forged link: what it can set is set, the rest is said in words. ``slow(settings)``: its model is a load of
    seconds (the packaged SmolLM2 or Whisper), not a hostile value, and is left out."""
    names = session.setting_names()
    settings = data.draw(st.dictionaries(st.sampled_from(names) | st.text(max_size=5), JSON, max_size=4), label="state")
    if slow(settings):
        settings.pop("model")
    link = data.draw(st.just(state_of(settings)) | st.text(max_size=20), label="link")
    notices = timed(lambda: session.load_state(link))
    assert isinstance(notices, list)
    for notice in notices:
        words(ValueError(notice))
    taken(session, "state")
