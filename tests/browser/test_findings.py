"""Issue 23's findings in a real browser: an induction head forms in the Train tab, attention sinks in the Language tab."""

from __future__ import annotations

import os
from pathlib import Path

from explorer import links
from tests.browser.helpers import open_dashboard, wait_for_data

SHOTS = Path(os.environ.get("AE_SHOTS", "/tmp/shots"))


def test_two_layers_form_an_induction_head_beside_one_layer(page, dashboard_url):
    # the preset's models on shorter rows, so the head forms within 400 steps
    state = links.encode(dict(preset="2 layers vs 1 layer", length=8, vocab=64, lr=0.005, steps=400))
    open_dashboard(page, dashboard_url, links.query("transformer", state)[1:])
    page.wait_for_selector(".ae-transformer-lab .ae-status-ok", timeout=240_000)
    page.locator(".ae-tl-train").click()
    data = wait_for_data(page, "ae-tl-copy-losses",
                         lambda d: len(d) == 4 and d[0]["x"] and d[0]["x"][-1] >= 400, timeout=900)
    assert data[0]["y"][-1] < 1.5 < data[2]["y"][-1]  # 2 layers copy; 1 layer cannot
    page.wait_for_function("() => document.querySelector('.ae-tl-phase').innerText.includes('phase change at step')",
                           timeout=60_000)
    assert "no head has reached an induction score of 0.5" in page.inner_text(".ae-tl-phase")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "induction.png"), full_page=True)


def test_the_sink_experiment_draws_three_curves(page, dashboard_url):
    state = links.encode(dict(window=16, sinks=4, sink_tokens=160))
    open_dashboard(page, dashboard_url, links.query("llm", state)[1:])
    page.wait_for_selector(".ae-llm .ae-status-ok", timeout=240_000)  # SmolLM2 is loaded
    page.locator(".ae-llm-run-sinks").click()
    data = wait_for_data(page, "ae-llm-sinks", lambda d: len(d) == 3 and all(len(t["x"] or []) == 159 for t in d),
                         timeout=600)
    assert [trace["name"] for trace in data] == ["full attention", "window 16", "window 16 + first 4"]
    page.wait_for_function("() => document.querySelector('.ae-llm-sink-summary').innerText.includes('vs full')",
                           timeout=60_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".ae-llm-sinks").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "sinks.png"), full_page=True)
