"""A student on ``attention-explorer serve --students 2`` saves a run, downloads it as a zip and uploads it back."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from bench.classroom import classroom_server
from tests.browser.conftest import chromium_path
from tests.browser.helpers import open_dashboard, select_tab, wait_for_figure

STATUS = ".ae-transformer-lab .ae-status"


def test_a_student_downloads_a_saved_run_and_uploads_it_back(browser, monkeypatch):
    if chromium_path() is None:
        pytest.skip("no Chromium found")
    monkeypatch.setenv("AE_FAST", "1")
    with classroom_server(2, timeout=300) as (url, _voila, _log):
        context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(120_000)
        try:
            open_dashboard(page, url)
            select_tab(page, "Train a Transformer")
            wait_for_figure(page, "ae-tl-heads-0", timeout=120_000)
            page.locator(".ae-tl-save").click()
            page.wait_for_selector(f"{STATUS}:has-text('Saved 1 model')")
            with page.expect_download() as download:
                page.locator(".ae-tl-download").click()
            assert download.value.suggested_filename == "tl-reverse.zip"
            saved = Path(download.value.path())
            assert zipfile.ZipFile(saved).namelist() == ["model.safetensors"]
            page.locator(".ae-tl-upload-checkpoint input[type=file]").set_input_files(
                files=[{"name": "tl-reverse.zip", "mimeType": "application/zip", "buffer": saved.read_bytes()}])
            page.wait_for_selector(f"{STATUS}:has-text('Uploaded model.safetensors')")
            page.locator(".ae-tl-load").click()
            page.wait_for_selector(f"{STATUS}:has-text('Loaded')")
        finally:
            context.close()
