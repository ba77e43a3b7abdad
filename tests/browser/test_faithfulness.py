"""The "how faithful is this map?" section in a real browser: the button fills the bars and the table, and the star
follows the view on screen."""

from __future__ import annotations

import os
from pathlib import Path

from tests.browser.helpers import figure_data, open_dashboard, select_tab, wait_for_figure

SHOTS = Path(os.environ.get("AE_SHOTS", "/tmp/shots"))
BARS = "ae-pretrained-faith-bars"


def test_the_pretrained_tab_checks_its_map_and_stars_it(page, dashboard_url):
    open_dashboard(page, dashboard_url)
    select_tab(page, "Pretrained")
    wait_for_figure(page, "ae-pretrained-head", timeout=120_000)
    box = page.locator(".ae-pretrained-text-a textarea")
    box.fill("The cat sat on the mat.")
    box.press("Tab")
    page.locator(".ae-pretrained-view button").filter(has_text="rollout").click()
    page.locator(".ae-pretrained-faith-run").click()
    wait_for_figure(page, BARS, timeout=600_000)
    bars = figure_data(page, BARS)
    assert len(bars) == 6 and "mat" in bars[0]["text"]
    table = page.locator(".ae-pretrained-faith-scores")
    assert "rollout ★" in table.inner_text() and "raw attention ★" not in table.inner_text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".ae-pretrained-faith").screenshot(path=str(SHOTS / "faithfulness-pretrained.png"))
    page.locator(".ae-pretrained-view button").filter(has_text="mean").click()
    page.wait_for_function("() => document.querySelector('.ae-pretrained-faith-scores').innerText"
                           ".includes('raw attention ★')")


def test_the_vision_tab_draws_deletion_and_insertion_beside_localization(page, dashboard_url):
    open_dashboard(page, dashboard_url, "tab=vision")
    wait_for_figure(page, "ae-cbam-localization", timeout=120_000)
    page.locator(".ae-cbam-deletion-run").click()
    wait_for_figure(page, "ae-cbam-deletion", timeout=600_000)
    bars = figure_data(page, "ae-cbam-deletion")
    lines = {trace["name"] for trace in figure_data(page, "ae-cbam-localization")}
    assert [trace["name"] for trace in bars] == ["the map's order", "random order"] * 2
    assert set(bars[0]["y"]) == lines and "ViT rollout" in lines  # every map that localization scores
    SHOTS.mkdir(parents=True, exist_ok=True)
    box = page.locator(".ae-cbam-deletion-box")
    box.scroll_into_view_if_needed()
    box.screenshot(path=str(SHOTS / "faithfulness-vision.png"))
