"""Every tab after its main action, at 1280x720, 1400x900 and 1920x1080, plain and in present mode: no title, label,
legend or tooltip is clipped or lies on another, and in present mode no text is under 11 px (``layout.py`` says how
each is measured). With ``AE_SHOTS=folder`` each view is saved there as a screenshot, to be looked at."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


TABS = {  # link key: (the panel's CSS class, its main action)
    "mechanism": ("ae-mechanism", mechanism),
    "pretrained": ("ae-pretrained", pretrained),
    "llm": ("ae-llm", language),
    "transformer": ("ae-transformer-lab", transformer),
    "vision": ("ae-vision", vision),
}


def present(page, on: bool) -> None:
    switch = page.locator(".ae-present-switch")
    if ("on" in switch.inner_text()) != on:
        switch.click()
    page.wait_for_function("(on) => !!document.querySelector('.ae-app.ae-present') === on", arg=on)
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
    panel, action = TABS[tab]
    page.set_viewport_size({"width": 1400, "height": 900})
    page.set_default_timeout(120_000)
    open_dashboard(page, dashboard_url, f"tab={tab}")
    action(page)
    found = {}
    for on in (False, True):
        present(page, on)
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(1200)  # figures follow their boxes' new widths
            found[(width, height, on)] = layout_problems(page, panel, LEAST_PX if on else None)
            if (width, height, on) in ((1400, 900, False), (1280, 720, True)):
                shoot(page, f"{tab}-{width}x{height}{'-present' if on else ''}")
    problems = [f"{w}x{h}{' present' if on else ''}: {problem}" for (w, h, on), found_here in found.items()
                for problem in found_here]
    assert not problems, "\n".join(problems)
