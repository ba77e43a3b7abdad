"""The Speech tab from plain Python (its session) and without a kernel (its panel), on the packaged Whisper base."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

from explorer.data.audio import clip_path, read_audio
from explorer.sessions.speech import SpeechSession
from explorer.views import speech as view
from explorer.widgets.speech import SpeechPanel


class Counting:
    """The model, counting its runs: picking a token or a head must not run it."""

    def __init__(self, model):
        self.model, self.runs = model, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def run(self, *args, **kwargs):
        self.runs += 1
        return self.model.run(*args, **kwargs)


@pytest.fixture(scope="module")
def panel(whisper):
    session = SpeechSession(speech_model=Counting(whisper), clip="English", task="transcribe")
    panel = SpeechPanel(session)
    panel.wait(600)
    assert session.reading is not None, session.status
    return panel


def flac(samples) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, samples, 16_000, format="FLAC")
    return out.getvalue()


def test_picking_a_word_token_head_or_part_only_redraws(panel):
    session, model = panel.session, panel.session.speech_model
    runs, reading = model.runs, session.reading
    assert "London" in reading.text and "English" in panel.summary.value
    panel.spectrogram.click_word(2)  # "My": its first token
    panel.wait()
    assert session.token == reading.word_of_token.index(2) and panel.spectrogram.picked == 2
    expected = reading.attention_over_time()[session.token][: reading.n_frames]
    np.testing.assert_allclose(np.frombuffer(panel.spectrogram.attention, "<f4"), expected, rtol=1e-6)
    session.update(part="decoder", layer=4, head=3)
    panel.wait()
    assert panel.map_view.title.startswith("decoder self-attention, layer 4, head 3")
    np.testing.assert_allclose(panel.map_view.matrix, np.round(reading.decoder.head(4, 3).numpy(), 3), atol=1e-6)
    session.update(part="encoder", overlay="this head")
    panel.wait()
    assert panel.map_view.shape == [len(reading.encoder.tokens)] * 2
    assert "layer 4, head 3 while writing" in panel.spectrogram.title
    panel.heads_view.click(5, 1)
    panel.wait()
    assert (session.layer, session.head) == (5, 1)
    assert model.runs == runs and session.reading is reading
    assert len(panel.spectrogram.words) == len(reading.words)


def test_the_heads_grid_marks_the_alignment_heads(panel):
    reading = panel.session.reading
    grid = view.heads_grid(reading, 5, 1)
    dotted = {(int(o["y0"] + 0.5), int(o["x0"] + 0.5)) for o in grid.outlines if o["dash"]}
    assert dotted == set(reading.alignment_heads)
    agreement = reading.agreement()
    assert agreement.shape == (6, 8) and 0 <= agreement.min() and agreement.max() <= 1
    mean_alignment = np.mean([agreement[l, h] for l, h in reading.alignment_heads])
    assert mean_alignment > agreement.mean()  # on a transcription, they follow the sound better than most heads


def test_bad_audio_is_explained_and_the_view_stays(panel):
    session = panel.session
    reading, shown = session.reading, panel.spectrogram.title
    for audio, words in ((b"", "empty"), (b"these are words, not sound", "not an audio file"),
                         (flac(np.zeros(16_000 * 2, np.float32)), "silent")):
        session.hear(audio, "mine.flac")
        panel.wait()
        assert session.status_kind == "error" and words in session.status, session.status
        assert session.reading is reading and panel.spectrogram.title == shown
    panel.microphone._on_page_message(panel.microphone, {"event": "refused", "reason": "The page may not use the "
                                                         "microphone: allow it for this page"}, [])
    assert "may not use the microphone" in session.status
    panel.upload._on_page_message(panel.upload, {"event": "too_big", "name": "concert.wav", "size": 200_000_000}, [])
    assert "concert.wav is 200.0 MB" in session.status and "8.0 MB" in session.status
    assert session.reading is reading


def test_your_audio_is_heard_again_with_a_new_task_and_never_linked(panel):
    session = panel.session
    audio = flac(read_audio(clip_path("German")).samples)
    panel.microphone._on_page_message(panel.microphone, {"event": "file", "name": "your recording.wav"}, [audio])
    panel.wait()
    assert session.heard == ("microphone", "your recording.wav") and session.reading.language == "de"
    assert "Heute" in session.reading.text and "your recording" in panel.summary.value
    session.update(task="translate", token=3)
    assert session.busy and session.stoppable  # the work line counts the seconds and offers Stop while Whisper hears
    panel.wait()
    assert session.heard[0] == "microphone" and "Good morning" in session.reading.text and not session.stoppable
    link = session.settings()
    assert link["clip"] == "English" and link["token"] == 0  # the link names the clip on the list, not the recording
    session.update(clip="Italian")
    panel.wait()
    assert session.heard == ("clip", "Italian") and "Said: <i>Ciao" in panel.summary.value


def test_link_round_trip_keeps_settings(panel, whisper):
    session = panel.session
    session.update(clip="Italian", task="transcribe", language="it", part="cross", layer=3, head=1, token=2,
                   overlay="alignment heads")
    panel.wait()
    other = SpeechSession(speech_model=whisper)
    assert other.load_state(session.state()) == []
    other.wait(600)
    assert other.settings() == session.settings() and other.reading.text == session.reading.text


@pytest.mark.parametrize("changes, words", [
    (dict(language="klingon"), "does not know the language"), (dict(task="summarise"), "Choose one of: translate, transcribe"),
    (dict(clip="Dutch"), "no sample clip called 'Dutch'"), (dict(part="rollout"), "part is one of"),
    (dict(layer=6), "Layer 6 does not exist"), (dict(head=8), "Head 8 does not exist"),
    (dict(token=99), "Token 99 does not exist"), (dict(overlay="all"), "overlay is one of"),
    (dict(preset="nope"), "no preset")])
def test_bad_settings_are_refused_and_nothing_changes(panel, changes, words):
    session = panel.session
    before = session.settings()
    with pytest.raises(ValueError, match=words):
        session.update(**changes)
    assert session.settings() == before


def test_the_dashboard_opens_a_speech_link(whisper):
    from explorer import links
    from explorer.app import build_app

    app = build_app(speech=dict(speech_model=whisper))
    app.apply_link(f"tab=speech&state={links.encode(dict(clip='Spanish', task='transcribe', layer=4, head=7))}", 600)
    session = app.sessions["speech"]
    assert (session.clip, session.layer, session.head) == ("Spanish", 4, 7) and app.notice.value == ""
    assert "Madrid" in session.reading.text
    assert app.link().startswith("?tab=speech&state=1.")


def test_stop_ends_the_writing_early_and_keeps_what_was_written(whisper):
    class StopsAtOnce(Counting):
        def run(self, *args, **kwargs):  # the visitor presses Stop as Whisper starts writing
            original = self.model._greedy

            def greedy(hidden, prompt):
                self.model.stop()
                return original(hidden, prompt)

            self.model._greedy = greedy
            try:
                return self.model.run(*args, **kwargs)
            finally:
                del self.model._greedy

    session = SpeechSession(speech_model=StopsAtOnce(whisper), clip="English", task="transcribe")
    session.wait(600)
    assert session.reading is None and session.status == "Stopped before Whisper wrote a word."
