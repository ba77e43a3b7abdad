"""Links a teacher shares: ?tab=...&preset=... open that tab with that set-up; bad links fall back politely."""

from __future__ import annotations

from tests.browser.helpers import open_dashboard, wait_for_data, wait_for_figure


def test_preset_link_opens_the_preset(page, dashboard_url):
    open_dashboard(page, dashboard_url, "tab=mechanism&preset=a%20distractor")
    data = wait_for_data(page, "ae-weights", lambda d: "bank" in d[0]["x"])
    assert data[0]["x"] == ["she", "saw", "it", "bank"]
    assert page.locator(".ae-mechanism select").first.input_value() == "a distractor"


def test_unknown_tab_and_preset_fall_back_with_a_notice(page, dashboard_url):
    open_dashboard(page, dashboard_url, "tab=nowhere&preset=old")
    page.wait_for_selector("text=There is no tab called 'nowhere'")
    wait_for_figure(page, "ae-weights")  # the first tab still works


def test_pretrained_preset_link_shows_its_layer_head_and_token(page, dashboard_url):
    """The coreference link: layer 3, head 1, the token "it" outlined, the preset named in the Example menu."""
    from tests.browser.helpers import FIND_PLOT

    open_dashboard(page, dashboard_url, "tab=pretrained&preset=coreference")
    page.wait_for_function(
        f"() => {{ const p = ({FIND_PLOT})('ae-pretrained-head');"
        " return p && p.data.length > 0 && p.data[0].x.includes('animal') && p.layout.shapes.length === 2; }",
        timeout=120_000)
    head = page.evaluate(f"() => ({FIND_PLOT})('ae-pretrained-head').layout.title.text")
    assert head == "layer 3, head 1"
    assert page.locator(".ae-pretrained select").first.input_value() == "coreference"
