"""Download and Upload buttons for a student's own checkpoints (in classroom mode, where the files live on the server,
in the student's folder): Download saves the checkpoint folder as a zip; Upload puts a saved file back for Load."""

from __future__ import annotations

from typing import Callable

import ipywidgets as widgets

from explorer import student_files
from explorer.widgets.controls import button, shows_errors
from explorer.widgets.export import PageTool
from explorer.widgets.upload import SizedUpload


class StudentFiles(widgets.HBox):
    """``files()`` gives the checkpoint files of the folder the tab's path names; ``session`` shows what happened."""

    def __init__(self, session, files: Callable[[], list], name: str):
        self.session, self.files, self.name = session, files, name
        self.downloader = PageTool(tool="download")
        self.download_button = button("Download", self.download, f"ae-{name}-download", width="100px")
        self.upload = SizedUpload(accept=".safetensors,.zip", description="Upload",
                                  max_bytes=student_files.MAX_UPLOAD_BYTES)
        self.upload.add_class(f"ae-{name}-upload-checkpoint")
        self.upload.observe(self._uploaded, "value")
        self.upload.observe(lambda change: change["new"] and session.say(change["new"], "error"), "refusal")
        super().__init__([self.download_button, self.upload, self.downloader])

    @shows_errors
    def download(self) -> None:
        files = self.files()
        content = student_files.pack(files)
        filename = f"{self.name}-{files[0].parent.name}.zip"
        self.last_file = (filename, content)
        self.downloader.send({"event": "file", "filename": filename, "mime": "application/zip"}, [content])
        self.session.say(f"Downloaded {filename} ({len(content) / 1e6:.2f} MB).", "ok")

    @shows_errors
    def _uploaded(self, change) -> None:
        if not change["new"]:
            return
        item = change["new"][0]
        self.upload.value = ()
        written = student_files.unpack(item["name"], bytes(item["content"]), self.files())
        self.session.say(f"Uploaded {', '.join(p.name for p in written)} into {written[0].parent.name}: "
                         "press Load to use it.", "ok")
