"""The Train a Transformer tab in a real browser: Train moves the step counter and the heatmaps; Stop stops."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.browser.helpers import figure_data, open_dashboard, select_tab, wait_for_change, wait_for_figure

SHOTS = Path(os.environ.get("AE_SHOTS", "/tmp/shots"))
HEADS = "ae-tl-heads-0"


def step_number(page) -> int:
    return int(re.search(r"step (\d+)", page.inner_text(".ae-tl-step")).group(1))


def test_train_changes_step_counter_and_heatmaps_then_stop_stops(page, dashboard_url):
    open_dashboard(page, dashboard_url)
    select_tab(page, "Train a Transformer")
    wait_for_figure(page, HEADS, timeout=120_000)
    page.wait_for_selector(".ae-tl-step:has-text('step 0')")
    heads = figure_data(page, HEADS)
    assert len(heads) == 8 and len(heads[0]["z"]) == 10  # 2 layers x 4 heads over the 10 probe tokens

    steps = page.locator(".ae-tl-steps input")
    steps.fill("100000")
    steps.press("Enter")
    page.locator(".ae-tl-train").click()
    page.wait_for_function("() => /step [1-9]/.test(document.querySelector('.ae-tl-step').innerText)")
    wait_for_change(page, HEADS, heads[0]["z"])
    assert page.locator(".ae-tl-curves, .js-plotly-plot").count() >= 2

    page.locator(".ae-tl-stop").click()
    page.wait_for_selector(".ae-transformer-lab .ae-status:has-text('Stopped at step')")
    stopped = step_number(page)
    page.wait_for_timeout(1500)
    assert step_number(page) == stopped > 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "transformer_lab.png"), full_page=True)

    page.locator(".ae-tl-stop").click()  # Stop pressed twice: a message, not an error
    page.wait_for_selector(".ae-transformer-lab .ae-status:has-text('not running')")
