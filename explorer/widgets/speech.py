"""The Speech tab: Whisper hears the microphone, a sample clip or the visitor's file, writes it (translated into
English, or transcribed), and shows where it looked: the spectrogram with the picked token's cross-attention over
it and the words along time, any head of the cross, encoder and decoder attention, and the alignment heads.

The state is a ``SpeechSession`` (it loads Whisper and hears in its worker); this panel binds the controls to its
settings and draws its last reading. Picking a token, word, layer or head only redraws.
"""

from __future__ import annotations

import ipywidgets as widgets

from explorer import links
from explorer.data.audio import CLIPS, wav_bytes
from explorer.sessions.speech import OVERLAYS, PARTS, PRESETS, TASKS, SpeechSession
from explorer.threads import Throttle
from explorer.views import speech as view
from explorer.views.export import export_scope
from explorer.widgets.controls import StatusLine, bind, button, columns, grows, section, shows_errors, tagged
from explorer.widgets.export import CopyLink, ExportBar, maps_export
from explorer.widgets.heatmap_view import HeatmapView
from explorer.widgets.microphone import MicRecorder
from explorer.widgets.speech_view import SpeechView
from explorer.widgets.upload import SizedUpload
from explorer.widgets.work import WorkLine

CHOOSE = "(choose)"
MAX_UPLOAD_BYTES = 8_000_000  # 30 s of CD-quality stereo WAV is 5.3 MB; the server refuses messages over 10 MB
AUDIO_FILES = "audio/*,.wav,.flac,.ogg,.oga,.opus,.mp3"


class SpeechPanel(widgets.VBox):
    """Inputs and controls on the left; the text, the spectrogram, one head's map and the heads grid on the right."""

    def __init__(self, session: SpeechSession | None = None):
        super().__init__()
        self.add_class("ae-speech")
        self.session = session = session or SpeechSession()
        self.status = StatusLine(session)
        self.redraw_soon = Throttle(session.home, self.redraw, 0.1)
        self.spectrogram = SpeechView(name="ae-speech-spectrogram")
        self.spectrogram.add_class("ae-speech-spectrogram")
        self.spectrogram.on_word(lambda index: self._guarded(self._on_word, index))
        self.map_view = tagged(HeatmapView(name="ae-speech-map", **view.CANVAS_STYLES["map"]), "ae-speech-map")
        self.map_view.on_click(lambda row, col: self._guarded(self._on_map_click, row))
        self.heads_view = tagged(HeatmapView(name="ae-speech-heads", **view.CANVAS_STYLES["heads"]), "ae-speech-heads")
        self.heads_view.on_click(lambda row, col: self._guarded(session.select_head, row, col))
        self._sent_audio = None  # the reading whose audio the page holds
        self._build_controls()
        self.summary = tagged(widgets.HTML(), "ae-speech-summary")
        self.outputs = widgets.VBox([self.summary, self.spectrogram, widgets.Box(
            [self.map_view, self.heads_view], layout=widgets.Layout(display="flex", flex_flow="row wrap"))],
            layout=widgets.Layout(flex="1 1 600px", min_width="0"))
        self.children = [columns(self.controls, self.outputs)]
        session.observe(lambda _: self._on_model(), "speech_model")
        session.observe(lambda _: self.redraw_soon(), ["reading", "token", "part", "layer", "head", "overlay"])
        self._on_model()
        self.redraw()

    def _build_controls(self) -> None:  # long: one control per setting, made and bound in the order they appear
        s, w = self.session, widgets
        wide = w.Layout(width="100%", max_width=grows("330px"))  # sizes in em grow with the font (present mode)
        self.microphone = tagged(MicRecorder(description="Record"), "ae-speech-microphone")
        self.upload = tagged(SizedUpload(accept=AUDIO_FILES, description="Your audio file", max_bytes=MAX_UPLOAD_BYTES),
                             "ae-speech-upload")
        for source, kind in ((self.microphone, "microphone"), (self.upload, "file")):
            source.observe(lambda change, kind=kind: self._on_audio(change, kind), "value")
            source.observe(lambda change: change["new"] and s.say(change["new"], "error"), "refusal")
        self.clip = tagged(w.Dropdown(options=list(CLIPS), layout=wide), "ae-speech-clip")
        self.preset = tagged(w.Dropdown(options=[CHOOSE, *PRESETS], layout=wide), "ae-speech-preset")
        self.task = tagged(w.ToggleButtons(options=list(TASKS), style=dict(button_width="92px")), "ae-speech-task")
        self.stop_button = button("Stop", s.stop_work, "ae-speech-stop", "warning", "stop", "80px")
        self.language = tagged(w.Dropdown(options=[("detect", "")], description="language", layout=wide),
                               "ae-speech-language")
        self.part = tagged(w.ToggleButtons(options=list(PARTS), style=dict(button_width="70px"), tooltips=[
            "written tokens over the audio", "audio over audio", "written tokens over the tokens read"]),
            "ae-speech-part")
        self.layer = tagged(w.IntSlider(min=0, max=5, description="layer"), "ae-speech-layer")
        self.head = tagged(w.Dropdown(options=[0], description="head", layout=w.Layout(width=grows("160px"))),
                           "ae-speech-head")
        self.overlay = tagged(w.ToggleButtons(options=list(OVERLAYS), style=dict(button_width="120px"), tooltips=[
            "the mean of Whisper's alignment heads", "the layer and head picked here"]), "ae-speech-overlay")
        self.token = tagged(w.Dropdown(description="token", layout=wide), "ae-speech-token")
        self.model_name = tagged(w.Text(placeholder="Whisper base (packaged), or a folder", layout=wide,
                                        continuous_update=False), "ae-speech-model-name")
        self.export_bar = ExportBar(s, {"spectrogram": "ae-speech-spectrogram", "map": "ae-speech-map",
                                        "heads": "ae-speech-heads"},
                                    {"attention maps": maps_export(self.export_maps)}, name="speech")
        self.bindings = [
            bind(self.clip, s, "clip"), bind(self.task, s, "task"), bind(self.part, s, "part"),
            bind(self.layer, s, "layer"), bind(self.overlay, s, "overlay"), bind(self.model_name, s, "model"),
            bind(self.preset, s, "preset", to_view=lambda v: v or CHOOSE, to_setting=lambda v: "" if v == CHOOSE else v),
            bind(self.head, s, "head", options=lambda: list(range(s.speech_model.n_heads if s.speech_model
                                                                  else max(s.head + 1, 1)))),
            bind(self.language, s, "language", options=self._language_options),
        ]
        self.token_binding = bind(self.token, s, "token", options=self._token_options)
        self.controls = w.VBox([
            section("Hear", self.microphone, self.upload, w.HTML("<small>or a sample clip (synthetic speech)</small>"),
                    self.clip),
            section("Example", self.preset),
            section("Whisper writes", w.HBox([self.task, self.stop_button], layout=w.Layout(flex_flow="row wrap")),
                    self.language),
            section("Where to look", self.token, self.part, self.layer, self.head,
                    w.HTML("<small>over the spectrogram:</small>"), self.overlay),
            section("Model", self.model_name),
            section("Export", self.export_bar),
            section("Share", CopyLink(lambda: links.query(s.key, s.state())),
                    w.HTML("<small>A link names the sample clip, never your own audio.</small>")),
            self.status, WorkLine(s),
        ], layout=w.Layout(width=grows("360px"), min_width="300px", flex=f"0 1 {grows('360px')}"))

    def _language_options(self) -> list:
        model = self.session.speech_model
        names = model.language_names() if model is not None else {}
        return [("detect", "")] + [(f"{name} ({code})", code) for code, name in sorted(names.items(), key=lambda i: i[1])]

    def _token_options(self) -> list:
        reading = self.session.reading
        labels = reading.cross.tokens if reading is not None else ()
        return [(f"{i}: {label}", i) for i, label in enumerate(labels)] or [("(none yet)", 0)]

    # ----- session -> panel --------------------------------------------------------------------------------------
    def _on_model(self) -> None:
        model = self.session.speech_model
        if model is not None:
            self.layer.max = model.n_layers - 1
            for binding in self.bindings:
                binding.show()

    def _on_audio(self, change, kind: str) -> None:
        if not change["new"]:
            return
        received = change["new"][0]
        change["owner"].value = ()  # the widget does not keep the audio (nor send it back to the page)
        self._guarded(self.session.hear, bytes(received["content"]), received["name"], kind)

    def wait(self, timeout: float = 120.0) -> None:
        """Block until the session's work is done and its last result is drawn (for notebooks and tests)."""
        self.session.wait(timeout)
        self.redraw_soon.flush()

    # ----- actions -----------------------------------------------------------------------------------------------
    def _on_word(self, index: int) -> None:
        reading = self.session.reading
        if reading is not None:
            self.session.select_token(reading.word_of_token.index(index))

    def _on_map_click(self, row: int) -> None:
        if self.session.part != "encoder":
            self.session.select_token(row)

    def export_maps(self):
        reading = self.session.reading
        if reading is None:
            return None
        return export_scope(getattr(reading, self.session.part), self.session.layer)[0]

    @shows_errors
    def _guarded(self, action, *args) -> None:
        action(*args)

    @shows_errors
    def redraw(self) -> None:
        """Draw the summary, the spectrogram, the chosen attention's map and the heads grid from the last reading."""
        s, reading = self.session, self.session.reading
        self.token_binding.show()
        if reading is None:
            return
        token, layer, head = min(s.token, len(reading.tokens) - 1), s.layer, s.head
        clip = CLIPS[s.heard[1]] if s.heard and s.heard[0] == "clip" else None
        name = s.speech_model.language_names().get(reading.language, "") if s.speech_model is not None else ""
        self.summary.value = view.summary_html(reading, name, clip)
        picture = view.spectrogram(reading, token, layer, None if s.overlay == "alignment heads" else head)
        if self._sent_audio is not reading:
            picture["audio"], self._sent_audio = wav_bytes(reading.audio.samples), reading
        self.spectrogram.show(**picture)
        if s.part == "cross":
            self.map_view.draw(view.cross_map(reading, layer, head, token))
        elif s.part == "encoder":
            self.map_view.draw(view.encoder_map(reading, min(layer, reading.encoder.n_layers - 1), head))
        else:
            self.map_view.draw(view.decoder_map(reading, layer, head, token))
        self.heads_view.draw(view.heads_grid(reading, layer, head))
