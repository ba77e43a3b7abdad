"""Links a teacher shares: ?tab=...&preset=... open that tab with that set-up; bad links fall back politely."""

from __future__ import annotations

from explorer import links
from tests.browser.helpers import FIND_PLOT, open_dashboard, wait_for_data, wait_for_figure


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
    open_dashboard(page, dashboard_url, "tab=pretrained&preset=coreference")
    page.wait_for_function(
        f"() => {{ const p = ({FIND_PLOT})('ae-pretrained-head');"
        " return p && p.data.length > 0 && p.data[0].x.includes('animal') && p.layout.shapes.length === 2; }",
        timeout=120_000)
    head = page.evaluate(f"() => ({FIND_PLOT})('ae-pretrained-head').layout.title.text")
    assert head == "layer 3, head 1"
    assert page.locator(".ae-pretrained select").first.input_value() == "coreference"


def field_value(page, css: str, expected: str, timeout: float = 120_000) -> str:
    """Wait until the input inside ``css`` shows ``expected``; returns what it shows."""
    page.wait_for_function("([css, expected]) => { const e = document.querySelector(css + ' input');"
                           " return e && e.value === expected; }", arg=[css, expected], timeout=timeout)
    return page.locator(f"{css} input").first.input_value()


def test_a_state_link_reproduces_the_mechanism_view(page, dashboard_url):
    state = links.encode({"preset": "a distractor", "score": "additive", "temperature": 0.5})
    open_dashboard(page, dashboard_url, f"tab=mechanism&state={state}")
    wait_for_data(page, "ae-weights", lambda d: d[0]["x"] == ["she", "saw", "it", "bank"])
    assert field_value(page, ".ae-temperature-text", "0.5") == "0.5"
    assert page.locator(".ae-score button.mod-active").inner_text().strip() == "additive"


def test_a_state_link_reproduces_the_pretrained_view(page, dashboard_url):
    state = links.encode({"text_a": "The cat sat on the warm mat.", "layer": 2, "head": 5})
    open_dashboard(page, dashboard_url, f"tab=pretrained&state={state}")
    page.wait_for_function(
        f"() => {{ const p = ({FIND_PLOT})('ae-pretrained-head');"
        " return p && p.data.length > 0 && p.data[0].x.includes('cat') && p.layout.title.text === 'layer 2, head 5'; }",
        timeout=120_000)


def test_a_state_link_reproduces_the_transformer_settings(page, dashboard_url):
    state = links.encode({"task": "sort", "lr": 0.002, "steps": 120})
    open_dashboard(page, dashboard_url, f"tab=transformer&state={state}")
    assert field_value(page, ".ae-tl-steps", "120") == "120"
    assert field_value(page, ".ae-tl-lr", "0.002") == "0.002"
    page.wait_for_function("() => [...document.querySelectorAll('.ae-transformer-lab select')]"
                           ".some(s => s.value === 'sort')", timeout=60_000)


def test_a_state_link_reproduces_the_cbam_settings(page, dashboard_url):
    state = links.encode({"ratio": 8, "epochs": 2})
    open_dashboard(page, dashboard_url, f"tab=cbam&state={state}")
    assert field_value(page, ".ae-cbam-ratio", "8") == "8"
    assert field_value(page, ".ae-cbam-epochs", "2") == "2"
    wait_for_figure(page, "ae-cbam-gallery", timeout=120_000)
