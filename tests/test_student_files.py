"""In a class a student's checkpoints live in their folder on the server: Download brings them out as a zip and
Upload puts them back (only under the names the tab loads), and Load then continues the run."""

from __future__ import annotations

import io
import zipfile

import pytest

from explorer.widgets.transformer_lab import TransformerLabPanel
from explorer.widgets.upload import SizedUpload


@pytest.fixture
def classroom_panel(monkeypatch, tmp_path):
    monkeypatch.setenv("AE_CLASSROOM", "1")
    monkeypatch.setenv("AE_STUDENT_ROOT", str(tmp_path))
    panel = TransformerLabPanel()
    panel.wait()
    yield panel
    panel.session.stop_work()


def send(upload: SizedUpload, name: str, content: bytes) -> None:
    upload._on_page_message(upload, {"event": "file", "name": name, "size": len(content)}, [content])


def test_download_then_upload_brings_a_run_back(classroom_panel):
    panel, session = classroom_panel, classroom_panel.session
    files = panel.your_files[0]
    files.download()
    assert session.status_kind == "error" and "press Save first" in session.status
    session.train(5)
    session.wait()
    session.save()
    files.download()
    name, content = files.last_file
    assert name == "tl-reverse.zip"
    assert zipfile.ZipFile(io.BytesIO(content)).namelist() == ["model.safetensors"]

    session.update(path="checkpoints/copy")
    send(files.upload, name, content)
    assert session.status_kind == "ok" and "Uploaded model.safetensors into copy" in session.status
    session.reset()
    session.load()
    session.wait()
    assert session.runs[0].trainer.step == 5


def test_uploads_go_only_under_the_names_the_tab_loads(classroom_panel):
    panel, session = classroom_panel, classroom_panel.session
    files = panel.your_files[0]
    send(files.upload, "notes.txt", b"hello")
    assert session.status_kind == "error" and "model.safetensors" in session.status
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../escape.safetensors", b"x")
        archive.writestr("model.safetensors/../../x", b"x")
    send(files.upload, "evil.zip", buffer.getvalue())
    assert session.status_kind == "error" and "neither" in session.status
    send(files.upload, "fake.zip", b"not a zip")
    assert session.status_kind == "error" and "not a zip" in session.status


def test_a_single_user_has_no_such_buttons(monkeypatch):
    monkeypatch.delenv("AE_CLASSROOM", raising=False)
    panel = TransformerLabPanel()
    assert panel.your_files == []
    panel.session.stop_work()
