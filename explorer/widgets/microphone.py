"""A Record button: the page records the microphone (MediaRecorder), turns it into a 16 kHz mono 16-bit WAV, checks
its size and sends it, as ``SizedUpload`` sends a file (``value``). Whatever stops it (no permission, no microphone,
a page the browser does not trust with one) becomes ``refusal``, in words, for the panel to show.

Browsers record in their own containers (WebM/Opus in Chromium, Ogg in Firefox), which libsndfile does not all
read; the page decodes the recording with the Web Audio API and writes the WAV itself, so the kernel gets one
format from every browser. Recording stops by itself after ``max_seconds``, what Whisper hears at once.
"""

from __future__ import annotations

from pathlib import Path

from traitlets import Int

from explorer.widgets.upload import SizedUpload


class MicRecorder(SizedUpload):
    _esm = Path(__file__).with_name("microphone.js")
    max_seconds = Int(30).tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**{"description": "Record", "max_bytes": 2_000_000, **kwargs})

    def _on_page_message(self, widget, content, buffers) -> None:
        if isinstance(content, dict) and content.get("event") == "refused":
            self.refuse(str(content.get("reason", "The microphone could not be used."))[:400])
            return
        super()._on_page_message(widget, content, buffers)
