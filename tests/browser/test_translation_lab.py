"""Dates in the Train a Transformer tab in a real browser: training sharpens the cross-attention map, the
alignment scores appear, and a typed date is translated with a notice."""

from __future__ import annotations

import os
from pathlib import Path

from tests.browser.helpers import figure_data, open_dashboard, select_tab, wait_for_change, wait_for_data, wait_for_figure

SHOTS = Path(os.environ.get("AE_SHOTS", "/tmp/shots"))
HEADS = "ae-tl-heads-0"


def test_training_dates_changes_the_cross_attention_and_scores_the_alignment(page, dashboard_url):
    try:
        train_and_translate(page, dashboard_url)
    finally:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "translation_lab.png"), full_page=True)


def train_and_translate(page, dashboard_url):
    open_dashboard(page, dashboard_url)
    select_tab(page, "Train a Transformer")
    wait_for_figure(page, HEADS, timeout=120_000)
    page.locator(".ae-transformer-lab select").first.select_option("dates into ISO form")
    heads = wait_for_data(page, HEADS, lambda d: len(d) == 8 and len(d[0]["y"] or ()) == 11, timeout=180)
    assert len(heads) == 8 and heads[0]["y"][-1] == "<end>"  # yyyy-mm-dd and <end> over the source characters

    page.wait_for_selector(".ae-transformer-lab .ae-status:has-text('Press Train')", timeout=60_000)
    steps = page.locator(".ae-tl-steps input")
    steps.fill("100000")
    steps.press("Enter")
    page.locator(".ae-tl-train").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.locator(".ae-tl-train").click()
    page.wait_for_selector(".ae-transformer-lab .ae-status:has-text('Training')", timeout=60_000)
    wait_for_change(page, HEADS, heads[0]["z"], timeout=120_000)
    page.wait_for_selector(".ae-tl-scores .ae-best-head", timeout=60_000)
    wait_for_figure(page, "ae-tl-alignment")
    page.wait_for_timeout(3000)  # a few seconds of training
    page.locator(".ae-tl-stop").click()
    page.wait_for_selector(".ae-transformer-lab .ae-status:has-text('Stopped at step')", timeout=60_000)
    assert "exact match" in page.inner_text(".ae-tl-scores")

    typed = page.locator(".ae-tl-typed input")
    typed.fill("yesterday")
    page.locator(".ae-tl-translate").click()
    page.wait_for_selector(".ae-tl-output:has-text('not a date the generator writes')", timeout=60_000)
    wait_for_figure(page, "ae-tl-translation")
    assert len(figure_data(page, "ae-tl-translation")[0]["x"]) == len("yesterday")
