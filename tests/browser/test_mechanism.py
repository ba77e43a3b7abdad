"""The Mechanism tab in a real browser: changing the score and the temperature redraws the weights; a preset sets
what its story needs; each view says what it shows."""

from __future__ import annotations

from tests.browser.helpers import figure_data, open_dashboard, wait_for_change, wait_for_data, wait_for_figure


def weights_in_page(page):
    return figure_data(page, "ae-weights")[0]["z"]


def test_score_and_temperature_change_the_drawn_weights(page, dashboard_url):
    open_dashboard(page, dashboard_url)
    wait_for_figure(page, "ae-weights")
    before = weights_in_page(page)
    assert abs(sum(before[0]) - 1.0) < 1e-3  # a softmax row as drawn

    page.locator(".ae-score button").filter(has_text="additive").click()
    after_score = wait_for_change(page, "ae-weights", before)[0]["z"]
    assert after_score != before

    box = page.locator(".ae-temperature-text input")
    box.fill("0.2")
    box.press("Enter")
    sharper = wait_for_change(page, "ae-weights", after_score)[0]["z"]
    assert max(sharper[1]) > max(after_score[1])  # a lower temperature sharpens the softmax


def test_bad_temperature_is_explained_not_a_traceback(page, dashboard_url):
    open_dashboard(page, dashboard_url)
    wait_for_figure(page, "ae-weights")
    before = weights_in_page(page)
    box = page.locator(".ae-temperature-text input")
    box.fill("0")
    box.press("Enter")
    page.wait_for_selector(".ae-mechanism .ae-status-error")
    assert "positive" in page.inner_text(".ae-mechanism .ae-status-error")
    assert weights_in_page(page) == before


def test_a_preset_sets_the_mask_and_temperature_its_story_needs(page, dashboard_url):
    open_dashboard(page, dashboard_url)
    wait_for_figure(page, "ae-weights")
    page.locator(".ae-mechanism .widget-toggle-buttons button").filter(has_text="causal").click()
    box = page.locator(".ae-temperature-text input")
    box.fill("0.3")
    box.press("Enter")
    page.wait_for_selector(".ae-mechanism .ae-status:has-text('T = 0.3')")
    page.locator(".ae-mechanism select").first.select_option("a distractor")
    data = wait_for_data(page, "ae-weights", lambda d: d[0]["x"] == ["she", "saw", "it", "bank"])
    it, bank = 2, 3
    assert data[0]["z"][it][bank] > 0.05, "the causal mask of before hides the distractor"
    assert page.locator(".ae-temperature-text input").input_value() == "1"
    assert page.locator(".ae-mechanism button.mod-active").filter(has_text="none").count() == 1


def test_each_view_says_what_it_shows_and_why_additive_looks_uniform(page, dashboard_url):
    open_dashboard(page, dashboard_url)
    wait_for_figure(page, "ae-weights")
    assert "each row sums to 1" in page.inner_text(".ae-weights-words")
    page.locator(".ae-score button").filter(has_text="additive").click()
    page.wait_for_selector(".ae-scores-words:has-text('random')")
    assert "looks almost uniform" in page.inner_text(".ae-scores-words")
