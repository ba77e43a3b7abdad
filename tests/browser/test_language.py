"""The Language model tab in a real browser: Generate streams tokens, the head map changes, the finder opens a head;
empty views say what will appear, a preset runs and opens its head, a found head shows on its probe, old maps are
greyed, long work shows progress, a long text's map has distinct colour ticks and labels that do not touch."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.browser.helpers import FIND_PLOT, figure_data, open_dashboard, wait_for_figure
from tests.browser.layout import layout_problems
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


def open_language(page, url):
    open_dashboard(page, url, "tab=llm")
    page.wait_for_selector(".ae-llm .ae-status-ok", timeout=240_000)


def test_before_generate_the_views_say_what_will_appear_not_empty_axes(page, dashboard_url):
    open_language(page, dashboard_url)
    empty = page.evaluate(f"() => {{ const p = ({FIND_PLOT})('{HEAD}'); return [p.layout.empty, p.data[0].z.length,"
                          " p.aeTexts().map(t => t.text)]; }")
    assert "Generate" in empty[0] and empty[1] == 0
    assert "query (attending)" not in empty[2] and "weight" not in empty[2]  # no axes, no colour bar
    assert "Generate" in " ".join(empty[2])


def test_the_induction_preset_runs_and_opens_its_head_which_shows_on_its_probe(page, dashboard_url):
    open_language(page, dashboard_url)
    page.locator(".ae-llm-preset select").select_option("induction heads")
    page.wait_for_selector(".ae-llm .ae-status-ok:has-text('strongest induction head')", timeout=300_000)
    status = page.inner_text(".ae-llm .ae-status")
    layer, head = (int(n) for n in re.search(r"layer (\d+), head (\d+)", status).groups())
    page.wait_for_function(f"() => ({FIND_PLOT})('{HEAD}').layout.title.text.startsWith('layer {layer}, head {head}')",
                           timeout=30_000)  # the map redraws a moment after the status (redraws are throttled)
    assert "[(" not in status
    finder = figure_data(page, FINDER)[0]
    rows = len(finder["y"])
    area = page.evaluate(f"() => ({FIND_PLOT})('{FINDER}').aePlotArea()")
    assert area["height"] / rows >= 16, "a head finder cell must be easy to click"
    click_cell(page, FINDER, row=layer, n_rows=rows, col=head, n_cols=len(finder["x"]))
    page.wait_for_function(f"() => ({FIND_PLOT})('{HEAD}').layout.title.text.includes('induction probe')")
    assert len(figure_data(page, HEAD)[0]["x"]) == 41  # its probe: a first token and 20 random tokens, twice
    assert "stripe" in page.inner_text(".ae-llm-main-words")
    page.locator(".ae-llm-on-probe").click()  # "show on your text"
    page.wait_for_function(f"() => !({FIND_PLOT})('{HEAD}').layout.title.text.includes('induction probe')")


def test_a_changed_prompt_greys_the_old_maps_and_long_work_shows_progress(page, dashboard_url):
    open_language(page, dashboard_url)
    page.locator(".ae-llm-generate").click()
    page.wait_for_selector(".ae-llm .ae-llm-progress", state="visible", timeout=60_000)  # a bar counts the tokens
    page.wait_for_selector(".ae-llm .ae-status-ok:has-text('tokens,')", timeout=300_000)
    assert not page.evaluate(f"() => ({FIND_PLOT})('{HEAD}').layout.stale")
    box = page.locator(".ae-llm-prompt textarea")
    box.fill("An entirely different prompt")
    box.press("Tab")
    page.wait_for_function(f"() => ({FIND_PLOT})('{HEAD}').layout.stale.includes('Out of date')")


def test_a_long_text_has_distinct_colour_ticks_and_labels_that_do_not_touch(page, dashboard_url):
    open_language(page, dashboard_url)
    box = page.locator(".ae-llm-prompt textarea")
    box.fill(" ".join(f"word{i % 50}" for i in range(400)))  # over 500 tokens: the map is pooled into blocks
    box.press("Tab")
    count = page.locator(".ae-llm-max-new-tokens input")
    count.fill("1")
    count.press("Enter")
    page.locator(".ae-llm-generate").click()
    page.wait_for_function(f"() => {{ const p = ({FIND_PLOT})('{HEAD}');"
                           " return p && p.layout.title.text.includes('blocks'); }", timeout=300_000)
    texts = page.evaluate(f"() => ({FIND_PLOT})('{HEAD}').aeTexts().map(t => t.text)")
    ticks = [t for t in texts if re.fullmatch(r"\d+(\.\d+)?", t)]
    assert len(ticks) >= 3 and len(set(ticks)) == len(ticks), ticks
    problems = [p for p in layout_problems(page, "ae-llm") if HEAD in p]
    assert not problems, problems
