"""Every tab after its main action, at 1280x720, 1400x900 and 1920x1080, plain and in present mode: no title, label,
legend or tooltip is clipped or lies on another, and in present mode no text is under 11 px (``layout.py`` says how
each is measured). With ``AE_SHOTS=folder`` each view is saved there as a screenshot, to be looked at."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from explorer import links
from tests.browser.conftest import ROOT
from tests.browser.helpers import FIND_PLOT, open_dashboard, wait_for_figure
from tests.browser.layout import layout_problems

SIZES = ((1280, 720), (1400, 900), (1920, 1080))
LEAST_PX = 11  # the smallest text a projector may show


def mechanism(page) -> None:
    wait_for_figure(page, "ae-weights")
    page.locator(".ae-mechanism .ae-score button").filter(has_text="additive").click()
    page.wait_for_selector(".ae-scores-words:has-text('random')")


def pretrained(page) -> None:
    page.wait_for_selector(".ae-pretrained .ae-status-ok", timeout=180_000)
    page.locator(".ae-pretrained select").first.select_option("coreference")
    page.wait_for_function(f"() => {{ const p = ({FIND_PLOT})('ae-pretrained-focus'); return p && p.data.length; }}",
                           timeout=120_000)
    page.locator(".ae-pretrained-ablate").click()
    wait_for_figure(page, "ae-pretrained-ablation", timeout=120_000)


def language(page) -> None:
    page.wait_for_selector(".ae-llm .ae-status-ok, .ae-llm .ae-status-error", timeout=300_000)
    assert not page.locator(".ae-llm .ae-status-error").count(), page.inner_text(".ae-llm .ae-status")
    page.locator(".ae-llm-generate").click()
    page.wait_for_selector(".ae-llm .ae-status-ok:has-text('tokens,')", timeout=300_000)
    page.locator(".ae-llm-find").click()
    page.wait_for_selector(".ae-llm .ae-status-ok:has-text('Top induction heads')", timeout=300_000)


def transformer(page) -> None:
    page.wait_for_selector(".ae-tl-step", timeout=120_000)
    steps = page.locator(".ae-tl-steps input")
    steps.fill("60")
    steps.press("Enter")
    page.locator(".ae-tl-train").click()
    page.wait_for_selector(".ae-transformer-lab .ae-status-ok", timeout=300_000)


def vision(page) -> None:
    wait_for_figure(page, "ae-cbam-gallery", timeout=180_000)
    page.locator(".ae-cbam-train").click()
    page.wait_for_function(f"() => {{ const p = ({FIND_PLOT})('ae-cbam-curves');"
                           " return p && p.data.length && p.data[0].x && p.data[0].x.length >= 5; }", timeout=300_000)
    page.locator(".ae-cbam-stop").click()
    page.wait_for_selector(".ae-vision .ae-status-ok:has-text('Stopped')", timeout=120_000)


def sinks(page) -> None:
    page.wait_for_selector(".ae-llm .ae-status-ok", timeout=300_000)  # SmolLM2 is loaded
    page.locator(".ae-llm-run-sinks").click()
    page.wait_for_selector(".ae-llm .ae-status-ok:has-text('Perplexity past token')", timeout=600_000)
    page.locator(".ae-llm-sinks").first.scroll_into_view_if_needed()


def induction(page) -> None:
    page.wait_for_selector(".ae-transformer-lab .ae-status-ok", timeout=240_000)
    page.locator(".ae-tl-train").click()
    page.wait_for_selector(".ae-transformer-lab .ae-status-ok:has-text('Test set')", timeout=600_000)
    page.wait_for_function("() => document.querySelector('.ae-tl-phase').innerText.length > 0", timeout=60_000)


def speech(page) -> None:
    page.wait_for_selector(".ae-speech .ae-speech-summary .ae-speech-text", timeout=480_000)
    page.wait_for_function(f"() => {{ const p = ({FIND_PLOT})('ae-speech-spectrogram'); return p && p.data[0].x.length; }}",
                           timeout=60_000)


TABS = {  # name: (link key, link settings, the panel's CSS class, its main action)
    "mechanism": ("mechanism", {}, "ae-mechanism", mechanism),
    "pretrained": ("pretrained", {}, "ae-pretrained", pretrained),
    "llm": ("llm", {}, "ae-llm", language),
    "sinks": ("llm", dict(window=16, sinks=4, sink_tokens=160), "ae-llm", sinks),
    "speech": ("speech", dict(clip="German", task="translate"), "ae-speech", speech),
    "transformer": ("transformer", {}, "ae-transformer-lab", transformer),
    "induction": ("transformer", dict(preset="2 layers vs 1 layer", length=8, vocab=64, steps=40), "ae-transformer-lab",
                  induction),
    "vision": ("vision", {}, "ae-vision", vision),
}


def present(page, on: bool) -> None:
    switch = page.locator(".ae-present-switch")
    if ("on" in switch.inner_text()) != on:
        switch.click()
    page.wait_for_function("(on) => !!document.querySelector('.ae-presentable.ae-present') === on", arg=on)
    page.wait_for_timeout(1500)  # figures draw themselves again


def shoot(page, name: str) -> None:
    folder = os.environ.get("AE_SHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.evaluate("() => document.querySelector('#rendered_cells').scrollTo(0, 0)")
    page.screenshot(path=str(Path(folder) / f"{name}.png"))
    size = page.viewport_size
    full = page.evaluate("() => document.querySelector('#rendered_cells').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": full + 20})
    page.wait_for_timeout(1000)
    page.screenshot(path=str(Path(folder) / f"{name}-whole.png"))
    page.set_viewport_size(size)
    page.wait_for_timeout(800)


@pytest.mark.parametrize("tab", list(TABS))
def test_no_text_is_clipped_overlapped_or_too_small(page, dashboard_url, tab):
    key, settings, panel, action = TABS[tab]
    page.set_viewport_size({"width": 1400, "height": 900})
    page.set_default_timeout(120_000)
    open_dashboard(page, dashboard_url, links.query(key, links.encode(settings) if settings else None)[1:])
    action(page)
    assert_fits(page, panel, tab)


SHOW_NOTEBOOK = """import explorer
from transformers import AutoModelForCausalLM, AutoTokenizer

model, tokenizer = AutoModelForCausalLM.from_pretrained({folder!r}), AutoTokenizer.from_pretrained({folder!r})
explorer.show(model, "The cat sat on the mat because it was tired, and then the cat slept.", tokenizer=tokenizer)"""


@pytest.fixture(scope="module")
def show_url(browser, tmp_path_factory):
    """Voila serving a notebook that shows a small random GPT-2 with ``explorer.show()``, as a user's own would."""
    import nbformat

    from explorer.cli import voila_command, voila_env
    from tests.browser.conftest import free_port, stop_server
    from tests.conftest import save_tiny_gpt2

    folder = tmp_path_factory.mktemp("show")
    save_tiny_gpt2(folder / "gpt2")
    notebook = folder / "show.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        SHOW_NOTEBOOK.format(folder=str(folder / "gpt2")))]), notebook)
    port, log_path = free_port(), folder / "voila.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(voila_command(notebook, port, open_browser=False, ip="127.0.0.1"), cwd=ROOT,
                                   env=voila_env(dict(os.environ)), stdout=log, stderr=subprocess.STDOUT)
    try:  # warm_kernels waits for the dashboard's apply_link(), which this notebook has not: wait for the pool
        deadline = time.monotonic() + 180
        while "is filled" not in log_path.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        if "is filled" not in log_path.read_text():
            raise RuntimeError("Voila did not start a kernel for the show() notebook within 180 s")
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop_server(process, log_path, "SHOW_VOILA_LOG")


def test_a_show_panel_is_not_clipped_overlapped_or_too_small(page, show_url):
    page.set_viewport_size({"width": 1400, "height": 900})
    page.set_default_timeout(120_000)
    page.goto(show_url, wait_until="domcontentloaded")
    page.wait_for_selector(".ae-show .ae-present-switch", timeout=120_000)
    page.locator(".ae-show-0-token select").select_option(index=3)  # a token's bars, then one head ablated
    page.wait_for_function(f"() => {{ const p = ({FIND_PLOT})('ae-show-0-focus-plot'); return p && p.data.length; }}")
    page.locator(".ae-show-0-ablate").click()
    page.wait_for_function(f"() => {{ const p = ({FIND_PLOT})('ae-show-0-ablation-plot'); return p && p.data.length; }}")
    assert_fits(page, "ae-show", "show")


def assert_fits(page, panel: str, name: str) -> None:
    """No layout problem in ``panel`` at any of the sizes, plain and in present mode (screenshots with AE_SHOTS)."""
    found = {}
    for on in (False, True):
        present(page, on)
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(1200)  # figures follow their boxes' new widths
            found[(width, height, on)] = layout_problems(page, panel, LEAST_PX if on else None)
            if (width, height, on) in ((1400, 900, False), (1280, 720, True)):
                shoot(page, f"{name}-{width}x{height}{'-present' if on else ''}")
    problems = [f"{w}x{h}{' present' if on else ''}: {problem}" for (w, h, on), found_here in found.items()
                for problem in found_here]
    assert not problems, "\n".join(problems)
