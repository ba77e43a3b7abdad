"""The Speech tab's state: what Whisper hears (a sample clip, the visitor's file or microphone), what it writes
(translate or transcribe, in a language or detected), and where to look (a written token, a layer and head).

Loading and every hearing run in the session's worker; the token, part, layer, head and overlay only choose what to
draw from the last ``reading``. A hearing that fails (silence, a file that is not audio) keeps the last reading on
screen. Links name a sample clip, never the visitor's own audio.
"""

from __future__ import annotations

from traitlets import Any, Int, TraitError, Unicode, observe, validate

from explorer.arguments import choice, real, shown, text, whole
from explorer.sessions.base import Session, place_in_model, say_name
from explorer.sessions.rules import Choice

PARTS = ("cross", "encoder", "decoder")
OVERLAYS = ("alignment heads", "this head")
TASKS = ("translate", "transcribe")
DEFAULT_CLIP = "German"
MAX_NAME = 255  # characters of an uploaded file's name, as file systems allow


def _clips() -> dict:
    from explorer.data.audio import CLIPS

    return CLIPS


PRESETS = {
    "German, translated": dict(clip="German", task="translate", language=""),
    "French, transcribed": dict(clip="French", task="transcribe", language=""),
    "an alignment head, up close": dict(clip="English", task="transcribe", part="cross", layer=3, head=1,
                                        overlay="this head"),
}


def _load(name_or_path: str):
    from explorer.models.speech import load_speech

    return load_speech(name_or_path or None)


class SpeechSession(Session):
    """Whisper and the last thing it heard; ``reading`` (an ``explorer.models.speech.SpeechReading``) is drawn."""

    key = "speech"
    title = "Speech"
    presets = {name: {"preset": name} for name in PRESETS}

    preset = Unicode("", help="example").tag(link=True)
    model = Unicode("", help="model").tag(link=True)  # "" is the packaged Whisper base
    clip = Unicode(DEFAULT_CLIP, help="sample clip").tag(link=True)
    task = Choice(TASKS, help="task (translate into English, or transcribe)").tag(link=True)
    language = Unicode("", help="language").tag(link=True)  # "" lets Whisper detect it
    part = Unicode("cross", help="attention").tag(link=True)
    layer = Int(3, help="layer").tag(link=True)  # one of Whisper base's alignment heads, whose map reads well
    head = Int(1, help="head").tag(link=True)
    token = Int(0, help="token").tag(link=True)  # the written token picked
    overlay = Unicode("alignment heads", help="overlay").tag(link=True)  # what is drawn over the spectrogram

    speech_model = Any(None)  # the loaded SpeechModel
    reading = Any(None)  # the last SpeechReading
    heard = Any(None)  # (kind, name) of what ``reading`` heard: ("clip", "German"), ("file", "me.wav"), ("microphone", "")

    def __init__(self, owner=None, speech_model=None, **settings):
        self._loaded_model = settings.get("model", "")
        self._sources: dict = {}  # (kind, name) -> the visitor's audio bytes, for hearing it again with other settings
        super().__init__(owner, **settings)
        if speech_model is not None:
            self._loaded(speech_model)
        else:
            self.load_model(self.model)

    # ----- settings ----------------------------------------------------------------------------------------------
    def update(self, **changes) -> None:
        preset = changes.get("preset")
        if not (preset is None or isinstance(preset, str) and not preset):
            changes = {**PRESETS[self.known_preset(preset)], **changes}  # a list or a dict is refused in words
        super().update(**changes)

    def ordered(self, settings: dict) -> list:
        first = ("model", "preset", "clip", "task", "language")
        return sorted(settings.items(), key=lambda item: first.index(item[0]) if item[0] in first else len(first))

    def settings(self) -> dict:
        """The link's settings; a token of the visitor's own recording means nothing in a link to a clip."""
        values = super().settings()
        if self.heard is not None and self.heard[0] != "clip":
            values["token"] = 0
        return values

    @validate("preset")
    def _valid_preset(self, proposal):
        if proposal["value"] and proposal["value"] not in PRESETS:
            raise TraitError(f"There is no preset called '{say_name(proposal['value'])}'. Choose one of: {', '.join(PRESETS)}.")
        return proposal["value"]

    @validate("clip")
    def _valid_clip(self, proposal):
        if proposal["value"] not in _clips():
            raise TraitError(f"There is no sample clip called '{say_name(proposal['value'])}'. Choose one of: "
                             f"{', '.join(_clips())}.")
        return proposal["value"]

    @validate("language")
    def _valid_language(self, proposal):
        if self.speech_model is None or not proposal["value"].strip():
            return proposal["value"].strip()
        try:
            return self.speech_model.check_language(proposal["value"])
        except ValueError as error:
            raise TraitError(str(error)) from None

    @validate("part", "overlay")
    def _valid_choice(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        choices = PARTS if name == "part" else OVERLAYS
        if value not in choices:
            raise TraitError(f"The {name} is one of {', '.join(choices)}, not '{say_name(value)}'.")
        return value

    @validate("layer", "head")
    def _valid_place(self, proposal):
        return place_in_model(proposal["trait"].name, proposal["value"], self.speech_model)

    @validate("token")
    def _valid_token(self, proposal):
        n = len(self.reading.tokens) if self.reading is not None else None
        if proposal["value"] < 0 or (n is not None and proposal["value"] >= n):
            raise TraitError(f"Token {proposal['value']} does not exist: Whisper wrote {n} tokens.")
        return proposal["value"]

    # ----- the model ---------------------------------------------------------------------------------------------
    @observe("model")
    def _on_model(self, change) -> None:
        if change["new"] != self._loaded_model:
            self.load_model(change["new"])

    def load_model(self, name_or_path: str) -> None:
        """Load Whisper in the worker (the first time, converted from its packages); a failure keeps the last one."""
        self.load_in_worker(name_or_path, _load, "Whisper base")

    def _loaded(self, speech_model) -> None:
        self.speech_model, self._loaded_model = speech_model, self.model
        self.busy = False
        self.update(layer=min(self.layer, speech_model.n_layers - 1), head=min(self.head, speech_model.n_heads - 1),
                    language=self.language if self.language in speech_model.languages else "")
        self.say(f"Loaded {speech_model.name}: {speech_model.n_layers} decoder layers x {speech_model.n_heads} "
                 f"heads. {speech_model.notice}".strip(), "ok")
        self.hear_again()

    # ----- hearing -----------------------------------------------------------------------------------------------
    @observe("clip")
    def _on_clip(self, change) -> None:
        self.listen(("clip", self.clip))

    @observe("task", "language")
    def _on_task(self, change) -> None:
        self.hear_again()

    def hear_again(self) -> None:
        """Hear what is on screen again (with a new task or language); the chosen clip if nothing is yet."""
        self.listen(self.heard if self.heard is not None else ("clip", self.clip))

    def hear(self, audio: bytes, name: str, kind: str = "file") -> None:
        """Hear the visitor's audio (``kind`` "file" or "microphone"); it is kept to hear again, never linked."""
        if not isinstance(audio, (bytes, bytearray, memoryview)):
            raise TypeError(f"The audio to hear must be the bytes of a file or a recording, got {shown(audio)}.")
        kind = choice(kind, "kind of audio", ("file", "microphone"))
        name = text(name, "audio file's name", max_length=MAX_NAME)
        self._sources = {(kind, name): bytes(audio)}
        self.listen((kind, name))

    def listen(self, source: tuple) -> None:
        """Run Whisper on ``source`` in the worker; the reading replaces the last one only if it works."""
        if self.speech_model is None:
            self.say("Whisper is still loading; what you chose will be heard when it is ready.", "busy")
            return
        from explorer.data.audio import clip_path

        kind, name = source
        audio = clip_path(name) if kind == "clip" else self._sources[source]
        label = {"clip": f"the {name} clip", "microphone": "your recording"}.get(kind, name)
        model, task, language = self.speech_model, self.task, self.language or None
        doing = "Translating" if task == "translate" else "Transcribing"
        self.submit(f"{doing} {label}…", lambda: (source, model.run(audio, task, language, name=label)), self._heard,
                    stoppable=True)  # Stop ends the writing after its current token

    def _heard(self, result) -> None:
        source, reading = result
        with self.hold_trait_notifications():
            self.heard, self.reading = source, reading
            self.token = min(self.token, len(reading.tokens) - 1) if source[0] == "clip" else 0
        said = "Translated" if reading.task == "translate" else "Transcribed"
        ended = " (stopped early)" if reading.stopped else ""
        self.say(f"{said}: {len(reading.tokens)} tokens over {reading.audio.duration:.1f} s{ended}. "
                 f"{reading.notice}".strip(), "ok")

    def stop_work(self) -> None:
        if self.speech_model is not None:
            self.speech_model.stop()
        super().stop_work()

    # ----- where to look -----------------------------------------------------------------------------------------
    def select_token(self, index: int) -> None:
        self.update(token=whole(index, "token"))

    def select_head(self, layer: int, head: int) -> None:
        self.update(layer=layer, head=head)

    def select_time(self, seconds: float) -> None:
        """Pick the first token of the word spoken at ``seconds``."""
        seconds = real(seconds, "time in seconds", 0)
        if self.reading is None:
            return
        starts = self.reading.token_starts[:-1]
        self.update(token=max([i for i, start in enumerate(starts) if start <= seconds] or [0]))
