"""The Speech tab in a real browser: a link opens a sample clip translated, a click on a word picks its token, a file
over the limit is refused in the page, and the microphone records (Chromium's fake device playing a clip) or, when
the page may not use it, says so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from explorer import links
from explorer.data.audio import clip_path, read_audio
from tests.browser.conftest import CHROMIUM_ARGS, chromium_path
from tests.browser.helpers import FIND_PLOT, figure_data, open_dashboard
from tests.browser.test_pretrained import click_cell

SHOTS = Path(os.environ.get("AE_SHOTS", "/tmp/shots"))
SPECTROGRAM, MAP, HEADS = "ae-speech-spectrogram", "ae-speech-map", "ae-speech-heads"
LOADING = 480_000  # a cold AE_CACHE converts Whisper first, and a busy machine hears slowly


def layout_of(page, name: str) -> dict:
    return page.evaluate(f"(name) => {{ const p = ({FIND_PLOT})(name); return p ? p.layout : null; }}", name)


def open_speech(page, url: str, **settings) -> None:
    open_dashboard(page, url, f"tab=speech&state={links.encode(settings)}" if settings else "tab=speech")
    page.wait_for_selector(".ae-speech .ae-speech-summary .ae-speech-text", timeout=LOADING)
    page.wait_for_function(f"() => {{ const p = ({FIND_PLOT})('{SPECTROGRAM}'); return p && p.data[0].x.length > 0; }}",
                           timeout=60_000)  # the words arrive with the spectrogram, after the text


def click_word(page, index: int) -> None:
    """Click word ``index`` in the spectrogram's strip of words."""
    box = page.evaluate(f"(i) => ({FIND_PLOT})('{SPECTROGRAM}').aeWordBox(i)", index)
    page.mouse.click(box["x"], box["y"])


def test_a_link_opens_a_clip_translated_and_a_word_picks_its_token(page, dashboard_url):
    page.set_viewport_size({"width": 1280, "height": 720})
    open_speech(page, dashboard_url, clip="German", task="translate", layer=5, head=4)
    summary = page.inner_text(".ae-speech-summary")
    assert "Good morning" in summary and "German" in summary and "synthetic speech" in summary
    words = figure_data(page, SPECTROGRAM)[0]["x"]
    assert words[0] == "Good" and len(words) >= 8
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 720), (1400, 900)):  # one page resized: leaving a Voila page shuts its kernel
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(500)  # the canvases follow their box's new width
        page.screenshot(path=str(SHOTS / f"speech-{width}x{height}.png"))
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1"), \
            f"the page scrolls sideways at {width}x{height}"
    click_word(page, 4)
    page.wait_for_function(f"() => ({FIND_PLOT})('{SPECTROGRAM}').layout.picked === 4")
    assert f"while writing '{words[4].strip('.,!?')}" in layout_of(page, SPECTROGRAM)["title"]["text"]
    map_data = figure_data(page, MAP)[0]
    outlined = layout_of(page, MAP)["shapes"][0]
    assert map_data["y"][int(outlined["y0"] + 0.5)].strip() in words[4]
    page.locator(f".{HEADS}").scroll_into_view_if_needed()
    grid = figure_data(page, HEADS)[0]
    click_cell(page, HEADS, row=3, n_rows=len(grid["y"]), col=1, n_cols=len(grid["x"]))
    page.wait_for_function(f"() => ({FIND_PLOT})('{MAP}').layout.title.text.startsWith('cross-attention, layer 3, head 1')")
    page.screenshot(path=str(SHOTS / "speech-picked.png"), full_page=True)


def test_an_audio_file_over_the_limit_is_refused_in_the_page(page, dashboard_url):
    open_speech(page, dashboard_url)
    sent = []
    page.on("websocket", lambda socket: socket.on("framesent", lambda payload: sent.append(len(payload))))
    page.locator(".ae-speech-upload input[type=file]").set_input_files(
        files=[{"name": "concert.wav", "mimeType": "audio/wav", "buffer": b"RIFF" + b"\0" * 9_000_000}])
    page.wait_for_selector(".ae-speech .ae-status:has-text('takes files up to 8.0 MB')", timeout=30_000)
    assert max(sent, default=0) < 100_000  # the file never went to the server
    assert "Good morning" in page.inner_text(".ae-speech-summary")  # the view stays


@pytest.fixture(scope="module")
def microphone_browser(browser, tmp_path_factory):
    """Chromium whose fake microphone plays the English clip (once), and which grants or refuses it by context."""
    import soundfile

    wav = tmp_path_factory.mktemp("microphone") / "english.wav"
    soundfile.write(wav, read_audio(clip_path("English")).samples, 16_000, subtype="PCM_16")
    chromium = browser.browser_type.launch(
        executable_path=chromium_path(), headless=True,
        args=CHROMIUM_ARGS + ["--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}%noloop"])
    yield chromium
    chromium.close()


def test_the_microphone_records_and_whisper_hears_it(microphone_browser, dashboard_url):
    context = microphone_browser.new_context(viewport={"width": 1400, "height": 900}, permissions=["microphone"])
    page = context.new_page()
    try:
        open_speech(page, dashboard_url, clip="Italian", task="transcribe")
        page.locator(".ae-speech-microphone button").click()
        page.wait_for_function("() => document.querySelector('.ae-speech-microphone button').textContent.includes('Stop')")
        page.wait_for_timeout(7_000)  # the clip is 6 s long
        page.locator(".ae-speech-microphone button").click()
        page.wait_for_function("() => document.querySelector('.ae-speech-summary').innerText.includes('London')",
                               timeout=LOADING)
        assert "your recording" in page.inner_text(".ae-speech-summary")
        assert "s recorded" in page.inner_text(".ae-speech-microphone")
    finally:
        context.close()


def test_a_microphone_the_page_may_not_use_is_explained(microphone_browser, dashboard_url):
    context = microphone_browser.new_context(viewport={"width": 1400, "height": 900}, permissions=[])
    page = context.new_page()
    try:
        open_speech(page, dashboard_url, clip="French", task="transcribe")
        page.locator(".ae-speech-microphone button").click()
        page.wait_for_selector(".ae-speech .ae-status-error:has-text('microphone')", timeout=30_000)
        assert "Bonjour" in page.inner_text(".ae-speech-summary")  # the view stays
    finally:
        context.close()
