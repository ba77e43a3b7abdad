"""The file button: a file within the limit arrives as FileUpload gives it; one over it is refused in words, both when
the page says so and when a page that skipped its check sends it anyway."""

from __future__ import annotations

from explorer.data.sequences import MAX_TEXT_BYTES
from explorer.widgets.transformer_lab import TransformerLabPanel
from explorer.widgets.upload import SizedUpload


def test_a_file_within_the_limit_arrives_as_its_bytes():
    upload = SizedUpload(max_bytes=10)
    upload._on_page_message(upload, {"event": "file", "name": "a.txt", "type": "text/plain", "size": 5}, [b"hello"])
    assert bytes(upload.value[0]["content"]) == b"hello" and upload.value[0]["name"] == "a.txt"
    assert upload.refusal == ""


def test_a_file_over_the_limit_is_refused_with_the_limit():
    upload = SizedUpload(max_bytes=2_000_000)
    upload._on_page_message(upload, {"event": "too_big", "name": "novel.txt", "size": 50_000_000}, [])
    assert upload.refusal == "novel.txt is 50.0 MB; this page takes files up to 2.0 MB. Choose a smaller file."
    upload._on_page_message(upload, {"event": "file", "name": "sneaky.txt"}, [b"x" * 2_000_001])
    assert "sneaky.txt is 2.0 MB" in upload.refusal and upload.value == ()


def test_the_transformer_panel_says_the_limit_and_keeps_its_task():
    panel = TransformerLabPanel()
    try:
        panel.wait()
        task = panel.session.task
        panel.upload._on_page_message(panel.upload, {"event": "too_big", "name": "big.txt", "size": 50_000_000}, [])
        assert panel.session.status_kind == "error"
        assert f"up to {MAX_TEXT_BYTES / 1e6:.1f} MB" in panel.session.status
        assert panel.session.task == task
    finally:
        panel.session.stop_work()
