"""The attention-sink experiment of the Language model tab, from Python and in its panel, on a tiny random GPT-2."""

from __future__ import annotations

import threading

import pytest
import torch

from explorer import sinks
from explorer.models import language
from explorer.sessions.language import LanguageSession
from tests.test_language import tiny_gpt2  # noqa: F401  (the fixture)


@pytest.fixture
def session(tiny_gpt2):  # noqa: F811
    return LanguageSession(language_model=language.load(tiny_gpt2), window=8, sinks=2, sink_tokens=60)


def test_the_preset_sets_xiao_et_als_window_and_sinks_and_runs_it(session):
    session.apply_preset("attention sinks (Xiao et al. 2023)")
    assert (session.window, session.sinks, session.sink_tokens, session.sink_text) == (256, 4, 2000, "bundled")
    assert session.wait()
    assert list(session.sink_run.losses) == ["full attention", "window 256", "window 256 + first 4"]


def test_the_experiment_runs_three_passes_equal_to_token_losses(session):
    session.run_sinks()
    assert session.wait()
    run, model = session.sink_run, session.language_model
    assert list(run.losses) == ["full attention", "window 8", "window 8 + first 2"] and not run.stopped
    assert run.tokens == 60 and session.progress == 1.0
    text = model.tokenizer.decode(model.encode(sinks.bundled_text(), 60)[0])
    for (name, window, n_sinks), losses in zip(run.settings, run.losses.values()):
        assert torch.allclose(losses, model.token_losses(text, window, n_sinks), atol=1e-5), name
    assert "Perplexity past token 8 of 60" in session.status and session.status_kind == "ok"


def test_stop_during_the_run_keeps_the_curves_so_far(session):
    model = session.language_model
    original = model.token_losses

    def then_stop(*args, **kwargs):  # Stop pressed while the first pass runs: it ends at the next layer
        losses = original(*args, **kwargs)
        session.worker.stopping.set()
        return losses

    model.token_losses = then_stop
    session.run_sinks()
    assert session.wait()
    run = session.sink_run
    assert run.stopped and list(run.losses) == ["full attention"]
    assert "Stopped after 1 of 3 passes; the curves so far are kept" in session.status


def test_sink_experiment_stops_within_a_pass(tiny_gpt2):  # noqa: F811
    model, stop, passes = language.load(tiny_gpt2), threading.Event(), []
    steps = []

    def progress(done):
        steps.append(done)
        if len(steps) == 3:  # the second pass's first layer
            stop.set()
    run = sinks.sink_experiment(model, sinks.bundled_text(), 8, 2, 40, on_pass=passes.append, on_progress=progress,
                                stop=stop)
    assert run.stopped and list(run.losses) == ["full attention"] and len(passes) == 1


@pytest.mark.parametrize("changes, words", [
    (dict(window=0), "at least 2 tokens|2 tokens .* or more"), (dict(window=1), "2 tokens"),
    (dict(sinks=8), "fewer sink tokens than the window"), (dict(window=4, sinks=6), "fewer sink tokens"),
    (dict(sink_tokens=1), "2 tokens or more"), (dict(sink_text="novel"), "Unknown text")])
def test_bad_settings_are_refused_and_the_curves_kept(session, changes, words):
    session.run_sinks()
    assert session.wait()
    before, run = session.settings(), session.sink_run
    with pytest.raises(ValueError, match=words):
        session.update(**changes)
    assert session.settings() == before and session.sink_run is run


def test_a_prompt_of_one_token_is_explained(session):
    session.update(sink_text="prompt", prompt="cat")
    session.run_sinks()
    assert session.wait()
    assert session.status_kind == "error" and "1 token: a loss needs a token and one after it" in session.status


def test_the_panel_draws_each_setting_and_says_where_the_window_leaves_the_start(session):
    from explorer.widgets.language import LanguagePanel

    panel = LanguagePanel(session)
    assert not panel.sink_box.plot.figure.data and "Run the sink experiment" in panel.sink_box.plot.empty_text
    panel.sink_box.run_button.click()
    panel.wait()
    box = panel.sink_box
    figure = box.plot.figure
    assert [len(trace.x) for trace in figure.data] == [59, 59, 59]
    assert "from token 8 the window no longer sees the first tokens" in figure.layout.annotations[0].text
    assert "window 8 + first 2" in box.summary.value and "vs full" in box.summary.value
    box.window.value = 1  # refused: the status says why, the control goes back
    assert session.window == 8 and box.window.value == 8 and "2 tokens" in session.status
