"""The Language model tab in a real browser: Generate streams tokens, the head map changes, the finder opens a head."""

from __future__ import annotations

import os
from pathlib import Path

from tests.browser.helpers import FIND_PLOT, figure_data, open_dashboard, wait_for_figure
from tests.browser.test_pretrained import click_cell

HEAD, FINDER = "ae-llm-head", "ae-llm-finder"
SHOTS = Path(os.environ.get("AE_SHOTS", "/tmp/shots"))


def title_of(page, meta: str) -> str:
    return page.evaluate(f"(meta) => {{ const p = ({FIND_PLOT})(meta); return p ? p.layout.title.text : ''; }}", meta)


def test_generate_streams_tokens_and_the_finder_opens_a_head(page, dashboard_url):
    open_dashboard(page, dashboard_url, "tab=llm")
    # SmolLM2 is loaded (a cold AE_CACHE converts its GGUF first, slow on a busy machine)
    page.wait_for_selector(".ae-llm .ae-status-ok", timeout=240_000)
    box = page.locator(".ae-llm-prompt textarea")
    box.fill("The cat sat on the mat. The dog sat on the")
    box.press("Tab")
    page.locator(".ae-llm-generate").click()
    page.wait_for_function("() => { const t = document.querySelector('.ae-llm-text');"
                           " return t && t.innerText.length > 'The cat sat on the mat. The dog sat on the'.length; }",
                           timeout=120_000)  # the first tokens are on the page before the run ends
    wait_for_figure(page, HEAD, timeout=120_000)
    page.wait_for_selector(".ae-llm .ae-status-ok", timeout=120_000)
    wait_for_figure(page, FINDER, timeout=120_000)
    before = figure_data(page, HEAD)[0]["z"]
    assert "expects" in page.inner_text(".ae-llm-candidates")

    n_layers, n_heads = len(figure_data(page, FINDER)[0]["y"]), len(figure_data(page, FINDER)[0]["x"])
    click_cell(page, FINDER, row=3, n_rows=n_layers, col=4, n_cols=n_heads)
    page.wait_for_function(f"(meta) => ({FIND_PLOT})(meta).layout.title.text.startsWith('layer 3, head 4')", arg=HEAD)
    assert figure_data(page, HEAD)[0]["z"] != before
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "language.png"), full_page=True)
