"""The spectrogram of what Whisper heard, the picked token's cross-attention over it, and the words along time.

One canvas in the page: the log-mel spectrogram (sent once per hearing as float32 bytes, pooled to the canvas's
width by ``explorer.views.speech``), the attention per 20 ms frame drawn over it as an orange veil and curve (sent
on every pick: a few kB), and a strip of words under it, each from its start to its end. Clicking a word plays its
stretch of the audio in the page (the WAV is sent once per hearing) and tells the kernel (``on_word``), which picks
the word's first token. Like ``HeatmapView``, the element carries ``layout`` and ``data`` for tests and exports
(PNG, or an SVG that wraps the same pixels: a spectrogram is an image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import anywidget
import numpy as np
from traitlets import Bytes, Dict, Float, Int, List, Unicode


class SpeechView(anywidget.AnyWidget):
    _esm = Path(__file__).with_name("speech_view.js")
    _css = """
    .ae-speech-view { position: relative; width: 100%; }
    .ae-speech-view canvas { display: block; cursor: pointer; }
    """
    name = Unicode("").tag(sync=True)
    mel = Bytes(b"").tag(sync=True)  # float32 [bins, columns], row 0 the lowest band
    mel_shape = List(Int(), default_value=[0, 0]).tag(sync=True)
    mel_range = List(Float(), default_value=[-1.0, 1.5]).tag(sync=True)
    attention = Bytes(b"").tag(sync=True)  # float32 per 20 ms frame of the audio
    seconds = Float(0.0).tag(sync=True)
    words = List(Dict()).tag(sync=True)  # {"text", "start", "end"} in seconds
    picked = Int(-1).tag(sync=True)  # the word outlined
    audio = Bytes(b"").tag(sync=True)  # WAV the page plays a word's stretch from
    title = Unicode("").tag(sync=True)
    height = Int(330).tag(sync=True)

    def __init__(self, **traits):
        super().__init__(**traits)
        self._word_handlers: list[Callable[[int], None]] = []
        self.on_msg(self._on_page_message)

    def show(self, mel=None, attention=None, **traits) -> None:
        """Change what is drawn, in one message (only what differs is sent)."""
        if mel is not None:
            mel = np.ascontiguousarray(mel, dtype="<f4")
            traits.update(mel=mel.tobytes(), mel_shape=list(mel.shape))
        if attention is not None:
            traits["attention"] = np.ascontiguousarray(attention, dtype="<f4").tobytes()
        with self.hold_sync():
            for name, value in traits.items():
                if getattr(self, name) != value:
                    setattr(self, name, value)

    def on_word(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(word_index)`` when a word is clicked in the page."""
        self._word_handlers.append(callback)

    def click_word(self, index: int) -> None:
        for handler in self._word_handlers:
            handler(int(index))

    def _on_page_message(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("event") == "word":
            self.click_word(content["index"])
