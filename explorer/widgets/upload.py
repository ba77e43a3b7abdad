"""A file button whose page checks the file's size before sending it, and says the limit when it is too big.

ipywidgets' ``FileUpload`` sends any file: one over the server's message limit makes the server drop the page's
connection, and the file vanishes without a word. Here the page refuses it and tells the kernel, which sets
``refusal`` (the panel shows it); a file within the limit arrives in ``value`` as ``FileUpload`` gives it.
"""

from __future__ import annotations

from pathlib import Path

import anywidget
from traitlets import Int, Tuple, Unicode

from explorer.sessions.base import say_name


class SizedUpload(anywidget.AnyWidget):
    _esm = Path(__file__).with_name("upload.js")
    accept = Unicode("").tag(sync=True)  # the file types the browser's dialog offers
    description = Unicode("Upload").tag(sync=True)
    max_bytes = Int(2_000_000).tag(sync=True)  # the largest file the page sends
    value = Tuple()  # ({"name", "type", "size", "last_modified", "content": memoryview},) of the last file
    refusal = Unicode("")  # why the last file was not sent

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.on_msg(self._on_page_message)

    def limit_message(self, name: str, size: int) -> str:
        return (f"{say_name(name)} is {size / 1e6:.1f} MB; this page takes files up to "
                f"{self.max_bytes / 1e6:.1f} MB. Choose a smaller file.")

    def _on_page_message(self, _widget, content, buffers) -> None:
        if not isinstance(content, dict):
            return
        name = str(content.get("name", "the file"))
        if content.get("event") == "too_big":
            size = content.get("size")
            self.refuse(self.limit_message(name, size if isinstance(size, int) and not isinstance(size, bool) else 0))
        elif content.get("event") == "file" and buffers:
            data = memoryview(buffers[0])
            if data.nbytes > self.max_bytes:  # a page that skipped the check
                self.refuse(self.limit_message(name, data.nbytes))
                return
            self.value = ({"name": name, "type": str(content.get("type", "")), "size": data.nbytes,
                           "last_modified": content.get("last_modified"), "content": data},)

    def refuse(self, message: str) -> None:
        self.refusal = ""  # the same message twice is still a change
        self.refusal = message
